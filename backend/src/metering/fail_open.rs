//! Bounded fail-open: while the quota store is down, a tier that fails open still stops each
//! tenant at its daily quota, counted in this process from the last count the store gave it.
//! Per replica, so an approximation: with N backends a tenant may get up to N times what was left
//! (or N full quotas for a tenant a backend has not seen today). The events of calls admitted this
//! way count them in the store when delivered, which reconciles the store's counter.
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

#[derive(Debug, Default)]
struct State {
    /// Per day counter: the last count the store gave, and calls admitted here since.
    counts: HashMap<String, (u64, u64)>,
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
        state.counts.insert(key.to_owned(), (used, 0));
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
        let (known, admitted) = state.counts.get(key).copied().unwrap_or((0, 0));
        if limit.is_some_and(|limit| known + admitted >= limit) {
            state.stats.refused += 1;
            return Err(known + admitted);
        }
        state.counts.insert(key.to_owned(), (known, admitted + 1));
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
            && let Some((_, admitted)) = state.counts.get_mut(key)
        {
            *admitted = admitted.saturating_sub(1);
        }
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
        f.seen("k", 6);
        assert_eq!(f.admit("k", Some(5), Tier::Pro), Err(6));
    }
}
