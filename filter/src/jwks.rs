//! The JWKS lifecycle of one worker, as plain state: when to fetch, whether a request may wait for a
//! fetch, and installing what a fetch returned.
//!
//! The glue only dispatches the HTTP call this module asks for and hands back the answer. Keys come
//! from an inline JWKS (fixed) or from an Envoy cluster: fetched at start (fast retries until the
//! first keys are in), refreshed every `refresh_seconds`, and fetched again when a token names an
//! unknown `kid` (at most once per `min_refetch_seconds`). One fetch runs at a time; the requests
//! that need it wait for it ([`crate::jwks_waiters`]). A failed fetch keeps the current keys.

use crate::config::{EdgeConfig, JwksSource};
use crate::jwks_waiters::{FetchQueue, Join, MIN_KEYLESS_FETCH_INTERVAL_MS, WAIT_GRACE_MS};
use crate::keys::KeySet;

/// After a failed fetch, the next one waits this long (or the refresh period, if shorter).
pub const RETRY_AFTER_FAILED_FETCH_SECS: u64 = 5;

/// The signing keys of one worker and the state of their fetching.
#[derive(Debug, Default)]
pub struct KeyStore {
    keys: Option<KeySet>,
    /// Digest of the JWKS document the keys came from: an unchanged document changes nothing.
    digest: Option<String>,
    /// The one fetch and the requests waiting for it.
    queue: FetchQueue,
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

    /// Whether a request that needs keys it lacks may wait for a fetch at `now_ms`: one runs, or
    /// one may start. With keys (an unknown `kid`), a fetch starts at most once per
    /// `min_refetch_seconds`; without any (just started, or the authorization server was down), at
    /// most once per [`MIN_KEYLESS_FETCH_INTERVAL_MS`].
    pub fn may_wait_for_keys(&self, cfg: &EdgeConfig, now_ms: u64) -> bool {
        let JwksSource::Remote(r) = &cfg.jwks_source else {
            return false;
        };
        let interval_ms = match self.keys {
            None => MIN_KEYLESS_FETCH_INTERVAL_MS,
            Some(_) => r.min_refetch_seconds.saturating_mul(1000),
        };
        self.queue.may_wait(interval_ms, now_ms)
    }

    /// A request (the glue's `id`) waits for keys (after [`Self::may_wait_for_keys`]).
    pub fn join(&mut self, id: u32, now_ms: u64) -> Join {
        self.queue.join(id, now_ms)
    }

    /// A waiting request went away: it is not resumed.
    pub fn leave(&mut self, id: u32) {
        self.queue.leave(id);
    }

    /// On the root's timer: whether it must dispatch a fetch now — a request asked for one, or a
    /// scheduled refresh is due and no fetch runs (a refresh due is pushed back, so a fetch that
    /// never answers does not make every tick fetch again).
    pub fn fetch_due(&mut self, cfg: &EdgeConfig, now_ms: u64) -> bool {
        self.queue.wanted() || (self.queue.idle() && self.refresh_due(cfg, now_ms / 1000))
    }

    fn refresh_due(&mut self, cfg: &EdgeConfig, now: u64) -> bool {
        if !matches!(cfg.jwks_source, JwksSource::Remote(_)) || now < self.next_refresh {
            return false;
        }
        self.next_refresh = now + RETRY_AFTER_FAILED_FETCH_SECS;
        true
    }

    /// A fetch was dispatched.
    pub fn fetch_started(&mut self, now_ms: u64) {
        self.queue.started(now_ms);
    }

    /// A fetch could not be dispatched (counts as started for the interval); its waiters are
    /// judged now ([`Self::take_waiters`]).
    pub fn fetch_not_started(&mut self, now_ms: u64) {
        self.queue.not_started(now_ms);
    }

    /// The requests to judge now that the fetch they waited for ended.
    pub fn take_waiters(&mut self) -> Vec<u32> {
        self.queue.take_waiters()
    }

    /// The requests that have waited past the fetch's timeout (and a grace): judged without it.
    pub fn overdue_waiters(&mut self, cfg: &EdgeConfig, now_ms: u64) -> Vec<u32> {
        let JwksSource::Remote(r) = &cfg.jwks_source else {
            return self.queue.take_waiters();
        };
        self.queue
            .overdue(r.timeout_ms.saturating_add(WAIT_GRACE_MS), now_ms)
    }

    /// Installs the keys of a JWKS answer (`status` is the `:status` header). The fetch has ended:
    /// its waiters are judged now ([`Self::take_waiters`]).
    pub fn install(
        &mut self,
        cfg: &EdgeConfig,
        status: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Installed {
        self.queue.ended();
        let JwksSource::Remote(remote) = &cfg.jwks_source else {
            return Installed::NotFetched;
        };
        let parsed = match status {
            Some("200") => KeySet::from_jwks(body, &cfg.algorithms),
            other => Err(fetch_failure(&remote.cluster, other, body)),
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

/// At most this many bytes of a failed fetch's answer go into the log line.
const FAILURE_DETAIL_BYTES: usize = 240;

/// Why a fetch brought no keys, in words an operator can act on. When Envoy could not reach the
/// cluster it answers the call itself, 503 with a plain-text reason (`upstream connect error or
/// disconnect/reset before headers. reset reason: ...`): that reason is kept (printable ASCII
/// only, bounded). Envoy 1.40 leaves the TLS error out of it (a certificate from an untrusted CA,
/// or for another name, reads "remote connection failure"; envoyproxy/envoy#45011), so a
/// connection failure also says where the TLS reason is.
fn fetch_failure(cluster: &str, status: Option<&str>, body: &[u8]) -> String {
    let status = status.unwrap_or("none");
    let detail: String = body
        .iter()
        .take(FAILURE_DETAIL_BYTES)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                ' '
            }
        })
        .collect();
    let detail = detail.trim();
    let mut why = if detail.is_empty() {
        format!("JWKS endpoint answered status {status}")
    } else {
        format!("JWKS endpoint answered status {status}: {detail}")
    };
    if detail.contains("connection failure") || detail.contains("connection termination") {
        why.push_str(&format!(
            " (Envoy could not connect to cluster {cluster} or refused its TLS certificate; its \
             stats say which: cluster.{cluster}.ssl.fail_verify_error = not signed by a trusted \
             CA, ssl.fail_verify_san = issued for another name, upstream_cx_connect_fail = \
             nothing answering; Envoy's `connection` log at debug level has the TLS error)"
        ));
    }
    why
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
    fn without_keys_requests_wait_for_one_fetch_at_most_once_a_second() {
        let cfg = remote_config();
        let mut store = KeyStore::new(&cfg);
        assert!(store.keys().is_none());
        assert!(store.may_wait_for_keys(&cfg, 100_000));
        assert_eq!(store.join(1, 100_000), Join::Wait { dispatch: true });
        assert!(store.fetch_due(&cfg, 100_000), "a request asked");
        store.fetch_started(100_000);
        assert!(!store.fetch_due(&cfg, 100_050), "one fetch at a time");
        assert!(store.may_wait_for_keys(&cfg, 100_050));
        assert_eq!(store.join(2, 100_050), Join::Wait { dispatch: false });
        // The fetch fails: the keys stay absent, both waiters are judged (503), and the next
        // fetch a request may wait for starts a second after this one started.
        assert!(matches!(
            store.install(&cfg, Some("503"), b"", 100),
            Installed::Kept(_)
        ));
        assert_eq!(store.take_waiters(), vec![1, 2]);
        assert!(!store.may_wait_for_keys(&cfg, 100_999));
        assert!(store.may_wait_for_keys(&cfg, 101_000));
    }

    #[test]
    fn a_failed_fetch_says_why_with_envoys_own_words() {
        let cfg = remote_config();
        let mut store = KeyStore::new(&cfg);
        let envoy = b"upstream connect error or disconnect/reset before headers. reset reason: \
remote connection failure";
        let Installed::Kept(why) = store.install(&cfg, Some("503"), envoy, 100) else {
            panic!("a 503 installs nothing");
        };
        assert!(why.starts_with(
            "JWKS endpoint answered status 503: upstream connect error or disconnect/reset \
             before headers. reset reason: remote connection failure (Envoy could not connect \
             to cluster c or refused its TLS certificate"
        ));
        assert!(why.contains("cluster.c.ssl.fail_verify_error"), "{why}");
        let Installed::Kept(why) = store.install(&cfg, Some("500"), b"oops", 100) else {
            panic!("a 500 installs nothing");
        };
        assert_eq!(why, "JWKS endpoint answered status 500: oops");
        // Control bytes never reach the log; the detail is bounded.
        let noisy = [b"bad\n\x1b[31m".as_slice(), &[b'x'; 1000]].concat();
        let Installed::Kept(why) = store.install(&cfg, Some("404"), &noisy, 100) else {
            panic!("a 404 installs nothing");
        };
        assert!(!why.contains('\n') && !why.contains('\x1b'), "{why}");
        assert!(why.len() < 300, "{}", why.len());
        assert!(why.ends_with(&"x".repeat(20)), "{why}");
        let Installed::Kept(why) = store.install(&cfg, None, b"", 100) else {
            panic!("no answer installs nothing");
        };
        assert_eq!(why, "JWKS endpoint answered status none");
    }

    #[test]
    fn with_keys_an_unknown_kid_refetches_once_per_period() {
        let cfg = remote_config();
        let mut store = KeyStore::new(&cfg);
        store.fetch_started(100_000);
        assert_eq!(
            store.install(&cfg, Some("200"), &jwks(), 100),
            Installed::Changed(1)
        );
        assert!(!store.may_wait_for_keys(&cfg, 129_999));
        assert!(store.may_wait_for_keys(&cfg, 130_000));
    }

    #[test]
    fn waiters_past_the_fetch_timeout_are_judged_without_it() {
        let cfg = remote_config();
        let mut store = KeyStore::new(&cfg);
        store.join(7, 1_000);
        store.fetch_started(1_000);
        // Default timeout 5 s, plus the grace.
        assert!(
            store
                .overdue_waiters(&cfg, 1_000 + 5_000 + WAIT_GRACE_MS)
                .is_empty()
        );
        assert_eq!(
            store.overdue_waiters(&cfg, 1_001 + 5_000 + WAIT_GRACE_MS),
            vec![7]
        );
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
        assert!(!store.fetch_due(&cfg, 10_000), "a fetch runs");
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
