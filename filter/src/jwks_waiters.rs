//! One JWKS fetch at a time per worker, and the requests that wait for it.
//!
//! A request needs a fetch while its worker has no keys (just started, reloaded, the authorization
//! server down) or when its token names a `kid` the worker does not know. If each such request
//! started its own fetch, a burst of tokens would be a burst of fetches. Here, at most one fetch
//! runs per worker (or is about to: a request asked and the root has not dispatched it yet); a
//! request that needs keys joins the waiters of that fetch, and when the fetch ends (answered,
//! failed, or not dispatched) every waiter is judged with the keys it brought: a known `kid` is
//! verified, a `kid` still unknown is refused 401, and no keys at all is a 503 with `Retry-After`.
//!
//! A new fetch starts only a minimum interval after the last one started (see
//! [`FetchQueue::may_wait`]): a request that would need one sooner is judged at once with the keys at
//! hand. Waiting is bounded: at most [`MAX_WAITERS`] requests at once (the next is judged at once,
//! 503 without keys), and a waiter whose fetch has not ended within the fetch's timeout plus
//! [`WAIT_GRACE_MS`] is judged without it ([`FetchQueue::overdue`]; Envoy ends a fetch at its
//! timeout, so this only guards against an answer that never comes).
//!
//! Plain state: the glue keeps each waiter's request by the id given here, dispatches the fetch from
//! the root context and resumes the waiters this module names.

/// At most this many requests of one worker wait for keys at once.
pub const MAX_WAITERS: usize = 1024;

/// A waiter is judged without its fetch this long after the fetch's own timeout.
pub const WAIT_GRACE_MS: u64 = 1_000;

/// Without keys, a fetch starts at most this often (the root's refresh after a failed fetch keeps
/// its own, longer, period).
pub const MIN_KEYLESS_FETCH_INTERVAL_MS: u64 = 1_000;

/// Where the worker's one fetch is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    #[default]
    Idle,
    /// A request asked for a fetch; the root dispatches it on its next tick.
    Wanted,
    InFlight,
}

/// A request waiting for keys: the glue's id for it, and since when it waits (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiter {
    id: u32,
    since_ms: u64,
}

/// What a request that needs keys does.
#[derive(Debug, PartialEq, Eq)]
pub enum Join {
    /// It waits. With `dispatch`, no fetch runs yet: the root must start one (the glue asks it).
    Wait { dispatch: bool },
    /// Too many wait already: judge it at once with the keys at hand.
    Full,
}

/// The worker's one JWKS fetch and its waiters.
#[derive(Debug, Default)]
pub struct FetchQueue {
    fetch: Fetch,
    last_started_ms: Option<u64>,
    waiters: Vec<Waiter>,
}

impl FetchQueue {
    /// Whether a request that needs keys at `now_ms` may wait for a fetch: one runs (or is wanted),
    /// or one may start because the last started at least `interval_ms` ago.
    pub fn may_wait(&self, interval_ms: u64, now_ms: u64) -> bool {
        self.fetch != Fetch::Idle
            || self
                .last_started_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= interval_ms)
    }

    /// A request (the glue's `id`) waits for keys from `now_ms`, unless too many wait already.
    pub fn join(&mut self, id: u32, now_ms: u64) -> Join {
        if self.waiters.len() >= MAX_WAITERS {
            return Join::Full;
        }
        self.waiters.push(Waiter {
            id,
            since_ms: now_ms,
        });
        let dispatch = self.fetch == Fetch::Idle;
        if dispatch {
            self.fetch = Fetch::Wanted;
        }
        Join::Wait { dispatch }
    }

    /// The request went away (its client hung up): it is not resumed.
    pub fn leave(&mut self, id: u32) {
        self.waiters.retain(|w| w.id != id);
    }

    /// Whether a request asked for a fetch the root has not dispatched yet.
    pub fn wanted(&self) -> bool {
        self.fetch == Fetch::Wanted
    }

    /// Whether no fetch runs or is wanted (the root's scheduled refresh may start one).
    pub fn idle(&self) -> bool {
        self.fetch == Fetch::Idle
    }

    /// The root dispatched the fetch at `now_ms`.
    pub fn started(&mut self, now_ms: u64) {
        self.fetch = Fetch::InFlight;
        self.last_started_ms = Some(now_ms);
    }

    /// The fetch could not be dispatched at `now_ms`: it counts as started (for the interval) and
    /// as ended (its waiters are judged now, [`Self::take_waiters`]).
    pub fn not_started(&mut self, now_ms: u64) {
        self.fetch = Fetch::Idle;
        self.last_started_ms = Some(now_ms);
    }

    /// The fetch ended (answered, or failed at Envoy): its waiters are judged now
    /// ([`Self::take_waiters`]).
    pub fn ended(&mut self) {
        self.fetch = Fetch::Idle;
    }

    /// Every waiter's id, in the order they came; none waits any more.
    pub fn take_waiters(&mut self) -> Vec<u32> {
        self.waiters.drain(..).map(|w| w.id).collect()
    }

    /// The waiters that have waited longer than `bound_ms` at `now_ms`; they wait no more.
    pub fn overdue(&mut self, bound_ms: u64, now_ms: u64) -> Vec<u32> {
        let late = |w: &Waiter| now_ms.saturating_sub(w.since_ms) > bound_ms;
        let ids = self
            .waiters
            .iter()
            .filter(|w| late(w))
            .map(|w| w.id)
            .collect();
        self.waiters.retain(|w| !late(w));
        ids
    }

    /// How many requests wait.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_makes_one_fetch_and_every_request_waits_for_it() {
        let mut q = FetchQueue::default();
        assert!(
            q.may_wait(1_000, 0),
            "nothing fetched yet: a fetch may start"
        );
        assert_eq!(q.join(1, 0), Join::Wait { dispatch: true });
        assert!(q.wanted());
        for id in 2..=20 {
            assert!(q.may_wait(1_000, 5));
            assert_eq!(q.join(id, 5), Join::Wait { dispatch: false });
        }
        q.started(6);
        assert!(!q.wanted() && !q.idle());
        assert!(q.may_wait(1_000, 7), "a fetch runs: join it");
        assert_eq!(q.join(21, 7), Join::Wait { dispatch: false });
        q.ended();
        assert_eq!(q.take_waiters(), (1..=21).collect::<Vec<_>>());
        assert_eq!(q.waiting(), 0);
        assert!(q.idle());
    }

    #[test]
    fn a_new_fetch_waits_for_the_interval() {
        let mut q = FetchQueue::default();
        assert_eq!(q.join(1, 0), Join::Wait { dispatch: true });
        q.started(0);
        q.ended();
        assert_eq!(q.take_waiters(), vec![1]);
        assert!(
            !q.may_wait(1_000, 999),
            "judged at once with the keys at hand"
        );
        assert!(q.may_wait(1_000, 1_000));
        assert_eq!(q.join(2, 1_000), Join::Wait { dispatch: true });
    }

    #[test]
    fn a_fetch_that_cannot_be_dispatched_ends_the_wait_and_counts_for_the_interval() {
        let mut q = FetchQueue::default();
        assert_eq!(q.join(1, 0), Join::Wait { dispatch: true });
        assert_eq!(q.join(2, 0), Join::Wait { dispatch: false });
        q.not_started(10);
        assert!(q.idle());
        assert_eq!(q.take_waiters(), vec![1, 2]);
        assert!(!q.may_wait(1_000, 500));
        assert!(q.may_wait(1_000, 1_010));
    }

    #[test]
    fn requests_that_went_away_are_not_resumed() {
        let mut q = FetchQueue::default();
        for id in 1..=3 {
            q.join(id, 0);
        }
        q.leave(2);
        q.leave(9);
        q.ended();
        assert_eq!(q.take_waiters(), vec![1, 3]);
    }

    #[test]
    fn waiting_is_bounded_in_number_and_time() {
        let mut q = FetchQueue::default();
        for id in 0..u32::try_from(MAX_WAITERS).unwrap() {
            assert!(matches!(q.join(id, 100), Join::Wait { .. }));
        }
        assert_eq!(q.join(5_000, 100), Join::Full);
        assert_eq!(q.waiting(), MAX_WAITERS);
        // Some leave; places free up.
        q.leave(0);
        assert_eq!(q.join(5_001, 200), Join::Wait { dispatch: false });
        // Overdue: everyone who came at 100, not the one who came at 200.
        assert!(
            q.overdue(6_000, 6_100).is_empty(),
            "not longer than the bound"
        );
        let late = q.overdue(6_000, 6_101);
        assert_eq!(late.len(), MAX_WAITERS - 1);
        assert!(!late.contains(&5_001));
        assert_eq!(q.take_waiters(), vec![5_001]);
    }
}
