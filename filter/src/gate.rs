//! The edge's decisions, start to end, as pure functions over plain values.
//!
//! The proxy-wasm glue collects what Envoy gives it (method, path, the `Authorization` values, the
//! body), calls these functions and carries out the verdict. Everything a reviewer needs to judge
//! the filter's behaviour is here, and all of it runs under `cargo test`.

use crate::bearer::{BearerError, extract_bearer};
use crate::config::{EdgeConfig, JwksSource};
use crate::keys::KeySet;
use crate::prm;
use crate::reply::{self, Reply, Unauthenticated};
use crate::tenant::TenantContext;
use crate::token::{TokenError, TokenPolicy, VerifiedToken, verify_bearer};
use crate::token_cache::TokenCache;
use crate::trusted_headers::{Vouch, trusted_headers};

/// How a request ended at the edge, for stats and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    MetadataServed,
    NoToken,
    InvalidToken(&'static str),
    NotFound,
    MethodNotAllowed,
    KeysUnavailable,
    BodyTooLarge,
    InternalError,
}

impl Outcome {
    /// A stable name for Envoy stats (`mcp_edge.outcome.<name>`).
    pub fn stat_name(self) -> String {
        match self {
            Self::Allowed => "allowed".into(),
            Self::MetadataServed => "metadata_served".into(),
            Self::NoToken => "denied.no_token".into(),
            Self::InvalidToken(reason) => format!("denied.invalid_token.{reason}"),
            Self::NotFound => "denied.not_found".into(),
            Self::MethodNotAllowed => "denied.method_not_allowed".into(),
            Self::KeysUnavailable => "denied.keys_unavailable".into(),
            Self::BodyTooLarge => "denied.body_too_large".into(),
            Self::InternalError => "denied.internal_error".into(),
        }
    }
}

/// What the glue knows about the request when its headers arrive.
#[derive(Debug, Clone)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// `:path`, with query.
    pub path: &'a str,
    pub authorization: Vec<&'a [u8]>,
}

/// The verdict on a request head.
#[derive(Debug)]
pub enum HeadVerdict {
    /// Answer locally now.
    Respond(Reply, Outcome),
    /// Authenticated: hold the request until the body is complete, then [`vouch`].
    Authenticated(TenantContext),
    /// The token names a key we do not have: fetch the JWKS once, then call [`judge_head`] again
    /// with `may_refetch: false`.
    FetchKeys,
}

/// The key material the decision may use.
pub struct KeyState<'a> {
    pub keys: Option<&'a KeySet>,
    /// Whether a JWKS refetch may be started now (remote JWKS, not fetched too recently).
    pub may_refetch: bool,
}

pub fn token_policy(cfg: &EdgeConfig) -> TokenPolicy {
    TokenPolicy {
        issuers: cfg.issuers.clone(),
        audiences: cfg.audiences.clone(),
        algorithms: cfg.algorithms.clone(),
        leeway_seconds: cfg.leeway_seconds,
    }
}

fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

fn not_served(status: u32, message: &str, outcome: Outcome) -> HeadVerdict {
    HeadVerdict::Respond(
        reply::jsonrpc_error(status, reply::CODE_NOT_SERVED, message, vec![]),
        outcome,
    )
}

fn metadata_reply(cfg: &EdgeConfig, method: &str) -> HeadVerdict {
    if method != "GET" && method != "HEAD" {
        return not_served(
            405,
            "The protected resource metadata is read with GET.",
            Outcome::MethodNotAllowed,
        );
    }
    HeadVerdict::Respond(
        Reply {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "max-age=300".into()),
                ("access-control-allow-origin".into(), "*".into()),
            ],
            body: prm::document(cfg).to_string().into_bytes(),
        },
        Outcome::MetadataServed,
    )
}

fn unauthorized(cfg: &EdgeConfig, why: Unauthenticated, outcome: Outcome) -> HeadVerdict {
    HeadVerdict::Respond(
        reply::unauthorized(
            &prm::metadata_url(cfg),
            &cfg.challenge_scopes.join(" "),
            &why,
        ),
        outcome,
    )
}

fn invalid_token(cfg: &EdgeConfig, e: &TokenError) -> HeadVerdict {
    unauthorized(
        cfg,
        Unauthenticated::InvalidToken {
            description: e.description(),
        },
        Outcome::InvalidToken(e.reason()),
    )
}

/// Judges a request from its head: serve metadata, refuse, ask for keys, or authenticate.
pub fn judge_head(
    cfg: &EdgeConfig,
    head: &RequestHead<'_>,
    keys: &KeyState<'_>,
    cache: &mut TokenCache,
    now: u64,
) -> HeadVerdict {
    let path = path_only(head.path);
    if prm::is_metadata_path(cfg, path) {
        return metadata_reply(cfg, head.method);
    }
    if !cfg.mcp_paths.iter().any(|p| p == path) {
        return not_served(
            404,
            "Not found: this server answers MCP requests at its MCP endpoint only.",
            Outcome::NotFound,
        );
    }
    if !matches!(head.method, "POST" | "GET" | "DELETE") {
        return not_served(
            405,
            "The MCP endpoint accepts POST, GET and DELETE.",
            Outcome::MethodNotAllowed,
        );
    }

    let token = match extract_bearer(&head.authorization) {
        Ok(t) => t,
        Err(BearerError::Missing) => {
            return unauthorized(cfg, Unauthenticated::NoToken, Outcome::NoToken);
        }
        Err(BearerError::Malformed) => return invalid_token(cfg, &TokenError::Malformed),
    };
    if let Some(v) = cache.get(&token, now) {
        return HeadVerdict::Authenticated(v.tenant);
    }
    let Some(key_set) = keys.keys else {
        // Without keys a token can still be judged malformed or of a refused algorithm.
        if let Err(e @ (TokenError::Malformed | TokenError::AlgorithmNotAllowed(_))) =
            verify_bearer(&token, &KeySet::default(), &token_policy(cfg), now)
        {
            return invalid_token(cfg, &e);
        }
        return if keys.may_refetch {
            HeadVerdict::FetchKeys
        } else {
            HeadVerdict::Respond(
                reply::jsonrpc_error(
                    503,
                    reply::CODE_UNAVAILABLE,
                    "The MCP edge has no token signing keys yet; retry shortly.",
                    vec![("retry-after".into(), "5".into())],
                ),
                Outcome::KeysUnavailable,
            )
        };
    };
    match verify_bearer(&token, key_set, &token_policy(cfg), now) {
        Ok(VerifiedToken { tenant, expires_at }) => {
            cache.insert(
                &token,
                VerifiedToken {
                    tenant: tenant.clone(),
                    expires_at,
                },
                now,
            );
            HeadVerdict::Authenticated(tenant)
        }
        Err(TokenError::UnknownKey(_)) if keys.may_refetch => HeadVerdict::FetchKeys,
        Err(e) => invalid_token(cfg, &e),
    }
}

/// Whether a JWKS refetch may start at `now`, given when the last one started.
pub fn refetch_allowed(cfg: &EdgeConfig, last_fetch_started: Option<u64>, now: u64) -> bool {
    match &cfg.jwks_source {
        JwksSource::Inline => false,
        JwksSource::Remote(r) => {
            last_fetch_started.is_none_or(|t| now.saturating_sub(t) >= r.min_refetch_seconds)
        }
    }
}

/// The complete request of an authenticated client.
pub struct CompleteRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub request_id: &'a str,
    pub body: &'a [u8],
}

/// The last step for an authenticated request: the headers to set, or a refusal.
pub fn vouch(
    cfg: &EdgeConfig,
    tenant: &TenantContext,
    req: &CompleteRequest<'_>,
    now: u64,
) -> Result<Vec<(&'static str, String)>, (Reply, Outcome)> {
    if req.body.len() > cfg.max_body_bytes {
        return Err(body_too_large(cfg));
    }
    let v = Vouch {
        tenant,
        method: req.method,
        path: req.path,
        request_id: req.request_id,
        now,
        body: req.body,
    };
    trusted_headers(&cfg.gateway_secret, &v).map_err(|_| {
        (
            reply::jsonrpc_error(
                500,
                reply::CODE_NOT_SERVED,
                "The MCP edge could not vouch for this request.",
                vec![],
            ),
            Outcome::InternalError,
        )
    })
}

/// 413 for a body over the configured cap (checked as soon as the buffered size exceeds it).
pub fn body_too_large(cfg: &EdgeConfig) -> (Reply, Outcome) {
    (
        reply::jsonrpc_error(
            413,
            reply::CODE_PAYLOAD_REJECTED,
            &format!("Request body larger than {} bytes.", cfg.max_body_bytes),
            vec![],
        ),
        Outcome::BodyTooLarge,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;
    use jwt_simple::prelude::*;
    use serde_json::{Value, json};

    const NOW: u64 = 1_800_000_000;

    fn setup(remote: bool) -> (EdgeConfig, Ed25519KeyPair) {
        let kp = Ed25519KeyPair::generate().with_key_id("k1");
        let jwk: Value = serde_json::from_str(&kp.public_key().to_jwk()).unwrap();
        let jwks = if remote {
            json!({"remote": {"cluster": "c", "path": "/jwks", "authority": "as"}})
        } else {
            json!({"inline": {"keys": [jwk]}})
        };
        let v = json!({
            "resource": "https://mcp.example/mcp",
            "issuers": ["https://as"],
            "jwks": jwks,
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write", "mcp:admin"]}
        });
        (
            parse_config(v.to_string().as_bytes(), &|_| None).unwrap(),
            kp,
        )
    }

    fn token(kp: &Ed25519KeyPair) -> String {
        let custom = json!({"tenant_id": "acme"}).as_object().unwrap().clone();
        let mut c = Claims::with_custom_claims(custom, Duration::from_secs(600))
            .with_issuer("https://as")
            .with_audience("https://mcp.example/mcp")
            .with_subject("u1");
        c.issued_at = Some(Duration::from_secs(NOW));
        c.invalid_before = Some(Duration::from_secs(NOW));
        c.expires_at = Some(Duration::from_secs(NOW + 600));
        kp.sign(c).unwrap()
    }

    fn judge(
        cfg: &EdgeConfig,
        method: &str,
        path: &str,
        auth: Option<&str>,
        may_refetch: bool,
    ) -> HeadVerdict {
        let mut cache = TokenCache::new(8, cfg.leeway_seconds);
        judge_with(cfg, method, path, auth, may_refetch, &mut cache)
    }

    fn judge_with(
        cfg: &EdgeConfig,
        method: &str,
        path: &str,
        auth: Option<&str>,
        may_refetch: bool,
        cache: &mut TokenCache,
    ) -> HeadVerdict {
        let head = RequestHead {
            method,
            path,
            authorization: auth.map(|a| vec![a.as_bytes()]).unwrap_or_default(),
        };
        let keys = KeyState {
            keys: cfg.inline_keys.as_ref(),
            may_refetch,
        };
        judge_head(cfg, &head, &keys, cache, NOW)
    }

    fn status(v: &HeadVerdict) -> u32 {
        match v {
            HeadVerdict::Respond(r, _) => r.status,
            HeadVerdict::Authenticated(_) => 0,
            HeadVerdict::FetchKeys => 1,
        }
    }

    #[test]
    fn metadata_is_public() {
        let (cfg, _) = setup(false);
        for p in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
        ] {
            match judge(&cfg, "GET", p, None, false) {
                HeadVerdict::Respond(r, Outcome::MetadataServed) => {
                    let doc: Value = serde_json::from_slice(&r.body).unwrap();
                    assert_eq!(doc["resource"], "https://mcp.example/mcp");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            status(&judge(
                &cfg,
                "POST",
                "/.well-known/oauth-protected-resource",
                None,
                false
            )),
            405
        );
    }

    #[test]
    fn paths_and_methods() {
        let (cfg, kp) = setup(false);
        let auth = format!("Bearer {}", token(&kp));
        assert_eq!(
            status(&judge(&cfg, "POST", "/other", Some(&auth), false)),
            404
        );
        assert_eq!(
            status(&judge(&cfg, "POST", "/mcp/", Some(&auth), false)),
            404
        );
        assert_eq!(status(&judge(&cfg, "PUT", "/mcp", Some(&auth), false)), 405);
        assert_eq!(
            status(&judge(&cfg, "POST", "/mcp?x=1", Some(&auth), false)),
            0
        );
        assert_eq!(status(&judge(&cfg, "GET", "/mcp", Some(&auth), false)), 0);
        assert_eq!(
            status(&judge(&cfg, "DELETE", "/mcp", Some(&auth), false)),
            0
        );
    }

    #[test]
    fn missing_and_invalid_tokens_get_401_challenges() {
        let (cfg, _) = setup(false);
        match judge(&cfg, "POST", "/mcp", None, false) {
            HeadVerdict::Respond(r, Outcome::NoToken) => {
                let h = r.header("www-authenticate").unwrap();
                assert!(h.contains("resource_metadata=\"https://mcp.example/.well-known/oauth-protected-resource/mcp\""));
                assert!(!h.contains("error="));
            }
            other => panic!("{other:?}"),
        }
        match judge(
            &cfg,
            "POST",
            "/mcp?access_token=abc",
            Some("Bearer nope"),
            false,
        ) {
            HeadVerdict::Respond(r, Outcome::InvalidToken("malformed")) => {
                assert!(
                    r.header("www-authenticate")
                        .unwrap()
                        .contains("error=\"invalid_token\"")
                );
            }
            other => panic!("{other:?}"),
        }
        // a token in the query string is not a token
        assert!(matches!(
            judge(&cfg, "POST", "/mcp?access_token=abc", None, false),
            HeadVerdict::Respond(_, Outcome::NoToken)
        ));
    }

    #[test]
    fn unknown_kid_asks_for_keys_once() {
        let (cfg, _) = setup(false);
        let stranger = Ed25519KeyPair::generate().with_key_id("k9");
        let auth = format!("Bearer {}", token(&stranger));
        assert!(matches!(
            judge(&cfg, "POST", "/mcp", Some(&auth), true),
            HeadVerdict::FetchKeys
        ));
        assert!(matches!(
            judge(&cfg, "POST", "/mcp", Some(&auth), false),
            HeadVerdict::Respond(_, Outcome::InvalidToken("unknown_kid"))
        ));
    }

    #[test]
    fn no_keys_fails_closed() {
        let (cfg, kp) = setup(true);
        let auth = format!("Bearer {}", token(&kp));
        assert!(matches!(
            judge(&cfg, "POST", "/mcp", Some(&auth), true),
            HeadVerdict::FetchKeys
        ));
        assert_eq!(
            status(&judge(&cfg, "POST", "/mcp", Some(&auth), false)),
            503
        );
        assert_eq!(
            status(&judge(&cfg, "POST", "/mcp", Some("Bearer abc.def"), true)),
            401
        );
    }

    #[test]
    fn verified_tokens_are_cached() {
        let (cfg, kp) = setup(false);
        let auth = format!("Bearer {}", token(&kp));
        let mut cache = TokenCache::new(8, 30);
        assert!(matches!(
            judge_with(&cfg, "POST", "/mcp", Some(&auth), false, &mut cache),
            HeadVerdict::Authenticated(_)
        ));
        assert_eq!(cache.len(), 1);
        // served from the cache even with no keys at all
        let head = RequestHead {
            method: "POST",
            path: "/mcp",
            authorization: vec![auth.as_bytes()],
        };
        let v = judge_head(
            &cfg,
            &head,
            &KeyState {
                keys: None,
                may_refetch: false,
            },
            &mut cache,
            NOW,
        );
        assert!(matches!(v, HeadVerdict::Authenticated(t) if t.tenant_id == "acme"));
    }

    #[test]
    fn refetch_is_rate_limited() {
        let (remote, _) = setup(true);
        assert!(refetch_allowed(&remote, None, NOW));
        assert!(!refetch_allowed(&remote, Some(NOW - 5), NOW));
        assert!(refetch_allowed(&remote, Some(NOW - 10), NOW));
        let (inline, _) = setup(false);
        assert!(!refetch_allowed(&inline, None, NOW));
    }

    #[test]
    fn vouch_signs_or_refuses_large_bodies() {
        let (cfg, kp) = setup(false);
        let auth = format!("Bearer {}", token(&kp));
        let HeadVerdict::Authenticated(t) = judge(&cfg, "POST", "/mcp", Some(&auth), false) else {
            panic!()
        };
        let req = CompleteRequest {
            method: "POST",
            path: "/mcp",
            request_id: "r",
            body: b"{}",
        };
        let h = vouch(&cfg, &t, &req, NOW).unwrap();
        assert!(
            h.iter()
                .any(|(n, v)| *n == "x-mcp-tenant-id" && v == "acme")
        );
        let big = vec![b' '; cfg.max_body_bytes + 1];
        let req = CompleteRequest { body: &big, ..req };
        assert_eq!(vouch(&cfg, &t, &req, NOW).unwrap_err().0.status, 413);
    }
}
