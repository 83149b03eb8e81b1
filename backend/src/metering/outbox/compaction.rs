//! When to shrink the outbox file. redb reuses the pages that delivered events free, but while
//! the file is open it does not give them back to the file system (it trims the file only when
//! closed): after a long outage a backend that keeps running keeps a file the size of the largest
//! backlog. [`redb::Database::compact`] moves the live pages down and truncates the file; it needs
//! the database to itself (`&mut`), which the writer thread has, so appends wait while it runs.
//! Compacting only when the backlog is small keeps that wait short (the work is proportional to
//! what is still stored), and only when the file is well above its size after the last compaction
//! keeps it from running again and again on a file that cannot shrink further.

/// Compact when the file is larger than this (bytes) by default.
pub const COMPACT_ABOVE_BYTES: u64 = 64 << 20;
/// Compact only while at most this many events wait (two delivery batches).
pub const COMPACT_MAX_BACKLOG: u64 = 1024;

#[derive(Debug, Clone, Copy)]
pub struct Compaction {
    above: u64,
    /// The file size that makes the next compaction due.
    due_above: u64,
}

impl Compaction {
    /// Compaction of a file larger than `above` bytes.
    pub fn new(above: u64) -> Self {
        Self {
            above,
            due_above: above,
        }
    }

    /// Whether to compact a file of `file_bytes` holding `backlog` events.
    pub fn due(&self, file_bytes: u64, backlog: u64) -> bool {
        backlog <= COMPACT_MAX_BACKLOG && file_bytes > self.due_above
    }

    /// A compaction left the file at `file_bytes`: the next one waits until it doubles (and is
    /// above the threshold).
    pub fn done(&mut self, file_bytes: u64) {
        self.due_above = self.above.max(file_bytes.saturating_mul(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_on_a_big_file_with_a_small_backlog_then_not_again_until_it_grows() {
        let mut c = Compaction::new(1000);
        assert!(!c.due(1000, 0), "at the threshold");
        assert!(c.due(1001, COMPACT_MAX_BACKLOG));
        assert!(
            !c.due(1_000_000, COMPACT_MAX_BACKLOG + 1),
            "backlog too large"
        );
        c.done(800);
        assert!(!c.due(1500, 0), "not yet twice the compacted size");
        assert!(c.due(1601, 0));
        c.done(10);
        assert!(c.due(1001, 0), "the threshold again");
    }
}
