//! Bounded fail-open: while the quota store is down, a tier that fails open still stops each
//! tenant at its daily quota, counted in this process from the last count the store gave it.
//! Per replica, so an approximation: with N backends a tenant may get up to N times what was left
//! (or N full quotas for a tenant a backend has not seen today). The events of calls admitted this
//! way count them in the store when delivered, which reconciles the store's counter.
//!
//! Reconciled before the store grants again: once the store answers, a day counter with calls
//! admitted here whose events are not delivered yet stays counted here ([`FailOpen::pending`]) —
//! the store's counter does not hold them, and granting from it would hand the quota out again.
//! When the last of them is delivered, the next reservation first raises the store's counter to
//! what this process knows it reached ([`FailOpen::floor`]: the last count the store gave plus the
//! calls delivered since), which also restores counts a Redis without persistence lost.
//!
//! [`FailOpenStats`] tells how many calls were admitted or refused that way and how long the store
//! was failing open; a summary is logged when the store answers again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::plan::Tier;

/// Day counters remembered at most (tenants × days); past it the memory is cleared.
const MAX_KEYS: usize = 100_000;

/// What fail-open has done since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailOpenStats {
    /// Billable calls run while the store was down (counted here only).
    pub admitted: u64,
    /// [`FailOpenStats::admitted`] per tier, in [`Tier::ALL`] order.
    pub admitted_by_tier: [u64; 3],
    /// Billable calls refused at the quota while the store was down.
    pub refused: u64,
    /// Time spent failing open (ended outages, plus the current one).
    pub time: Duration,
}

#[derive(Debug, Default)]
pub struct FailOpen {
    state: Mutex<State>,
}

/// What this process knows of one day counter.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    /// The last count the store gave, plus the calls admitted here delivered since.
    known: u64,
    /// Calls admitted here (store down) whose events are not delivered yet.
    admitted: u64,
    /// Calls were admitted here since the store's last count: the store is to be reconciled.
    reconcile: bool,
}

#[derive(Debug, Default)]
struct State {
    counts: HashMap<String, Count>,
    down_since: Option<Instant>,
    stats: FailOpenStats,
}

impl FailOpen {
    /// The store answered with the count `used` of `key`: remember it; an outage has ended.
    pub fn seen(&self, key: &str, used: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.counts.len() >= MAX_KEYS {
            state.counts.clear();
        }
        let count = state.counts.entry(key.to_owned()).or_default();
        count.known = used;
        count.reconcile = false;
        if let Some(since) = state.down_since.take() {
            state.stats.time += since.elapsed();
            tracing::warn!(
                seconds = since.elapsed().as_secs_f64(),
                admitted_total = state.stats.admitted,
                refused_total = state.stats.refused,
                "quota store back; fail-open ended"
            );
        }
    }

    /// The store is down: admits one call of `key` if this process's count stays within `limit`;
    /// otherwise the count to report as used.
    pub fn admit(&self, key: &str, limit: Option<u64>, tier: Tier) -> Result<(), u64> {
        let Ok(mut state) = self.state.lock() else {
            return Ok(());
        };
        state.down_since.get_or_insert_with(Instant::now);
        let count = state.counts.entry(key.to_owned()).or_default();
        let used = count.known + count.admitted;
        if limit.is_some_and(|limit| used >= limit) {
            state.stats.refused += 1;
            return Err(used);
        }
        count.admitted += 1;
        count.reconcile = true;
        state.stats.admitted += 1;
        if let Some(i) = Tier::ALL.iter().position(|t| *t == tier) {
            state.stats.admitted_by_tier[i] += 1;
        }
        Ok(())
    }

    /// A call admitted by [`FailOpen::admit`] failed: it does not count (towards the quota; the
    /// stats still count it as admitted).
    pub fn release(&self, key: &str) {
        if let Ok(mut state) = self.state.lock()
            && let Some(count) = state.counts.get_mut(key)
        {
            count.admitted = count.admitted.saturating_sub(1);
        }
    }

    /// The event of a call admitted here reached the store's counter `key`.
    pub fn delivered(&self, key: &str) {
        if let Ok(mut state) = self.state.lock()
            && let Some(count) = state.counts.get_mut(key)
            && count.admitted > 0
        {
            count.admitted -= 1;
            count.known += 1;
        }
    }

    /// Whether calls admitted here for `key` are not all in the store's counter yet: until they
    /// are, `key` is counted here even though the store answers.
    pub fn pending(&self, key: &str) -> bool {
        self.state
            .lock()
            .is_ok_and(|state| state.counts.get(key).is_some_and(|c| c.admitted > 0))
    }

    /// The count the store's counter `key` must have at least before it grants again (0: no
    /// reconciliation due). [`FailOpen::seen`] ends the reconciliation.
    pub fn floor(&self, key: &str) -> u64 {
        self.state.lock().map_or(0, |state| {
            state
                .counts
                .get(key)
                .filter(|c| c.reconcile && c.admitted == 0)
                .map_or(0, |c| c.known)
        })
    }

    pub fn stats(&self) -> FailOpenStats {
        self.state.lock().map_or_else(
            |_| FailOpenStats::default(),
            |state| FailOpenStats {
                time: state.stats.time + state.down_since.map_or(Duration::ZERO, |s| s.elapsed()),
                ..state.stats
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_the_quota_from_the_last_known_count() {
        let f = FailOpen::default();
        f.seen("k", 3);
        assert_eq!(f.admit("k", Some(5), Tier::Pro), Ok(()));
        assert_eq!(f.admit("k", Some(5), Tier::Pro), Ok(()));
        assert_eq!(f.admit("k", Some(5), Tier::Pro), Err(5));
        f.release("k");
        assert_eq!(f.admit("k", Some(5), Tier::Pro), Ok(()));
        assert_eq!(f.admit("other", None, Tier::Enterprise), Ok(()));
        let stats = f.stats();
        assert_eq!((stats.admitted, stats.refused), (4, 1));
        assert_eq!(stats.admitted_by_tier, [0, 3, 1]);
        // The store's count does not hold the two calls admitted here until they are delivered.
        f.seen("k", 6);
        assert_eq!(f.admit("k", Some(5), Tier::Pro), Err(8));
    }

    #[test]
    fn the_store_is_reconciled_once_every_admitted_call_is_delivered() {
        let f = FailOpen::default();
        f.seen("k", 3);
        assert_eq!(f.floor("k"), 0, "nothing to reconcile");
        for _ in 0..3 {
            assert_eq!(f.admit("k", Some(20), Tier::Pro), Ok(()));
        }
        f.release("k");
        assert!(f.pending("k"));
        assert_eq!(
            f.floor("k"),
            0,
            "not before every admitted call is in the store"
        );
        f.delivered("k");
        assert!(f.pending("k"));
        f.delivered("k");
        assert!(!f.pending("k"));
        assert_eq!(f.floor("k"), 5, "3 seen, 2 delivered");
        f.delivered("k");
        assert_eq!(
            f.floor("k"),
            5,
            "a delivery of no call admitted here changes nothing"
        );
        f.seen("k", 5);
        assert_eq!(f.floor("k"), 0, "reconciled");
        f.delivered("unknown");
        assert!(!f.pending("unknown"));
    }
}
