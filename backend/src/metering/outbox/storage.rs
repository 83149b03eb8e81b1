//! Where the outbox keeps its entries: a redb table on disk (`usage-outbox.redb` in the outbox
//! directory) or, without a directory, a map in memory. Only the writer thread
//! ([`super::writer`]) touches it, so nothing here locks; every method is blocking.
//!
//! Keys are a sequence number (delivery order), values the JSON of a
//! [`SpoolRecord`](crate::metering::SpoolRecord). One [`Storage::commit`] is one redb write
//! transaction with [`redb::Durability::Immediate`]: its appends and removals are on disk together
//! or not at all, whatever happens to the process or the disk meanwhile.
//!
//! After an I/O error redb refuses further work on that handle (`PreviousIo`), so the handle is
//! dropped and the file reopened on the next operation (reopening repairs it if needed).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::compaction::Compaction;

/// The outbox file's name inside the outbox directory.
pub const OUTBOX_FILE: &str = "usage-outbox.redb";
/// How many entries the in-memory outbox holds before it refuses appends.
pub const MEMORY_OUTBOX_CAP: usize = 100_000;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("usage_events");
const PROBE: TableDefinition<&str, &[u8]> = TableDefinition::new("probe");
/// Bytes the writability probe writes (and removes): enough to need a fresh page.
const PROBE_BYTES: usize = 8192;

/// Opens (or reopens) the database file.
pub type Opener = Box<dyn Fn() -> Result<Database, redb::Error> + Send>;

/// One stored entry: its key and its bytes.
pub type RawEntry = (u64, Vec<u8>);

pub enum Storage {
    Disk {
        open: Opener,
        /// The file `open` opens (for its size).
        path: PathBuf,
        compaction: Compaction,
        db: Option<Database>,
        next: u64,
        /// Entries stored (read when the file is opened, then kept up to date by each commit).
        len: u64,
    },
    Memory {
        events: BTreeMap<u64, Vec<u8>>,
        next: u64,
    },
}

fn err(e: impl Into<redb::Error>) -> String {
    e.into().to_string()
}

impl Storage {
    /// Disk storage of the file `path` that `open` opens, compacted per `compaction`; opens the
    /// file now, so a locked or unreadable outbox fails the start.
    pub fn disk(open: Opener, path: PathBuf, compaction: Compaction) -> Result<Self, String> {
        let mut storage = Self::Disk {
            open,
            path,
            compaction,
            db: None,
            next: 0,
            len: 0,
        };
        storage.ensure_open()?;
        Ok(storage)
    }

    pub fn memory() -> Self {
        Self::Memory {
            events: BTreeMap::new(),
            next: 0,
        }
    }

    /// Opens the file if it is not open, creating the table and finding the next key.
    fn ensure_open(&mut self) -> Result<(), String> {
        use redb::ReadableTableMetadata as _;
        let Self::Disk {
            open,
            db,
            next,
            len,
            ..
        } = self
        else {
            return Ok(());
        };
        if db.is_some() {
            return Ok(());
        }
        let opened = open().map_err(err)?;
        let txn = opened.begin_write().map_err(err)?;
        let (last, stored) = {
            let table = txn.open_table(EVENTS).map_err(err)?;
            let last = table.last().map_err(err)?.map(|(k, _)| k.value());
            (last, table.len().map_err(err)?)
        };
        txn.commit().map_err(err)?;
        *next = last.map_or(0, |k| k + 1);
        *len = stored;
        *db = Some(opened);
        Ok(())
    }

    /// Appends `records` after every stored entry and removes `removed`, all or nothing, durable
    /// when it returns `Ok`.
    pub fn commit(&mut self, records: &[&[u8]], removed: &[u64]) -> Result<(), String> {
        self.ensure_open()?;
        let result = match self {
            Self::Disk { db, next, len, .. } => {
                let db = db.as_ref().ok_or("outbox not open")?;
                disk_commit(db, *next, records, removed).map(|gone| {
                    *len = (*len + records.len() as u64).saturating_sub(gone);
                })
            }
            Self::Memory { events, next } => {
                memory_commit(events, *next, records, removed);
                Ok(())
            }
        };
        match (&result, self) {
            (Ok(()), Self::Disk { next, .. } | Self::Memory { next, .. }) => {
                *next += records.len() as u64;
            }
            (Err(_), Self::Disk { db, .. }) => *db = None,
            (Err(_), Self::Memory { .. }) => {}
        }
        result
    }

    /// Entries stored.
    pub fn len(&self) -> u64 {
        match self {
            Self::Disk { len, .. } => *len,
            Self::Memory { events, .. } => events.len() as u64,
        }
    }

    /// Compacts the file if it is due ([`Compaction`]): the file's size before and after, and the
    /// time it took; `None` when not due (or in memory).
    pub fn compact_if_due(&mut self) -> Option<Result<Compacted, String>> {
        let Self::Disk {
            path,
            compaction,
            db: Some(db),
            len,
            ..
        } = self
        else {
            return None;
        };
        let before = std::fs::metadata(&*path).map(|m| m.len()).ok()?;
        if !compaction.due(before, *len) {
            return None;
        }
        let start = Instant::now();
        let result = db.compact().map_err(err);
        let took = start.elapsed();
        let after = std::fs::metadata(&*path).map_or(before, |m| m.len());
        compaction.done(after);
        Some(match result {
            Ok(_) => Ok(Compacted {
                before,
                after,
                took,
            }),
            Err(e) => {
                // As after a failed commit: reopen (and repair if need be) on the next operation.
                if let Self::Disk { db, .. } = self {
                    *db = None;
                }
                Err(e)
            }
        })
    }

    /// Whether an append of `count` more would fit (memory only has a cap).
    pub fn has_room(&self, count: usize) -> bool {
        match self {
            Self::Disk { .. } => true,
            Self::Memory { events, .. } => events.len() + count <= MEMORY_OUTBOX_CAP,
        }
    }

    /// The first `max` entries in key order.
    pub fn first(&mut self, max: usize) -> Result<Vec<RawEntry>, String> {
        self.ensure_open()?;
        match self {
            Self::Disk { db, .. } => {
                let db = db.as_ref().ok_or("outbox not open")?;
                let txn = db.begin_read().map_err(err)?;
                let table = txn.open_table(EVENTS).map_err(err)?;
                let mut out = Vec::new();
                for entry in table.iter().map_err(err)?.take(max) {
                    let (k, v) = entry.map_err(err)?;
                    out.push((k.value(), v.value().to_vec()));
                }
                Ok(out)
            }
            Self::Memory { events, .. } => Ok(events
                .iter()
                .take(max)
                .map(|(k, v)| (*k, v.clone()))
                .collect()),
        }
    }

    /// Writes and removes a probe entry: whether the outbox can take appends again.
    pub fn probe(&mut self) -> Result<(), String> {
        self.ensure_open()?;
        let Self::Disk { db, .. } = self else {
            return Ok(());
        };
        let result = db
            .as_ref()
            .ok_or_else(|| "outbox not open".to_owned())
            .and_then(|db| {
                for write in [true, false] {
                    let txn = db.begin_write().map_err(err)?;
                    {
                        let mut table = txn.open_table(PROBE).map_err(err)?;
                        if write {
                            table
                                .insert("probe", [0u8; PROBE_BYTES].as_slice())
                                .map_err(err)?;
                        } else {
                            table.remove("probe").map_err(err)?;
                        }
                    }
                    txn.commit().map_err(err)?;
                }
                Ok(())
            });
        if result.is_err() {
            *db = None;
        }
        result
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy)]
pub struct Compacted {
    pub before: u64,
    pub after: u64,
    pub took: Duration,
}

/// One durable transaction; how many of `removed` were there.
fn disk_commit(
    db: &Database,
    next: u64,
    records: &[&[u8]],
    removed: &[u64],
) -> Result<u64, String> {
    let txn = db.begin_write().map_err(err)?;
    let mut gone = 0;
    {
        let mut table = txn.open_table(EVENTS).map_err(err)?;
        for (key, record) in (next..).zip(records) {
            table.insert(key, *record).map_err(err)?;
        }
        for key in removed {
            if table.remove(key).map_err(err)?.is_some() {
                gone += 1;
            }
        }
    }
    txn.commit().map_err(err)?;
    Ok(gone)
}

fn memory_commit(
    events: &mut BTreeMap<u64, Vec<u8>>,
    next: u64,
    records: &[&[u8]],
    removed: &[u64],
) {
    for (key, record) in (next..).zip(records) {
        events.insert(key, record.to_vec());
    }
    for key in removed {
        events.remove(key);
    }
}

/// How many entries the outbox file in `path` holds (opened read-only; fails while a backend has
/// it open).
pub fn count_in(path: &std::path::Path) -> Result<u64, String> {
    use redb::ReadableTableMetadata as _;
    let db = Database::open(path).map_err(err)?;
    let txn = db.begin_read().map_err(err)?;
    match txn.open_table(EVENTS) {
        Ok(table) => table.len().map_err(err),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(err(e)),
    }
}
