//! Test support: an outbox whose disk can be made to fail on demand, through redb's own
//! storage-backend interface: full, the way a full disk fails (every write and sync answers
//! `ENOSPC`); or hung, the way a dead network disk hangs (a sync waits until released). Also a
//! writer thread made to panic ([`Outbox::crash_writer`]).

use std::fs::OpenOptions;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use super::{COMPACT_ABOVE_BYTES, OUTBOX_FILE, Outbox, OutboxError};

/// Turns the outbox's disk "full" (`true`) or back to normal (`false`); also hangs it.
#[derive(Debug, Clone, Default)]
pub struct DiskFull {
    full: Arc<AtomicBool>,
    hung: Arc<(Mutex<bool>, Condvar)>,
}

impl DiskFull {
    pub fn set(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
    }

    /// While `true`, every sync waits (the writer thread with it) until set back to `false`.
    pub fn hang(&self, hung: bool) {
        let (lock, wake) = &*self.hung;
        *lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = hung;
        wake.notify_all();
    }

    fn check(&self) -> std::io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
        } else {
            Ok(())
        }
    }

    fn wait_while_hung(&self) {
        let (lock, wake) = &*self.hung;
        let mut hung = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *hung {
            hung = wake
                .wait(hung)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: FileBackend,
    full: DiskFull,
}

impl StorageBackend for FaultyFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.full.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.full.wait_while_hung();
        self.full.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.full.check()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(s, e)
    }
}

impl Outbox {
    /// Makes the writer thread panic (outside a transaction), as a bug in it would; it ends.
    pub fn crash_writer(&self) {
        let _ = self.tx.send(super::writer::Command::Crash);
    }

    /// The outbox in `dir` on a disk that [`DiskFull`] can fill.
    pub fn open_dir_with_fault(dir: &Path) -> Result<(Self, DiskFull), OutboxError> {
        let full = DiskFull::default();
        let path = dir.join(OUTBOX_FILE);
        let switch = full.clone();
        let outbox = Self::open_with(
            dir,
            Box::new(move || {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(redb::StorageError::from)?;
                let inner = FileBackend::new(file)?;
                let backend = FaultyFile {
                    inner,
                    full: switch.clone(),
                };
                Ok(redb::Builder::new().create_with_backend(backend)?)
            }),
            COMPACT_ABOVE_BYTES,
        )?;
        Ok((outbox, full))
    }
}
