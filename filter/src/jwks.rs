//! The JWKS lifecycle of one worker, as plain state: when to fetch, whether a request may trigger a
//! fetch, and installing what a fetch returned.
//!
//! The glue only dispatches the HTTP call this module asks for and hands back the answer. Keys come
//! from an inline JWKS (fixed) or from an Envoy cluster: fetched at start (fast retries until the
//! first keys are in), refreshed every `refresh_seconds`, and fetched again when a token names an
//! unknown `kid` (at most once per `min_refetch_seconds`). A failed fetch keeps the current keys.

use crate::config::{EdgeConfig, JwksSource};
use crate::keys::KeySet;

/// At most this many JWKS fetches run at once on a worker that has no keys yet.
pub const MAX_INITIAL_FETCHES: u32 = 32;

/// After a failed fetch, the next one waits this long (or the refresh period, if shorter).
pub const RETRY_AFTER_FAILED_FETCH_SECS: u64 = 5;

/// The signing keys of one worker and the state of their fetching.
#[derive(Debug, Default)]
pub struct KeyStore {
    keys: Option<KeySet>,
    /// Digest of the JWKS document the keys came from: an unchanged document changes nothing.
    digest: Option<String>,
    last_fetch_started: Option<u64>,
    in_flight: u32,
    next_refresh: u64,
}

/// What installing a fetched JWKS did.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    /// New keys: tokens verified with the old ones must be verified again.
    Changed(usize),
    /// The same document as before.
    Unchanged,
    /// Unusable answer; the current keys stay.
    Kept(String),
    /// Inline keys: nothing is fetched.
    NotFetched,
}

impl KeyStore {
    /// The keys of an inline JWKS, or none yet for a remote one.
    pub fn new(cfg: &EdgeConfig) -> Self {
        Self {
            keys: cfg.inline_keys.clone(),
            ..Self::default()
        }
    }

    pub fn keys(&self) -> Option<&KeySet> {
        self.keys.as_ref()
    }

    /// Whether a request may start a JWKS fetch at `now`. With keys, an unknown `kid` may trigger one
    /// fetch per `min_refetch_seconds`. Without any keys (just started, or the authorization server
    /// was down) a request may fetch itself rather than fail, but only a few fetches run at once.
    pub fn may_refetch(&self, cfg: &EdgeConfig, now: u64) -> bool {
        match &cfg.jwks_source {
            JwksSource::Inline => false,
            JwksSource::Remote(_) if self.keys.is_none() => self.in_flight < MAX_INITIAL_FETCHES,
            JwksSource::Remote(r) => self
                .last_fetch_started
                .is_none_or(|t| now.saturating_sub(t) >= r.min_refetch_seconds),
        }
    }

    /// On the timer: whether a scheduled fetch is due (and if so, it is pushed back, so a fetch that
    /// never answers does not make every tick fetch again).
    pub fn refresh_due(&mut self, cfg: &EdgeConfig, now: u64) -> bool {
        if !matches!(cfg.jwks_source, JwksSource::Remote(_)) || now < self.next_refresh {
            return false;
        }
        self.next_refresh = now + RETRY_AFTER_FAILED_FETCH_SECS;
        true
    }

    /// A fetch was dispatched.
    pub fn fetch_started(&mut self, now: u64) {
        self.last_fetch_started = Some(now);
        self.in_flight += 1;
    }

    /// A fetch could not be dispatched (counts as started for the refetch debounce).
    pub fn fetch_not_started(&mut self, now: u64) {
        self.last_fetch_started = Some(now);
    }

    /// A request that started a fetch went away before the answer: the answer will not come.
    pub fn fetch_abandoned(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Installs the keys of a JWKS answer (`status` is the `:status` header).
    pub fn install(
        &mut self,
        cfg: &EdgeConfig,
        status: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Installed {
        self.in_flight = self.in_flight.saturating_sub(1);
        let JwksSource::Remote(remote) = &cfg.jwks_source else {
            return Installed::NotFetched;
        };
        let parsed = match status {
            Some("200") => KeySet::from_jwks(body, &cfg.algorithms),
            other => Err(format!("JWKS endpoint answered status {other:?}")),
        };
        match parsed {
            Ok(keys) => {
                let digest = mcp_edge_contract::body_digest(body);
                let changed = self.digest.as_deref() != Some(digest.as_str());
                let count = keys.len();
                self.keys = Some(keys);
                self.digest = Some(digest);
                self.next_refresh = now + remote.refresh_seconds;
                if changed {
                    Installed::Changed(count)
                } else {
                    Installed::Unchanged
                }
            }
            Err(e) => {
                self.next_refresh = now + RETRY_AFTER_FAILED_FETCH_SECS.min(remote.refresh_seconds);
                Installed::Kept(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;
    use jwt_simple::prelude::*;
    use serde_json::json;

    fn remote_config() -> EdgeConfig {
        let v = json!({
            "resource": "https://mcp.example/mcp",
            "issuers": ["https://as"],
            "jwks": {"remote": {"cluster": "c", "path": "/jwks", "authority": "as",
                                "refresh_seconds": 300, "min_refetch_seconds": 30}},
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write"]},
            "tool_scopes": {}
        });
        parse_config(v.to_string().as_bytes(), &|_| None).unwrap()
    }

    fn jwks() -> Vec<u8> {
        let kp = Ed25519KeyPair::generate().with_key_id("k1");
        let jwk: serde_json::Value = serde_json::from_str(&kp.public_key().to_jwk()).unwrap();
        json!({"keys": [jwk]}).to_string().into_bytes()
    }

    #[test]
    fn without_keys_requests_may_fetch_but_only_a_few_at_once() {
        let cfg = remote_config();
        let mut store = KeyStore::new(&cfg);
        assert!(store.keys().is_none());
        for _ in 0..MAX_INITIAL_FETCHES {
            assert!(store.may_refetch(&cfg, 100));
            store.fetch_started(100);
        }
        assert!(!store.may_refetch(&cfg, 100));
        // Requests that went away before their answer do not hold a place for ever.
        store.fetch_abandoned();
        assert!(store.may_refetch(&cfg, 100));
    }

    #[test]
    fn with_keys_an_unknown_kid_refetches_once_per_period() {
        let cfg = remote_config();
        let mut store = KeyStore::new(&cfg);
        store.fetch_started(100);
        assert_eq!(
            store.install(&cfg, Some("200"), &jwks(), 100),
            Installed::Changed(1)
        );
        assert!(!store.may_refetch(&cfg, 129));
        assert!(store.may_refetch(&cfg, 130));
    }

    #[test]
    fn refresh_schedule_and_failures_keep_keys() {
        let cfg = remote_config();
        let mut store = KeyStore::new(&cfg);
        assert!(store.refresh_due(&cfg, 0));
        assert!(
            !store.refresh_due(&cfg, 4),
            "pushed back while the fetch runs"
        );
        store.fetch_started(0);
        let doc = jwks();
        assert_eq!(
            store.install(&cfg, Some("200"), &doc, 0),
            Installed::Changed(1)
        );
        assert!(!store.refresh_due(&cfg, 299));
        assert!(store.refresh_due(&cfg, 300));
        assert_eq!(
            store.install(&cfg, Some("200"), &doc, 300),
            Installed::Unchanged
        );
        assert!(matches!(
            store.install(&cfg, Some("503"), b"", 600),
            Installed::Kept(_)
        ));
        assert!(store.keys().is_some(), "a failed fetch keeps the keys");
        assert!(!store.refresh_due(&cfg, 604));
        assert!(store.refresh_due(&cfg, 605), "retried soon after a failure");
        assert!(matches!(
            store.install(&cfg, Some("200"), b"{}", 700),
            Installed::Kept(_)
        ));
    }
}
