//! What the root context and the HTTP contexts of one worker share: the gate's [`WorkerState`]
//! (configuration, keys, token cache), the ids of Envoy counters, and the requests the root
//! carries on (those waiting for the JWKS fetch, and the calls it dispatched for them).

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::rc::Weak;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::Context;
use proxy_wasm::types::MetricType;

use crate::config::JwksSource;
use crate::gate::{Counter, Gate, WorkerState};
use crate::jwks::Installed;

/// What the root context and the HTTP contexts of one worker share.
pub(super) struct Worker {
    pub(super) state: WorkerState,
    /// Each counter's metric, defined on first use (its name formatted once per worker).
    metrics: HashMap<Counter, Metric>,
    /// When the pending counts were last handed to Envoy (unix ms).
    flushed_at_ms: u64,
    /// Whether a global rate limit call of this worker has been dispatched (its connection to
    /// the service is made by the first).
    pub(super) global_called: bool,
    /// The gates of the requests waiting for the JWKS fetch, by HTTP context id (the ids of
    /// `state.keys`' waiters): the root judges and resumes them when the fetch ends.
    pub(super) waiting: HashMap<u32, Weak<RefCell<Gate>>>,
    /// Calls the root dispatched for a request it resumed (the SDK answers a call to the context
    /// whose callback dispatched it), by token: the root hands each answer to its request.
    pub(super) relayed: HashMap<u32, Relayed>,
    /// A request asked the root for a fetch and set the root's timer to fire at once: the root
    /// sets its own period again on that tick.
    pub(super) tick_hurried: bool,
}

/// A request whose call the root relays.
pub(super) struct Relayed {
    /// Its HTTP context id.
    pub(super) id: u32,
    pub(super) gate: Weak<RefCell<Gate>>,
}

/// An Envoy counter of this worker and the counts not handed to it yet.
struct Metric {
    id: u32,
    pending: u64,
}

impl Worker {
    pub(super) fn new(state: WorkerState) -> Self {
        Self {
            state,
            metrics: HashMap::new(),
            flushed_at_ms: 0,
            global_called: false,
            waiting: HashMap::new(),
            relayed: HashMap::new(),
            tick_hurried: false,
        }
    }

    /// Counts one for an Envoy counter, defining it on first use: at once when
    /// `stats_flush_ms` is 0, else at the next [`Self::flush_counts`].
    pub(super) fn count(&mut self, counter: Counter) {
        let metric = match self.metrics.entry(counter) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                match hostcalls::define_metric(MetricType::Counter, &counter.name()) {
                    Ok(id) => e.insert(Metric { id, pending: 0 }),
                    Err(_) => return,
                }
            }
        };
        if self.state.config.stats_flush_ms == 0 {
            let _ = hostcalls::increment_metric(metric.id, 1);
        } else {
            metric.pending += 1;
        }
    }

    /// On a tick: hands the pending counts to Envoy when `stats_flush_ms` has passed (the tick may
    /// be faster, for the JWKS; a tick up to 100 ms early counts as on time).
    pub(super) fn flush_counts_if_due(&mut self, now_ms: u64) {
        let period = self.state.config.stats_flush_ms;
        if now_ms.saturating_sub(self.flushed_at_ms) + 100 >= period {
            self.flushed_at_ms = now_ms;
            self.flush_counts();
        }
    }

    /// Hands every pending count to Envoy: one host call per counter that moved.
    pub(super) fn flush_counts(&mut self) {
        for metric in self.metrics.values_mut().filter(|m| m.pending > 0) {
            if let Ok(delta) = i64::try_from(metric.pending) {
                let _ = hostcalls::increment_metric(metric.id, delta);
            }
            metric.pending = 0;
        }
    }

    /// A request (HTTP context `id`) is gone: it is not resumed, nor are calls relayed to it.
    pub(super) fn forget_request(&mut self, id: u32) {
        if self.waiting.remove(&id).is_some() {
            self.state.keys.leave(id);
        }
        self.relayed.retain(|_, r| r.id != id);
    }

    /// Dispatches the JWKS fetch (remote JWKS only; called from the root, so that its answer comes
    /// to the root). Returns the call's token; without one, the waiters are to be judged now.
    pub(super) fn start_fetch(&mut self, ctx: &dyn Context, now_ms: u64) -> Option<u32> {
        let JwksSource::Remote(r) = &self.state.config.jwks_source else {
            return None;
        };
        let headers = vec![
            (":method", "GET"),
            (":path", r.path.as_str()),
            (":authority", r.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(r.timeout_ms);
        match ctx.dispatch_http_call(&r.cluster, headers, None, vec![], timeout) {
            Ok(token) => {
                self.state.keys.fetch_started(now_ms);
                self.count(Counter::Jwks("started"));
                Some(token)
            }
            Err(e) => {
                log::warn!(
                    "mcp-edge: cannot fetch JWKS from cluster {}: {e:?}",
                    r.cluster
                );
                self.state.keys.fetch_not_started(now_ms);
                self.count(Counter::Jwks("not_started"));
                None
            }
        }
    }

    /// Installs a JWKS answer and logs what it did.
    pub(super) fn install_keys(&mut self, status: Option<String>, body: Option<Vec<u8>>, now: u64) {
        let body = body.unwrap_or_default();
        match self.state.install_keys(status.as_deref(), &body, now) {
            Installed::Changed(n) => {
                log::info!("mcp-edge: installed {n} signing key(s) from the JWKS")
            }
            Installed::Kept(e) if self.state.keys.keys().is_some() => {
                log::warn!("mcp-edge: JWKS refresh failed, keeping the current keys: {e}")
            }
            Installed::Kept(e) => log::warn!(
                "mcp-edge: JWKS fetch failed and there are no signing keys yet, so requests \
                 that need a key are refused (503): {e}"
            ),
            Installed::Unchanged | Installed::NotFetched => {}
        }
    }
}
