//! Outbox compaction: after a large backlog is delivered the file shrinks (without compaction it
//! keeps its size), and no event is lost or doubled across it, with appends going on meanwhile.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use mcp_edge_backend::metering::counters::MeteringCounters;
use mcp_edge_backend::metering::delivery::quota_key_of;
use mcp_edge_backend::metering::outbox::OUTBOX_FILE;
use mcp_edge_backend::metering::{
    MemoryMeter, MeterStore as _, Outbox, OutboxStats, SpoolRecord, UsageEvent, delivery,
};
use mcp_edge_backend::redis_server::temp_dir;
use mcp_edge_backend::tenant::test_tenant;

/// The backlog an outage leaves.
const BACKLOG: usize = 20_000;
/// Appended while it is delivered.
const DURING: usize = 2_000;
/// Events appended at once.
const CHUNK: usize = 500;

fn file_size(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(OUTBOX_FILE))
        .expect("outbox file")
        .len()
}

/// Appends the events numbered `range`, [`CHUNK`] at a time.
async fn append(outbox: &Outbox, range: std::ops::Range<usize>) {
    let tenant = test_tenant("acme-compaction");
    let now = Utc::now();
    let numbers: Vec<usize> = range.collect();
    for chunk in numbers.chunks(CHUNK) {
        let records: Vec<SpoolRecord> = chunk
            .iter()
            .map(|n| SpoolRecord {
                event: UsageEvent::new(&tenant, "create_task", &n.to_string(), now),
                // Not counted yet: the meter counts each distinct event as it is delivered.
                quota_counted: false,
            })
            .collect();
        outbox.append(&records).await.expect("append");
    }
}

/// Fills an outbox compacting above `compact_above` with a backlog, delivers it while more is
/// appended, and returns (file size with the backlog, once delivered, compactions, events taken
/// out of the outbox as delivered, distinct events the meter counted).
async fn backlog_delivered(compact_above: u64) -> (u64, u64, OutboxStats, u64, u64) {
    let dir = temp_dir("outbox-compaction");
    let outbox = Outbox::open_dir_compacting_above(&dir, compact_above).expect("outbox");
    append(&outbox, 0..BACKLOG).await;
    let full = file_size(&dir);
    let meter = Arc::new(MemoryMeter::new());
    let counters = Arc::new(MeteringCounters::default());
    let task = delivery::start(
        meter.clone(),
        outbox.clone(),
        Duration::from_millis(50),
        counters.clone(),
        Arc::default(),
    );
    append(&outbox, BACKLOG..BACKLOG + DURING).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while (counters.snapshot().delivered < (BACKLOG + DURING) as u64 || outbox.backlog() > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = file_size(&dir);
    let stats = outbox.stats();
    task.shutdown(Duration::from_secs(5)).await;
    let record = SpoolRecord {
        event: UsageEvent::new(
            &test_tenant("acme-compaction"),
            "create_task",
            "0",
            Utc::now(),
        ),
        quota_counted: false,
    };
    let counted = meter.used(&quota_key_of(&record)).await.expect("counter");
    let _ = std::fs::remove_dir_all(&dir);
    (full, drained, stats, counters.snapshot().delivered, counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_file_shrinks_once_a_large_backlog_is_delivered_and_loses_nothing() {
    let (full, kept, stats, delivered, _) = backlog_delivered(u64::MAX).await;
    eprintln!(
        "without compaction: {full} bytes with {BACKLOG} events, {kept} bytes once delivered"
    );
    assert_eq!(
        (stats.compactions, delivered),
        (0, (BACKLOG + DURING) as u64)
    );
    assert!(
        kept * 2 > full,
        "redb keeps the file's size while it is open"
    );

    let (full, shrunk, stats, delivered, distinct) = backlog_delivered(1 << 20).await;
    eprintln!(
        "compacting above 1 MiB: {full} bytes with {BACKLOG} events, {shrunk} bytes once \
delivered ({} compaction(s), {:.1} ms in all)",
        stats.compactions,
        stats.compaction_micros as f64 / 1e3
    );
    assert!(stats.compactions >= 1, "compacted");
    assert!(shrunk * 4 < full, "{shrunk} bytes left of {full}");
    let all = (BACKLOG + DURING) as u64;
    assert_eq!(
        (delivered, distinct),
        (all, all),
        "every event delivered once across the compaction"
    );
}
