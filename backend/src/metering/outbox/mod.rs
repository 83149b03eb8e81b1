//! The durable outbox of usage events: a successful billable call's event is committed here
//! before the call's result is returned, and a delivery task ([`super::delivery`]) moves it to
//! the usage store (Redis) afterwards, deleting it once delivered. An acknowledged call is thus
//! never unbilled, whatever happens to Redis or to this process.
//!
//! Why redb: an embedded, pure-Rust, maintained (1.0 since 2023) key-value store with ACID write
//! transactions, copy-on-write pages and checksummed commits: a transaction is on disk entirely or
//! not at all, so a torn write or a full disk cannot damage what was committed, and deletes free
//! pages that later appends reuse (no rewrite of the remainder). It locks its file against a
//! second process. fjall (an LSM tree) brings background compaction threads and a larger
//! dependency tree for a queue that is almost always empty; the disk-queue crates (yaque,
//! queue-file) are small single-maintainer projects with weaker crash guarantees. redb's one
//! writer at a time suits group commit ([`writer`]): concurrent appends share one transaction and
//! one fsync.
//!
//! Once a large backlog is delivered the file is compacted ([`compaction`]).
//!
//! Without a directory the outbox lives in memory (development; nothing survives the process).

mod compaction;
mod storage;
mod writer;

#[cfg(feature = "test-support")]
pub mod fault;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;

use tokio::sync::{Notify, oneshot};

use super::event::SpoolRecord;
pub use compaction::{COMPACT_ABOVE_BYTES, COMPACT_MAX_BACKLOG};
pub use storage::{MEMORY_OUTBOX_CAP, OUTBOX_FILE};
use storage::{Opener, Storage};
use writer::{Command, Shared};
pub use writer::{WRITER_DEADLINE, WriterState};

/// The outbox cannot take or give events (disk full, I/O error, writer gone).
#[derive(Debug, Clone, thiserror::Error)]
#[error("usage outbox unavailable: {0}")]
pub struct OutboxError(pub String);

/// An entry read from the outbox: its key (to remove it) and its record, or why it is unreadable.
pub type OutboxEntry = (u64, Result<SpoolRecord, String>);

/// Group-commit counters since the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxStats {
    /// Durable transactions that appended events (about one fsync each).
    pub append_commits: u64,
    /// Events appended.
    pub appended: u64,
    /// Commits that failed.
    pub failures: u64,
    /// Compactions of the file.
    pub compactions: u64,
    /// Time spent compacting (appends waited meanwhile), in microseconds.
    pub compaction_micros: u64,
}

/// Handle of the outbox; cheap to clone. Every method goes through the writer thread.
#[derive(Clone)]
pub struct Outbox {
    tx: Sender<Command>,
    shared: Arc<Shared>,
    durable: bool,
    appended: Arc<Notify>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// The outbox in `dir` (created if missing). Fails if another process has it open.
    pub fn open_dir(dir: &Path) -> Result<Self, OutboxError> {
        Self::open_dir_compacting_above(dir, COMPACT_ABOVE_BYTES)
    }

    /// [`Outbox::open_dir`], compacting the file once it is larger than `bytes` and (almost)
    /// everything is delivered.
    pub fn open_dir_compacting_above(dir: &Path, bytes: u64) -> Result<Self, OutboxError> {
        let path = dir.join(OUTBOX_FILE);
        let open: Opener = Box::new(move || Ok(redb::Database::create(&path)?));
        Self::open_with(dir, open, bytes)
    }

    fn open_with(dir: &Path, open: Opener, compact_above: u64) -> Result<Self, OutboxError> {
        std::fs::create_dir_all(dir).map_err(|e| OutboxError(e.to_string()))?;
        let compaction = compaction::Compaction::new(compact_above);
        let storage =
            Storage::disk(open, dir.join(OUTBOX_FILE), compaction).map_err(OutboxError)?;
        Self::spawn(storage, true)
    }

    /// An in-memory outbox (nothing survives the process).
    pub fn memory() -> Self {
        // Spawning a thread only fails when the system is out of threads; nothing can run then.
        Self::spawn(Storage::memory(), false).unwrap_or_else(|e| panic!("{e}"))
    }

    fn spawn(storage: Storage, durable: bool) -> Result<Self, OutboxError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared::new());
        shared.backlog.store(storage.len(), Ordering::Relaxed);
        let for_thread = shared.clone();
        std::thread::Builder::new()
            .name("usage-outbox".into())
            .spawn(move || writer::run(storage, &rx, &for_thread))
            .map_err(|e| OutboxError(format!("starting the outbox writer: {e}")))?;
        Ok(Self {
            tx,
            shared,
            durable,
            appended: Arc::new(Notify::new()),
        })
    }

    /// Whether the outbox survives a restart.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Whether appends are expected to succeed (false after a failed commit, until a probe passes).
    pub fn is_writable(&self) -> bool {
        self.shared.writable.load(Ordering::SeqCst)
    }

    /// Whether the writer thread is alive and not stuck.
    pub fn writer_state(&self) -> WriterState {
        self.shared.writer_state()
    }

    /// `Ok` when an append is expected to succeed now: the writer runs, is not stuck, and the
    /// disk took the last commit (or a probe since).
    pub fn ready(&self) -> Result<(), OutboxError> {
        match self.writer_state() {
            WriterState::Stopped => Err(OutboxError("the outbox writer has stopped".into())),
            WriterState::Stuck(busy) => Err(OutboxError(format!(
                "the outbox writer has been busy with one commit for {} ms (disk hung?)",
                busy.as_millis()
            ))),
            WriterState::Running if !self.is_writable() => Err(OutboxError(
                "the outbox cannot be written (disk full or I/O error)".into(),
            )),
            WriterState::Running => Ok(()),
        }
    }

    /// How long the writer may work on one commit before it counts as stuck, and how long a caller
    /// waits for its answer ([`WRITER_DEADLINE`] unless set).
    pub fn set_writer_deadline(&self, deadline: std::time::Duration) {
        self.shared.set_deadline(deadline);
    }

    pub fn stats(&self) -> OutboxStats {
        OutboxStats {
            append_commits: self.shared.append_commits.load(Ordering::Relaxed),
            appended: self.shared.appended.load(Ordering::Relaxed),
            failures: self.shared.failures.load(Ordering::Relaxed),
            compactions: self.shared.compactions.load(Ordering::Relaxed),
            compaction_micros: self.shared.compaction_micros.load(Ordering::Relaxed),
        }
    }

    /// Events waiting for delivery (as of the last commit).
    pub fn backlog(&self) -> u64 {
        self.shared.backlog.load(Ordering::Relaxed)
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(writer::Reply<T>) -> Command,
    ) -> Result<T, OutboxError> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(command(done))
            .map_err(|_| OutboxError("the outbox writer has stopped".into()))?;
        let deadline = self.shared.deadline();
        // A stuck writer (hung disk) does not hold its callers for ever. An append given up here
        // may still be committed once the disk answers.
        tokio::time::timeout(deadline, answer)
            .await
            .map_err(|_| {
                OutboxError(format!(
                    "the outbox writer did not answer within {} ms",
                    deadline.as_millis()
                ))
            })?
            .map_err(|_| OutboxError("the outbox writer has stopped".into()))?
            .map_err(OutboxError)
    }

    /// Appends `records`; they are durable (for a disk outbox) when this returns `Ok`.
    pub async fn append(&self, records: &[SpoolRecord]) -> Result<(), OutboxError> {
        let encoded = records
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| OutboxError(e.to_string()))?;
        self.ask(|done| Command::Append {
            records: encoded,
            done,
        })
        .await?;
        self.appended.notify_one();
        Ok(())
    }

    /// The oldest `max` entries.
    pub async fn first(&self, max: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let raw = self.ask(|done| Command::First { max, done }).await?;
        Ok(raw
            .into_iter()
            .map(|(key, bytes)| {
                (
                    key,
                    serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
                )
            })
            .collect())
    }

    /// Removes delivered entries.
    pub async fn remove(&self, keys: Vec<u64>) -> Result<(), OutboxError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.ask(|done| Command::Remove { keys, done }).await
    }

    /// Closes the outbox file (releasing its lock); every later call fails. Call it last, at
    /// shutdown.
    pub async fn close(&self) -> Result<(), OutboxError> {
        self.ask(|done| Command::Close { done }).await
    }

    /// Resolves after the next append (or at once if one happened since the last call).
    pub async fn appended(&self) {
        self.appended.notified().await;
    }
}

/// How many events wait in the outbox directory `dir` (for tests and operators; fails while a
/// backend has it open).
pub fn pending_in(dir: &Path) -> Result<u64, OutboxError> {
    storage::count_in(&dir.join(OUTBOX_FILE)).map_err(OutboxError)
}
