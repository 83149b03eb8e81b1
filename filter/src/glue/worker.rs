//! What the root context and the HTTP contexts of one worker share: the gate's [`WorkerState`]
//! (configuration, keys, token cache) and the ids of Envoy counters.

use std::collections::HashMap;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::Context;
use proxy_wasm::types::MetricType;

use crate::config::JwksSource;
use crate::gate::{Counter, WorkerState};
use crate::jwks::Installed;

/// What the root context and the HTTP contexts of one worker share.
pub(super) struct Worker {
    pub(super) state: WorkerState,
    /// Each counter's metric id, defined on first use (its name formatted once per worker).
    metrics: HashMap<Counter, u32>,
}

impl Worker {
    pub(super) fn new(state: WorkerState) -> Self {
        Self {
            state,
            metrics: HashMap::new(),
        }
    }

    /// Increments an Envoy counter, defining it on first use.
    pub(super) fn count(&mut self, counter: Counter) {
        let id = match self.metrics.get(&counter) {
            Some(id) => *id,
            None => match hostcalls::define_metric(MetricType::Counter, &counter.name()) {
                Ok(id) => {
                    self.metrics.insert(counter, id);
                    id
                }
                Err(_) => return,
            },
        };
        let _ = hostcalls::increment_metric(id, 1);
    }

    /// Dispatches a JWKS fetch (remote JWKS only). Returns the call's token.
    pub(super) fn start_fetch(&mut self, ctx: &dyn Context, now: u64) -> Option<u32> {
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
                self.state.keys.fetch_started(now);
                Some(token)
            }
            Err(e) => {
                log::warn!(
                    "mcp-edge: cannot fetch JWKS from cluster {}: {e:?}",
                    r.cluster
                );
                self.state.keys.fetch_not_started(now);
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
            Installed::Kept(e) => {
                log::warn!("mcp-edge: JWKS refresh failed, keeping the current keys: {e}")
            }
            Installed::Unchanged | Installed::NotFetched => {}
        }
    }
}
