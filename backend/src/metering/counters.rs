//! Counters of what metering refused or delivered, kept for the metrics endpoint
//! ([`crate::metrics`]); the fail-open figures live in [`super::fail_open`], the outbox's in
//! [`super::outbox`].

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct MeteringCounters {
    /// Calls refused as replays (-32053).
    replays_refused: AtomicU64,
    /// Billable calls refused up front because the outbox was unwritable (-32052).
    unwritable_refusals: AtomicU64,
    /// Usage events delivered from the outbox to the usage store (duplicates the store ignored
    /// included: each left the outbox once).
    delivered: AtomicU64,
}

/// A snapshot of [`MeteringCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeteringCounts {
    pub replays_refused: u64,
    pub unwritable_refusals: u64,
    pub delivered: u64,
}

impl MeteringCounters {
    pub fn replay_refused(&self) {
        self.replays_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unwritable_refusal(&self) {
        self.unwritable_refusals.fetch_add(1, Ordering::Relaxed);
    }

    pub fn delivered(&self, events: usize) {
        self.delivered.fetch_add(events as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MeteringCounts {
        MeteringCounts {
            replays_refused: self.replays_refused.load(Ordering::Relaxed),
            unwritable_refusals: self.unwritable_refusals.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
        }
    }
}
