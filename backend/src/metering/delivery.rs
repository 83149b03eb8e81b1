//! The delivery task: moves usage events from the [`Outbox`] to the [`MeterStore`] (the Redis
//! stream), oldest first, a batch at a time, and removes each delivered entry. Deliveries are
//! idempotent by event id, so a crash between delivering and removing only repeats deliveries
//! the store ignores. Each round reads one batch by key order and removes only what it delivered:
//! the work is linear in the backlog, and appends wait for no more than one short transaction.
//!
//! The deliveries of a batch run concurrently; on a multiplexed Redis connection they are
//! pipelined. When the store fails the task retries every `retry` interval; otherwise it sleeps
//! until the next append.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::counters::MeteringCounters;
use super::day::day_of_millis;
use super::event::SpoolRecord;
use super::fail_open::FailOpen;
use super::keys::quota_day;
use super::meter_store::MeterStore;
use super::outbox::{Outbox, OutboxEntry};

/// How often delivery is retried while the store fails (and the longest idle sleep).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Events delivered per round.
pub const DELIVERY_BATCH: usize = 512;

/// The day counter an event counts towards: its tenant's, on the UTC day of its timestamp.
pub fn quota_key_of(record: &SpoolRecord) -> String {
    let day = day_of_millis(record.event.timestamp_ms).unwrap_or_default();
    quota_day(&record.event.tenant_id, day)
}

/// Handle of the running task; [`DeliveryTask::shutdown`] stops it.
#[derive(Debug)]
pub struct DeliveryTask {
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl DeliveryTask {
    /// Stops after delivering what it can now (at most `timeout`; the rest stays in the outbox),
    /// then closes the outbox: call it once nothing appends any more.
    pub async fn shutdown(self, timeout: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(timeout, self.handle).await.is_err() {
            tracing::warn!("usage delivery did not finish in time; the outbox keeps the rest");
        }
    }
}

/// Starts the task.
pub fn start(
    store: Arc<dyn MeterStore>,
    outbox: Outbox,
    retry: Duration,
    counters: Arc<MeteringCounters>,
    fail_open: Arc<FailOpen>,
) -> DeliveryTask {
    let (stop, stop_rx) = oneshot::channel();
    let sink = Sink {
        store,
        counters,
        fail_open,
    };
    let handle = tokio::spawn(run(sink, outbox, stop_rx, retry));
    DeliveryTask { stop, handle }
}

#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// The outbox is empty.
    Drained,
    /// A full batch was delivered; more may wait.
    More,
    /// The store or the outbox failed.
    Failed,
}

/// Where delivered events go, and who hears of them.
struct Sink {
    store: Arc<dyn MeterStore>,
    counters: Arc<MeteringCounters>,
    /// Told when an event of a call admitted while failing open reaches its counter.
    fail_open: Arc<FailOpen>,
}

async fn run(sink: Sink, outbox: Outbox, stop: oneshot::Receiver<()>, retry: Duration) {
    let mut stop = Some(stop);
    loop {
        let round = deliver_round(&sink, &outbox).await;
        if round == Round::More {
            if stop.as_mut().is_some_and(|rx| rx.try_recv().is_ok()) {
                break;
            }
            continue;
        }
        let wait = async {
            if round == Round::Drained {
                let _ = tokio::time::timeout(retry, outbox.appended()).await;
            } else {
                tokio::time::sleep(retry).await;
            }
        };
        tokio::select! {
            stopping = stop_requested(&mut stop) => if stopping { break },
            () = wait => {}
        }
    }
    // Stopping: deliver what can be delivered now.
    while deliver_round(&sink, &outbox).await == Round::More {}
    if let Err(e) = outbox.close().await {
        tracing::warn!(error = %e, "closing the usage outbox");
    }
}

/// Whether [`DeliveryTask::shutdown`] asked to stop; a dropped handle means "run until the
/// runtime ends" (never resolves).
async fn stop_requested(stop: &mut Option<oneshot::Receiver<()>>) -> bool {
    let Some(rx) = stop else {
        return std::future::pending().await;
    };
    let requested = rx.await.is_ok();
    if !requested {
        *stop = None;
    }
    requested
}

/// Delivers the oldest batch and removes what was delivered.
async fn deliver_round(sink: &Sink, outbox: &Outbox) -> Round {
    let entries = match outbox.first(DELIVERY_BATCH).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the usage outbox");
            return Round::Failed;
        }
    };
    if entries.is_empty() {
        return Round::Drained;
    }
    let full = entries.len() == DELIVERY_BATCH;
    let outcomes = join_all(entries.iter().map(|entry| deliver(sink, entry))).await;
    let failed = outcomes.iter().any(Option::is_none);
    let done: Vec<u64> = outcomes.into_iter().flatten().collect();
    let delivered = done.len();
    if let Err(e) = outbox.remove(done).await {
        tracing::error!(error = %e, "cannot remove delivered events from the usage outbox");
        return Round::Failed;
    }
    sink.counters.delivered(delivered);
    tracing::debug!(delivered, failed, "usage events delivered");
    match (failed, full) {
        (true, _) => Round::Failed,
        (false, true) => Round::More,
        (false, false) => Round::Drained,
    }
}

/// Delivers one entry; the key to remove, or `None` to keep it for the next round.
async fn deliver(sink: &Sink, (key, record): &OutboxEntry) -> Option<u64> {
    let record = match record {
        Ok(record) => record,
        Err(e) => {
            // redb checksums its pages, so this is a bug in the encoding, never a torn write.
            tracing::error!(error = %e, key, "dropping an outbox entry that is not a usage event");
            return Some(*key);
        }
    };
    let quota_key = quota_key_of(record);
    match sink.store.deliver(record, &quota_key).await {
        Ok(_) => {
            if !record.quota_counted {
                sink.fail_open.delivered(&quota_key);
            }
            Some(*key)
        }
        Err(e) => {
            tracing::debug!(error = %e, "usage store unavailable; keeping events in the outbox");
            None
        }
    }
}
