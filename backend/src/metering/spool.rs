//! The local spool: usage events that could not be delivered to Redis yet.
//!
//! With a spool directory it is an append-only JSON-lines file (`usage-spool.jsonl`), fsync'd on
//! every append, so spooled events survive a crash or restart of the backend. Without one it is a
//! bounded in-memory queue (lost on exit; the backend warns at startup). Replaying reads a prefix
//! of the spool ([`Spool::read`]) and, once every event of it is in Redis, removes exactly that
//! prefix ([`Spool::consume`]), keeping anything appended meanwhile. Delivery is idempotent by
//! event id, so a crash between delivering and consuming only repeats deliveries that Redis then
//! ignores. One spool directory belongs to one backend process.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::event::SpoolRecord;

/// The spool file's name inside the spool directory.
pub const SPOOL_FILE: &str = "usage-spool.jsonl";
/// How many events the in-memory spool holds before it drops the oldest.
pub const MEMORY_SPOOL_CAP: usize = 100_000;

/// How far a [`Spool::read`] got: pass it to [`Spool::consume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(u64);

#[derive(Debug)]
enum Backing {
    File { dir: PathBuf, path: PathBuf },
    Memory { records: VecDeque<SpoolRecord> },
}

/// Events waiting for Redis. Thread-safe; every method is blocking (file I/O), so async code calls
/// it through `spawn_blocking`.
#[derive(Debug)]
pub struct Spool {
    backing: Mutex<Backing>,
}

fn lock_poisoned() -> std::io::Error {
    std::io::Error::other("spool lock poisoned")
}

impl Spool {
    /// A file spool in `dir` (created if missing). A torn last line, left by a crash in the middle
    /// of an append, is cut off: that append never completed, so nobody was told it had.
    pub fn open_dir(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(SPOOL_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                bytes = bytes.len() - complete,
                "cutting a torn last line off the usage spool"
            );
            file.set_len(complete as u64)?;
            file.sync_all()?;
        }
        sync_dir(dir)?;
        Ok(Self {
            backing: Mutex::new(Backing::File {
                dir: dir.to_owned(),
                path,
            }),
        })
    }

    /// An in-memory spool (nothing survives a restart).
    pub fn memory() -> Self {
        Self {
            backing: Mutex::new(Backing::Memory {
                records: VecDeque::new(),
            }),
        }
    }

    /// Whether this spool survives a restart.
    pub fn is_durable(&self) -> bool {
        self.backing
            .lock()
            .is_ok_and(|b| matches!(*b, Backing::File { .. }))
    }

    /// Appends records; for a file spool they are on disk when this returns.
    pub fn append(&self, records: &[SpoolRecord]) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut backing = self.backing.lock().map_err(|_| lock_poisoned())?;
        match &mut *backing {
            Backing::File { path, .. } => {
                let mut lines = Vec::new();
                for record in records {
                    serde_json::to_writer(&mut lines, record)?;
                    lines.push(b'\n');
                }
                let mut file = OpenOptions::new().append(true).create(true).open(path)?;
                file.write_all(&lines)?;
                file.sync_data()
            }
            Backing::Memory { records: queue } => {
                queue.extend(records.iter().cloned());
                let excess = queue.len().saturating_sub(MEMORY_SPOOL_CAP);
                if excess > 0 {
                    queue.drain(..excess);
                    tracing::error!(
                        dropped = excess,
                        "in-memory usage spool full: dropped the oldest usage events (configure --spool-dir)"
                    );
                }
                Ok(())
            }
        }
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> std::io::Result<bool> {
        let backing = self.backing.lock().map_err(|_| lock_poisoned())?;
        match &*backing {
            Backing::File { path, .. } => Ok(std::fs::metadata(path).map_or(0, |m| m.len()) == 0),
            Backing::Memory { records } => Ok(records.is_empty()),
        }
    }

    /// Up to `max` records from the start of the spool, and the mark to consume them. Lines that
    /// are not a record (a damaged file) are skipped with a warning and consumed with the rest.
    pub fn read(&self, max: usize) -> std::io::Result<(Vec<SpoolRecord>, Mark)> {
        let backing = self.backing.lock().map_err(|_| lock_poisoned())?;
        match &*backing {
            Backing::File { path, .. } => {
                let mut bytes = Vec::new();
                match File::open(path) {
                    Ok(mut f) => {
                        f.read_to_end(&mut bytes)?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                let mut records = Vec::new();
                let mut offset = 0usize;
                while records.len() < max {
                    let Some(end) = bytes[offset..].iter().position(|b| *b == b'\n') else {
                        break;
                    };
                    let line = &bytes[offset..offset + end];
                    match serde_json::from_slice::<SpoolRecord>(line) {
                        Ok(record) => records.push(record),
                        Err(e) => tracing::warn!(
                            error = %e,
                            offset,
                            "skipping a usage spool line that is not an event"
                        ),
                    }
                    offset += end + 1;
                }
                Ok((records, Mark(offset as u64)))
            }
            Backing::Memory { records } => {
                let taken: Vec<SpoolRecord> = records.iter().take(max).cloned().collect();
                let mark = Mark(taken.len() as u64);
                Ok((taken, mark))
            }
        }
    }

    /// Removes what [`Spool::read`] returned with `mark`, keeping anything appended since.
    pub fn consume(&self, mark: Mark) -> std::io::Result<()> {
        let mut backing = self.backing.lock().map_err(|_| lock_poisoned())?;
        match &mut *backing {
            Backing::File { dir, path } => {
                let mut file = OpenOptions::new().read(true).write(true).open(&*path)?;
                let len = file.metadata()?.len();
                if mark.0 >= len {
                    file.set_len(0)?;
                    return file.sync_all();
                }
                // Keep the tail: write it to a new file and rename it over the spool.
                file.seek(SeekFrom::Start(mark.0))?;
                let mut tail = Vec::new();
                file.read_to_end(&mut tail)?;
                let tmp = dir.join(format!("{SPOOL_FILE}.tmp"));
                {
                    let mut out = File::create(&tmp)?;
                    out.write_all(&tail)?;
                    out.sync_all()?;
                }
                std::fs::rename(&tmp, &*path)?;
                sync_dir(dir)
            }
            Backing::Memory { records } => {
                let n = usize::try_from(mark.0)
                    .unwrap_or(usize::MAX)
                    .min(records.len());
                records.drain(..n);
                Ok(())
            }
        }
    }
}

/// Makes a directory's entries (a created or renamed file) durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::event::UsageEvent;
    use crate::tenant::test_tenant;

    fn record(tool: &str, counted: bool) -> SpoolRecord {
        SpoolRecord {
            event: UsageEvent::new(
                &test_tenant("acme"),
                tool,
                &uuid::Uuid::new_v4().to_string(),
                chrono::Utc::now(),
            ),
            quota_counted: counted,
        }
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mcp-edge-spool-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn check(spool: &Spool) {
        assert!(spool.is_empty().expect("empty"));
        let (a, b, c) = (
            record("create_task", true),
            record("update_task", false),
            record("get_analytics", true),
        );
        spool.append(&[a.clone(), b.clone()]).expect("append");
        assert!(!spool.is_empty().expect("empty"));
        let (read, mark) = spool.read(10).expect("read");
        assert_eq!(read, [a.clone(), b.clone()]);
        // Appended after the read: survives consuming what was read.
        spool.append(std::slice::from_ref(&c)).expect("append");
        spool.consume(mark).expect("consume");
        let (rest, mark) = spool.read(10).expect("read");
        assert_eq!(rest, std::slice::from_ref(&c));
        spool.consume(mark).expect("consume");
        assert!(spool.is_empty().expect("empty"));
        // Reading at most `max`.
        spool.append(&[a.clone(), b, c]).expect("append");
        let (first, mark) = spool.read(1).expect("read");
        assert_eq!(first, [a]);
        spool.consume(mark).expect("consume");
        assert_eq!(spool.read(10).expect("read").0.len(), 2);
    }

    #[test]
    fn memory_spool() {
        let spool = Spool::memory();
        assert!(!spool.is_durable());
        check(&spool);
    }

    #[test]
    fn file_spool_write_read_truncate() {
        let dir = temp_dir();
        let spool = Spool::open_dir(&dir).expect("open");
        assert!(spool.is_durable());
        check(&spool);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn file_spool_survives_reopening_and_cuts_torn_lines() {
        let dir = temp_dir();
        let a = record("create_task", true);
        let b = record("update_task", false);
        {
            let spool = Spool::open_dir(&dir).expect("open");
            spool.append(&[a.clone(), b.clone()]).expect("append");
        }
        // A crash in the middle of a later append, and a damaged line.
        let path = dir.join(SPOOL_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"event\":{\"event_id\":\"evt_torn")
            .expect("write");
        drop(f);
        let spool = Spool::open_dir(&dir).expect("reopen");
        let (read, _) = spool.read(10).expect("read");
        assert_eq!(read, [a.clone(), b.clone()]);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"not json\n"))
            .expect("write");
        let c = record("assign_task", true);
        spool.append(std::slice::from_ref(&c)).expect("append");
        let (read, mark) = spool.read(10).expect("read");
        assert_eq!(read, [a, b, c]);
        spool.consume(mark).expect("consume");
        assert!(spool.is_empty().expect("empty"));
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 0);
        std::fs::remove_dir_all(&dir).ok();
    }
}
