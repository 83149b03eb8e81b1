//! The outbox's one writer thread, and group commit: every caller sends its command and waits;
//! the thread takes every command that is waiting (up to [`MAX_GROUP`]), applies all appends and
//! removals in one durable transaction (one fsync), then answers them all. Concurrent calls thus
//! share an fsync, and a delivery's removals ride along with the next appends.
//!
//! When a commit fails (disk full, I/O error) the outbox is marked unwritable, which makes
//! metering refuse billable calls; while it is, the thread probes the disk every
//! [`PROBE_INTERVAL`] and marks it writable again as soon as a probe commit succeeds.
//!
//! The thread also says whether it is alive and moving ([`Shared::writer_state`]): it marks when
//! it starts and ends each piece of work, and a guard marks it stopped when it ends, panics
//! included. A thread gone, or busy with one group for longer than its deadline (a hung disk),
//! makes metering refuse billable calls before they run and the readiness check fail.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::storage::{RawEntry, Storage};

/// Commands applied in one transaction at most.
pub const MAX_GROUP: usize = 4096;
/// How often an unwritable outbox is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// How long the thread sleeps between commands while all is well (it wakes on any command).
const IDLE_WAIT: Duration = Duration::from_secs(3600);
/// How long one piece of the writer's work (a group commit, a probe, a compaction) may take before
/// the writer counts as stuck, and how long a caller waits for its answer, by default. A commit
/// takes milliseconds; a compaction only runs on an (almost) empty outbox.
pub const WRITER_DEADLINE: Duration = Duration::from_secs(10);

/// What the writer thread is doing, as its handles see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterState {
    /// Waiting for commands, or working for less than its deadline.
    Running,
    /// Working on one piece for longer than its deadline (`Duration`: for how long).
    Stuck(Duration),
    /// The thread has ended (closed, or it panicked).
    Stopped,
}

pub type Reply<T> = oneshot::Sender<Result<T, String>>;

pub enum Command {
    Append {
        records: Vec<Vec<u8>>,
        done: Reply<()>,
    },
    Remove {
        keys: Vec<u64>,
        done: Reply<()>,
    },
    First {
        max: usize,
        done: Reply<Vec<RawEntry>>,
    },
    /// Closes the file (releasing its lock) and stops the thread, after the commands before it.
    Close {
        done: Reply<()>,
    },
    /// Test support: the thread panics.
    #[cfg(feature = "test-support")]
    Crash,
}

/// State the writer shares with the handles: health and group-commit counters.
#[derive(Debug)]
pub struct Shared {
    pub writable: AtomicBool,
    /// Transactions committed that appended something.
    pub append_commits: AtomicU64,
    /// Records appended.
    pub appended: AtomicU64,
    /// Commits that failed.
    pub failures: AtomicU64,
    /// Entries waiting for delivery.
    pub backlog: AtomicU64,
    /// Compactions of the file.
    pub compactions: AtomicU64,
    /// Time spent compacting, in microseconds.
    pub compaction_micros: AtomicU64,
    /// The thread has ended.
    stopped: AtomicBool,
    /// When the current piece of work began, in milliseconds after `epoch` plus one; 0 = idle.
    busy_since: AtomicU64,
    /// [`WRITER_DEADLINE`] or what a test set, in milliseconds.
    deadline_ms: AtomicU64,
    epoch: Instant,
}

impl Shared {
    pub fn new() -> Self {
        Self {
            writable: AtomicBool::new(true),
            append_commits: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            backlog: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            compaction_micros: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            busy_since: AtomicU64::new(0),
            deadline_ms: AtomicU64::new(millis(WRITER_DEADLINE)),
            epoch: Instant::now(),
        }
    }

    /// How long a piece of work may take, and a caller wait for its answer.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms.load(Ordering::Relaxed))
    }

    pub fn set_deadline(&self, deadline: Duration) {
        self.deadline_ms.store(millis(deadline), Ordering::Relaxed);
    }

    pub fn writer_state(&self) -> WriterState {
        if self.stopped.load(Ordering::SeqCst) {
            return WriterState::Stopped;
        }
        let since = self.busy_since.load(Ordering::SeqCst);
        if since == 0 {
            return WriterState::Running;
        }
        let busy = self
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(since - 1));
        if busy > self.deadline() {
            WriterState::Stuck(busy)
        } else {
            WriterState::Running
        }
    }

    /// Runs one piece of the writer's work, marked busy meanwhile.
    fn busy<T>(&self, work: impl FnOnce() -> T) -> T {
        let now = millis(self.epoch.elapsed()).saturating_add(1);
        self.busy_since.store(now, Ordering::SeqCst);
        let result = work();
        self.busy_since.store(0, Ordering::SeqCst);
        result
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Marks the writer stopped when the thread ends, however it ends (a panic unwinds through it).
struct StoppedOnDrop<'a>(&'a Shared);

impl Drop for StoppedOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        if std::thread::panicking() {
            tracing::error!(
                "the usage outbox writer panicked; billable calls are refused until the backend restarts"
            );
        }
    }
}

/// Runs until every sender is gone.
pub fn run(mut storage: Storage, rx: &Receiver<Command>, shared: &Shared) {
    let _stopped = StoppedOnDrop(shared);
    let mut next_probe = Instant::now();
    loop {
        let writable = shared.writable.load(Ordering::SeqCst);
        if !writable && Instant::now() >= next_probe {
            shared.busy(|| probe(&mut storage, shared));
            next_probe = Instant::now() + PROBE_INTERVAL;
            continue;
        }
        let wait = if writable {
            IDLE_WAIT
        } else {
            next_probe.saturating_duration_since(Instant::now())
        };
        let first = match rx.recv_timeout(wait) {
            Ok(command) => command,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }
        if let Some(done) = shared.busy(|| apply(&mut storage, group, shared)) {
            drop(storage);
            let _ = done.send(Ok(()));
            return;
        }
    }
}

fn probe(storage: &mut Storage, shared: &Shared) {
    if !storage.has_room(1) {
        return;
    }
    match storage.probe() {
        Ok(()) => {
            tracing::warn!("usage outbox writable again; billable calls are accepted");
            shared.writable.store(true, Ordering::SeqCst);
        }
        Err(e) => tracing::debug!(error = %e, "usage outbox still unwritable"),
    }
}

/// Applies one group: appends and removals in one commit, then the reads. Returns the reply of
/// a close request, if the group holds one.
fn apply(storage: &mut Storage, group: Vec<Command>, shared: &Shared) -> Option<Reply<()>> {
    let mut appends = Vec::new();
    let mut removals = Vec::new();
    let mut reads = Vec::new();
    let mut close = None;
    let mut delivered = false;
    for command in group {
        match command {
            Command::Append { records, done } => appends.push((records, done)),
            Command::Remove { keys, done } => removals.push((keys, done)),
            Command::First { max, done } => reads.push((max, done)),
            Command::Close { done } => close = Some(done),
            #[cfg(feature = "test-support")]
            Command::Crash => panic!("test fault: the usage outbox writer panics"),
        }
    }
    let records: Vec<&[u8]> = appends
        .iter()
        .flat_map(|(r, _)| r.iter().map(Vec::as_slice))
        .collect();
    let keys: Vec<u64> = removals
        .iter()
        .flat_map(|(k, _)| k.iter().copied())
        .collect();
    if !records.is_empty() || !keys.is_empty() {
        let result = if storage.has_room(records.len()) {
            storage.commit(&records, &keys)
        } else {
            Err("the in-memory usage outbox is full".to_owned())
        };
        account(shared, &result, records.len());
        shared.backlog.store(storage.len(), Ordering::Relaxed);
        delivered = result.is_ok() && !keys.is_empty();
        for (_, done) in appends {
            let _ = done.send(result.clone());
        }
        for (_, done) in removals {
            let _ = done.send(result.clone());
        }
    }
    for (max, done) in reads {
        let _ = done.send(storage.first(max));
    }
    // Once everyone of this group has its answer.
    if delivered && close.is_none() {
        compact_if_due(storage, shared);
    }
    close
}

/// After a delivery's removals: shrinks the file if it is due (appends wait meanwhile).
fn compact_if_due(storage: &mut Storage, shared: &Shared) {
    match storage.compact_if_due() {
        None => {}
        Some(Ok(done)) => {
            shared.compactions.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(done.took.as_micros()).unwrap_or(u64::MAX);
            shared
                .compaction_micros
                .fetch_add(micros, Ordering::Relaxed);
            tracing::info!(
                before_bytes = done.before,
                after_bytes = done.after,
                millis = done.took.as_secs_f64() * 1e3,
                backlog = storage.len(),
                "usage outbox compacted"
            );
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "compacting the usage outbox failed; it stays as large")
        }
    }
}

fn account(shared: &Shared, result: &Result<(), String>, appended: usize) {
    match result {
        Ok(()) if appended > 0 => {
            shared.append_commits.fetch_add(1, Ordering::Relaxed);
            shared
                .appended
                .fetch_add(appended as u64, Ordering::Relaxed);
            shared.writable.store(true, Ordering::SeqCst);
        }
        Ok(()) => {}
        Err(e) => {
            shared.failures.fetch_add(1, Ordering::Relaxed);
            if shared.writable.swap(false, Ordering::SeqCst) {
                tracing::error!(error = %e, "usage outbox unwritable; refusing billable calls until it recovers");
            }
        }
    }
}
