//! What the root context and the HTTP contexts of one worker share: keys, token cache, stats.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::Context;
use proxy_wasm::types::MetricType;

use crate::config::{EdgeConfig, JwksSource};
use crate::gate::Outcome;
use crate::keys::KeySet;
use crate::token_cache::TokenCache;

use super::RETRY_AFTER_FAILED_FETCH_SECS;

/// What the root context and the HTTP contexts of one worker share.
pub(super) struct Worker {
    pub(super) config: Rc<EdgeConfig>,
    pub(super) keys: Option<KeySet>,
    pub(super) keys_digest: Option<String>,
    pub(super) last_fetch_started: Option<u64>,
    pub(super) fetches_in_flight: u32,
    pub(super) next_refresh: u64,
    pub(super) cache: TokenCache,
    pub(super) metrics: HashMap<String, u32>,
}

impl Worker {
    pub(super) fn count(&mut self, outcome: Outcome) {
        self.count_name(format!("mcp_edge.outcome.{}", outcome.stat_name()));
    }

    pub(super) fn count_name(&mut self, name: String) {
        let id = match self.metrics.get(&name) {
            Some(id) => *id,
            None => match hostcalls::define_metric(MetricType::Counter, &name) {
                Ok(id) => {
                    self.metrics.insert(name, id);
                    id
                }
                Err(_) => return,
            },
        };
        let _ = hostcalls::increment_metric(id, 1);
    }

    /// Starts a JWKS fetch if the configuration has a remote source. Returns the call's token.
    pub(super) fn start_fetch(&mut self, ctx: &dyn Context, now: u64) -> Option<u32> {
        let JwksSource::Remote(r) = &self.config.jwks_source else {
            return None;
        };
        self.last_fetch_started = Some(now);
        let headers = vec![
            (":method", "GET"),
            (":path", r.path.as_str()),
            (":authority", r.authority.as_str()),
            ("accept", "application/json"),
        ];
        match ctx.dispatch_http_call(
            &r.cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(r.timeout_ms),
        ) {
            Ok(token) => {
                self.fetches_in_flight += 1;
                Some(token)
            }
            Err(e) => {
                log::warn!(
                    "mcp-edge: cannot fetch JWKS from cluster {}: {e:?}",
                    r.cluster
                );
                None
            }
        }
    }

    /// Installs the keys from a JWKS response; keeps the old keys when the response is unusable.
    pub(super) fn install_keys(&mut self, status: Option<String>, body: Option<Vec<u8>>, now: u64) {
        self.fetches_in_flight = self.fetches_in_flight.saturating_sub(1);
        let refresh = match &self.config.jwks_source {
            JwksSource::Remote(r) => r.refresh_seconds,
            JwksSource::Inline => return,
        };
        let body = body.unwrap_or_default();
        let result = match status.as_deref() {
            Some("200") => KeySet::from_jwks(&body, &self.config.algorithms),
            other => Err(format!("JWKS endpoint answered status {other:?}")),
        };
        match result {
            Ok(keys) => {
                let digest = mcp_edge_contract::body_digest(&body);
                if self.keys_digest.as_deref() != Some(digest.as_str()) {
                    log::info!(
                        "mcp-edge: installed {} signing key(s) from the JWKS",
                        keys.len()
                    );
                    // Tokens verified with keys that are gone must be verified again.
                    self.cache.clear();
                }
                self.keys = Some(keys);
                self.keys_digest = Some(digest);
                self.next_refresh = now + refresh;
            }
            Err(e) => {
                log::warn!("mcp-edge: JWKS refresh failed, keeping the current keys: {e}");
                self.next_refresh = now + RETRY_AFTER_FAILED_FETCH_SECS.min(refresh);
            }
        }
    }
}
