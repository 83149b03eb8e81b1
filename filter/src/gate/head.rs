//! The verdict on a request head: metadata, path, method, Origin, then the bearer token.

use crate::bearer::{BearerError, extract_bearer};
use crate::config::{EdgeConfig, JwksSource};
use crate::keys::KeySet;
use crate::prm;
use crate::protocol::{self, ProtocolVersion};
use crate::rate_limit::SharedStore;
use crate::reply::{self, Reply, Unauthenticated};
use crate::tenant::TenantContext;
use crate::token::{TokenError, TokenPolicy, VerifiedToken, verify_bearer};
use crate::token_cache::TokenCache;
use mcp_edge_contract::codes;

use super::*;

/// What the glue knows about the request when its headers arrive.
#[derive(Debug, Clone, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// `:path`, with query.
    pub path: &'a str,
    pub authorization: Vec<&'a [u8]>,
    pub origin: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    pub content_encoding: Option<&'a [u8]>,
    pub protocol_version: Option<&'a [u8]>,
}

/// An authenticated request, waiting for its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub tenant: TenantContext,
    pub version: ProtocolVersion,
}

/// The verdict on a request head.
#[derive(Debug)]
pub enum HeadVerdict {
    /// Answer locally now.
    Respond(Reply, Outcome),
    /// Authenticated: hold the request until the body is complete, then [`judge_body`] and [`vouch`].
    Authenticated(Admitted),
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

/// Where the per-address limit on invalid tokens is kept, and for which address.
pub struct AddressLimiter<'a> {
    pub store: &'a dyn SharedStore,
    /// The client's IP address (without port); `None` when Envoy does not say.
    pub client_ip: Option<&'a str>,
    pub now_ms: u64,
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
        reply::jsonrpc_error(status, codes::NOT_SERVED, message, vec![]),
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

/// `Content-Type` must be `application/json` (parameters allowed), `Content-Encoding` identity.
fn check_media(head: &RequestHead<'_>) -> Result<(), (Reply, Outcome)> {
    let refuse = |message: &str| {
        Err((
            reply::jsonrpc_error(415, codes::PAYLOAD_REJECTED, message, vec![]),
            Outcome::UnsupportedMediaType,
        ))
    };
    if let Some(enc) = head.content_encoding
        && !enc.trim_ascii().eq_ignore_ascii_case(b"identity")
    {
        return refuse("Request bodies must not be compressed (Content-Encoding: identity only).");
    }
    let media = head.content_type.map(|ct| {
        ct.split(|b| *b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii()
    });
    if !media.is_some_and(|m| m.eq_ignore_ascii_case(b"application/json")) {
        return refuse("MCP requests must be sent as Content-Type: application/json.");
    }
    Ok(())
}

/// Judges a request from its head: serve metadata, refuse, ask for keys, or authenticate.
pub fn judge_head(
    cfg: &EdgeConfig,
    head: &RequestHead<'_>,
    keys: &KeyState<'_>,
    cache: &mut TokenCache,
    limiter: &AddressLimiter<'_>,
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
    if head.method == "OPTIONS"
        && let Some(origin) = crate::cors::allowed_origin(cfg, head.origin)
    {
        let reply = Reply {
            status: 204,
            headers: crate::cors::preflight_headers(origin),
            body: Vec::new(),
        };
        return HeadVerdict::Respond(reply, Outcome::CorsPreflight);
    }
    if !matches!(head.method, "POST" | "GET" | "DELETE") {
        return not_served(
            405,
            "The MCP endpoint accepts POST, GET and DELETE.",
            Outcome::MethodNotAllowed,
        );
    }
    if let Some(origin) = head.origin
        && !std::str::from_utf8(origin)
            .is_ok_and(|o| cfg.allowed_origins.contains(o.trim_end_matches('/')))
    {
        return HeadVerdict::Respond(
            reply::jsonrpc_error(
                403,
                codes::ORIGIN_REFUSED,
                "Requests from this Origin are not allowed.",
                vec![],
            ),
            Outcome::OriginRefused,
        );
    }
    let tenant = match authenticate(cfg, head, keys, cache, limiter, now) {
        Ok(t) => t,
        Err(verdict) => return *verdict,
    };
    let version = match protocol::request_version(head.protocol_version) {
        Ok(v) => v,
        Err(message) => {
            let (r, o) = bad_request(codes::NOT_SERVED, &message, None, "protocol_version");
            return HeadVerdict::Respond(r, o);
        }
    };
    if head.method == "POST"
        && let Err((r, o)) = check_media(head)
    {
        return HeadVerdict::Respond(r, o);
    }
    HeadVerdict::Authenticated(Admitted { tenant, version })
}

/// Whether this address may still have a token verified (it has not sent too many bad ones).
fn address_may_try(cfg: &EdgeConfig, limiter: &AddressLimiter<'_>) -> bool {
    let Some(ip) = limiter.client_ip else {
        return true;
    };
    let limit = cfg.invalid_token_limit;
    address_table(cfg)
        .update(limiter.store, ip.as_bytes(), &limit, limiter.now_ms, |s| {
            (None, limit.has_tokens(s, limiter.now_ms))
        })
        .unwrap_or(false)
}

/// Counts a failed verification against the address.
fn charge_address(cfg: &EdgeConfig, limiter: &AddressLimiter<'_>) {
    let Some(ip) = limiter.client_ip else { return };
    let limit = cfg.invalid_token_limit;
    let _ = address_table(cfg).update(limiter.store, ip.as_bytes(), &limit, limiter.now_ms, |s| {
        let (next, _) = limit.take(s, 1, limiter.now_ms);
        (Some(next), ())
    });
}

fn too_many_invalid_tokens(cfg: &EdgeConfig) -> HeadVerdict {
    let l = cfg.invalid_token_limit;
    HeadVerdict::Respond(
        reply::jsonrpc_error(
            429,
            codes::RATE_LIMITED,
            &format!(
                "Too many requests with invalid tokens from this address (limit {} a minute); obtain a valid token.",
                l.per_minute
            ),
            vec![("retry-after".into(), "60".into())],
        ),
        Outcome::TooManyInvalidTokens,
    )
}

fn authenticate(
    cfg: &EdgeConfig,
    head: &RequestHead<'_>,
    keys: &KeyState<'_>,
    cache: &mut TokenCache,
    limiter: &AddressLimiter<'_>,
    now: u64,
) -> Result<TenantContext, Box<HeadVerdict>> {
    let token = match extract_bearer(&head.authorization) {
        Ok(t) => t,
        Err(BearerError::Missing) => {
            return Err(Box::new(unauthorized(
                cfg,
                Unauthenticated::NoToken,
                Outcome::NoToken,
            )));
        }
        Err(BearerError::Malformed) => {
            charge_address(cfg, limiter);
            return Err(Box::new(invalid_token(cfg, &TokenError::Malformed)));
        }
    };
    if let Some(v) = cache.get(&token, now) {
        return Ok(v.tenant);
    }
    // A flood of bad tokens from one address must not cost a signature check each.
    if !address_may_try(cfg, limiter) {
        return Err(Box::new(too_many_invalid_tokens(cfg)));
    }
    let Some(key_set) = keys.keys else {
        // Without keys a token can still be judged malformed or of a refused algorithm.
        if let Err(e @ (TokenError::Malformed | TokenError::AlgorithmNotAllowed(_))) =
            verify_bearer(&token, &KeySet::default(), &token_policy(cfg), now)
        {
            return Err(Box::new(invalid_token(cfg, &e)));
        }
        return Err(Box::new(if keys.may_refetch {
            HeadVerdict::FetchKeys
        } else {
            HeadVerdict::Respond(
                reply::jsonrpc_error(
                    503,
                    codes::UNAVAILABLE,
                    "The MCP edge has no token signing keys yet; retry shortly.",
                    vec![("retry-after".into(), "5".into())],
                ),
                Outcome::KeysUnavailable,
            )
        }));
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
            Ok(tenant)
        }
        Err(TokenError::UnknownKey(_)) if keys.may_refetch => Err(Box::new(HeadVerdict::FetchKeys)),
        Err(e) => {
            charge_address(cfg, limiter);
            Err(Box::new(invalid_token(cfg, &e)))
        }
    }
}

/// At most this many JWKS fetches run at once on a worker that has no keys yet.
pub const MAX_INITIAL_FETCHES: u32 = 32;

/// Whether a request may start a JWKS fetch at `now`. With keys, an unknown `kid` may trigger one
/// fetch per `min_refetch_seconds`. Without any keys (just started, or the authorization server
/// was down) a request may fetch itself rather than fail, but only a few fetches run at once.
pub fn refetch_allowed(
    cfg: &EdgeConfig,
    has_keys: bool,
    last_fetch_started: Option<u64>,
    fetches_in_flight: u32,
    now: u64,
) -> bool {
    match &cfg.jwks_source {
        JwksSource::Inline => false,
        JwksSource::Remote(_) if !has_keys => fetches_in_flight < MAX_INITIAL_FETCHES,
        JwksSource::Remote(r) => {
            last_fetch_started.is_none_or(|t| now.saturating_sub(t) >= r.min_refetch_seconds)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;
    use crate::rate_limit::testing::MemoryShared;
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
            "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write", "mcp:admin"]},
            "tool_scopes": {"list_projects": "mcp:read", "create_project": "mcp:write", "delete_project": "mcp:admin"},
            "allowed_origins": ["http://localhost:6274"]
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
            content_type: Some(b"application/json"),
            ..RequestHead::default()
        };
        let keys = KeyState {
            keys: cfg.inline_keys.as_ref(),
            may_refetch,
        };
        let shared = MemoryShared::default();
        let limiter = AddressLimiter {
            store: &shared,
            client_ip: Some("192.0.2.1"),
            now_ms: NOW * 1000,
        };
        judge_head(cfg, &head, &keys, cache, &limiter, NOW)
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
    fn cors_preflight_only_for_allowed_origins() {
        let (cfg, _) = setup(false);
        let head = |origin: &'static [u8]| RequestHead {
            method: "OPTIONS",
            path: "/mcp",
            origin: Some(origin),
            ..RequestHead::default()
        };
        let mut cache = TokenCache::new(4, 30);
        let shared = MemoryShared::default();
        let limiter = AddressLimiter {
            store: &shared,
            client_ip: None,
            now_ms: 0,
        };
        let keys = KeyState {
            keys: None,
            may_refetch: false,
        };
        match judge_head(
            &cfg,
            &head(b"http://localhost:6274"),
            &keys,
            &mut cache,
            &limiter,
            NOW,
        ) {
            HeadVerdict::Respond(r, Outcome::CorsPreflight) => {
                assert_eq!(r.status, 204);
                assert_eq!(
                    r.header("access-control-allow-origin"),
                    Some("http://localhost:6274")
                );
            }
            other => panic!("{other:?}"),
        }
        let v = judge_head(
            &cfg,
            &head(b"https://evil.example"),
            &keys,
            &mut cache,
            &limiter,
            NOW,
        );
        assert_eq!(status(&v), 405);
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
            content_type: Some(b"application/json"),
            ..RequestHead::default()
        };
        let v = judge_head(
            &cfg,
            &head,
            &KeyState {
                keys: None,
                may_refetch: false,
            },
            &mut cache,
            &AddressLimiter {
                store: &MemoryShared::default(),
                client_ip: None,
                now_ms: 0,
            },
            NOW,
        );
        assert!(matches!(v, HeadVerdict::Authenticated(a) if a.tenant.tenant_id == "acme"));
    }

    #[test]
    fn refetch_is_rate_limited() {
        let (remote, _) = setup(true);
        assert!(refetch_allowed(&remote, true, None, 0, NOW));
        assert!(!refetch_allowed(&remote, true, Some(NOW - 5), 0, NOW));
        assert!(refetch_allowed(&remote, true, Some(NOW - 10), 0, NOW));
        // without keys: bounded by the fetches in flight, not by time
        assert!(refetch_allowed(&remote, false, Some(NOW), 0, NOW));
        assert!(refetch_allowed(
            &remote,
            false,
            Some(NOW),
            MAX_INITIAL_FETCHES - 1,
            NOW
        ));
        assert!(!refetch_allowed(
            &remote,
            false,
            Some(NOW),
            MAX_INITIAL_FETCHES,
            NOW
        ));
        let (inline, _) = setup(false);
        assert!(!refetch_allowed(&inline, true, None, 0, NOW));
    }

    #[test]
    fn vouch_signs_or_refuses_large_bodies() {
        let (cfg, kp) = setup(false);
        let auth = format!("Bearer {}", token(&kp));
        let HeadVerdict::Authenticated(Admitted { tenant: t, .. }) =
            judge(&cfg, "POST", "/mcp", Some(&auth), false)
        else {
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
