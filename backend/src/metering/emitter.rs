//! The background task that takes usage events off the request path: a bounded channel feeds it,
//! it delivers events to the [`MeterStore`], and whatever cannot be delivered goes to the
//! [`Spool`], which it replays every [`RETRY_INTERVAL`] (and at startup) until it is empty.
//!
//! While the spool holds anything, new events are appended behind it rather than delivered
//! directly, so one place holds everything undelivered. A tool call never waits for any of this:
//! when the channel is full the caller appends to the spool on a blocking thread instead.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::day::day_of_millis;
use super::event::SpoolRecord;
use super::keys::quota_day;
use super::meter_store::MeterStore;
use super::spool::Spool;

/// Events the channel holds before callers spool directly.
pub const CHANNEL_CAPACITY: usize = 4096;
/// How often the spool is retried while it holds events.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Events read from the spool per replay round.
const REPLAY_BATCH: usize = 1000;
/// Events taken off the channel per round.
const CHANNEL_BATCH: usize = 256;

/// The day counter an event counts towards: its tenant's, on the UTC day of its timestamp.
pub fn quota_key_of(record: &SpoolRecord) -> String {
    let day = day_of_millis(record.event.timestamp_ms).unwrap_or_default();
    quota_day(&record.event.tenant_id, day)
}

/// Handle of the running task; [`EmitterTask::shutdown`] flushes it.
#[derive(Debug)]
pub struct EmitterTask {
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl EmitterTask {
    /// Stops taking events, delivers or spools what is queued, and waits (at most `timeout`).
    pub async fn shutdown(self, timeout: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(timeout, self.handle).await.is_err() {
            tracing::error!("usage event task did not finish in time; queued events may be lost");
        }
    }
}

/// Starts the task; returns the channel to feed it.
pub fn start(
    store: Arc<dyn MeterStore>,
    spool: Arc<Spool>,
    retry: Duration,
) -> (mpsc::Sender<SpoolRecord>, EmitterTask) {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (stop, stop_rx) = oneshot::channel();
    let handle = tokio::spawn(run(store, spool, rx, stop_rx, retry));
    (tx, EmitterTask { stop, handle })
}

async fn run(
    store: Arc<dyn MeterStore>,
    spool: Arc<Spool>,
    mut rx: mpsc::Receiver<SpoolRecord>,
    mut stop: oneshot::Receiver<()>,
    retry: Duration,
) {
    let mut tick = tokio::time::interval(retry);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut batch = Vec::new();
        let stopping = tokio::select! {
            biased;
            _ = &mut stop => true,
            received = rx.recv() => match received {
                Some(record) => { batch.push(record); false }
                None => true,
            },
            _ = tick.tick() => false,
        };
        if stopping {
            rx.close();
            while let Ok(record) = rx.try_recv() {
                batch.push(record);
            }
        } else {
            while batch.len() < CHANNEL_BATCH {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
        }
        process(store.as_ref(), &spool, batch).await;
        if stopping {
            return;
        }
    }
}

/// Delivers `batch` (spooling what fails), or, when the spool is not empty, queues it behind the
/// spool and replays the spool.
async fn process(store: &dyn MeterStore, spool: &Arc<Spool>, batch: Vec<SpoolRecord>) {
    if spool_is_empty(spool).await {
        let mut rest = batch.into_iter();
        while let Some(record) = rest.next() {
            if let Err(e) = store.deliver(&record, &quota_key_of(&record)).await {
                tracing::warn!(error = %e, "usage store unavailable; spooling usage events");
                let mut undelivered = vec![record];
                undelivered.extend(rest);
                append(spool, undelivered).await;
                return;
            }
        }
    } else {
        append(spool, batch).await;
        replay(store, spool).await;
    }
}

async fn spool_is_empty(spool: &Arc<Spool>) -> bool {
    let spool = spool.clone();
    match tokio::task::spawn_blocking(move || spool.is_empty()).await {
        Ok(Ok(empty)) => empty,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the usage spool");
            false
        }
        Err(_) => false,
    }
}

/// Appends to the spool on a blocking thread; a failure is logged with every event it loses.
pub async fn append(spool: &Arc<Spool>, records: Vec<SpoolRecord>) {
    if records.is_empty() {
        return;
    }
    let spool = spool.clone();
    let result = tokio::task::spawn_blocking(move || {
        let outcome = spool.append(&records);
        (outcome, records)
    })
    .await;
    match result {
        Ok((Ok(()), _)) => {}
        Ok((Err(e), lost)) => {
            for record in lost {
                tracing::error!(
                    error = %e,
                    event = %serde_json::to_string(&record.event).unwrap_or_default(),
                    "usage event lost: the spool cannot be written"
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "usage spool append panicked"),
    }
}

/// Delivers the spool in order, a batch at a time, removing each batch once all of it is in the
/// store. Stops at the first failure (the next round starts over; deliveries are idempotent).
async fn replay(store: &dyn MeterStore, spool: &Arc<Spool>) {
    loop {
        let reader = spool.clone();
        let (records, mark) =
            match tokio::task::spawn_blocking(move || reader.read(REPLAY_BATCH)).await {
                Ok(Ok(read)) => read,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the usage spool");
                    return;
                }
                Err(_) => return,
            };
        let mut added = 0usize;
        for record in &records {
            match store.deliver(record, &quota_key_of(record)).await {
                Ok(true) => added += 1,
                Ok(false) => {}
                Err(_) => return,
            }
        }
        let consumer = spool.clone();
        match tokio::task::spawn_blocking(move || consumer.consume(mark)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot remove replayed events from the usage spool");
                return;
            }
            Err(_) => return,
        }
        tracing::info!(
            replayed = records.len(),
            added,
            duplicates = records.len() - added,
            "usage spool replayed"
        );
        if records.len() < REPLAY_BATCH {
            return;
        }
    }
}
