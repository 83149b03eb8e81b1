//! The calls this process has run recently, by `<request id>/<JSON-RPC id>`: the in-process half
//! of "exactly once per request id". A signed request stays valid for the gateway's clock window,
//! so a captured or retried copy could run its tool again within it; the ids are remembered for
//! [`REPLAY_WINDOW`] (both sides of the window plus a margin). Redis shares them between
//! backends when configured ([`MeterStore::claim_once`](super::MeterStore::claim_once)); this
//! bounded set covers a backend without Redis, or while Redis is down.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcp_edge_contract::assertion::{LIFETIME_SECS, MAX_CLOCK_SKEW_SECS};

/// How long a call id is remembered: an assertion is accepted from its `iat` minus the skew
/// until its `exp` (`iat` + lifetime) plus the skew, of the backend's clock.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(LIFETIME_SECS + 2 * MAX_CLOCK_SKEW_SECS);
/// Ids kept at most; past it the oldest are forgotten early (and a warning says so).
pub const RECENT_CAP: usize = 200_000;

#[derive(Debug, Default)]
pub struct RecentCalls {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ids: HashSet<String>,
    order: VecDeque<(Instant, String)>,
}

impl RecentCalls {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `id`; false when it was seen within the window.
    pub fn first_time(&self, id: &str, now: Instant) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return true; // a poisoned set protects nothing; Redis still may
        };
        while let Some((at, _)) = state.order.front() {
            let expired = now.duration_since(*at) > REPLAY_WINDOW;
            if !expired && state.order.len() < RECENT_CAP {
                break;
            }
            if !expired {
                tracing::warn!("too many recent request ids; forgetting the oldest early");
            }
            if let Some((_, old)) = state.order.pop_front() {
                state.ids.remove(&old);
            }
        }
        if !state.ids.insert(id.to_owned()) {
            return false;
        }
        state.order.push_back((now, id.to_owned()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_window_only() {
        let recent = RecentCalls::new();
        let t0 = Instant::now();
        assert!(recent.first_time("r1/1", t0));
        assert!(!recent.first_time("r1/1", t0 + Duration::from_secs(60)));
        assert!(recent.first_time("r1/2", t0));
        assert!(recent.first_time("r1/1", t0 + REPLAY_WINDOW + Duration::from_secs(1)));
    }
}
