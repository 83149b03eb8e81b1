//! The edge's decisions, start to end, as pure functions over plain values.
//!
//! The proxy-wasm glue collects what Envoy gives it (method, path, the `Authorization` values, the
//! body), calls these functions and carries out the verdict. Everything a reviewer needs to judge
//! the filter's behaviour is here, and all of it runs under `cargo test`.

use serde_json::Value;

use crate::bearer::{BearerError, extract_bearer};
use crate::config::{EdgeConfig, JwksSource};
use crate::jsonrpc::{Message, Payload, parse_payload};
use crate::keys::KeySet;
use crate::policy::{PayloadVerdict, Refusal};
use crate::prm;
use crate::protocol::{self, ProtocolVersion};
use crate::rate_limit::{Decision, Limit, SharedStore, SlotTable};
use crate::reply::{self, Reply, Unauthenticated};
use crate::tenant::{TenantContext, Tier};
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
    UnsupportedMediaType,
    OriginRefused,
    BadRequest(&'static str),
    ToolNotAllowed,
    MethodNotServed,
    InsufficientScope,
    RateLimited,
    TooManyInvalidTokens,
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
            Self::UnsupportedMediaType => "denied.unsupported_media_type".into(),
            Self::OriginRefused => "denied.origin".into(),
            Self::BadRequest(reason) => format!("denied.bad_request.{reason}"),
            Self::ToolNotAllowed => "denied.tool_not_allowed".into(),
            Self::MethodNotServed => "denied.method_not_served".into(),
            Self::InsufficientScope => "denied.insufficient_scope".into(),
            Self::RateLimited => "denied.rate_limited".into(),
            Self::TooManyInvalidTokens => "denied.too_many_invalid_tokens".into(),
            Self::InternalError => "denied.internal_error".into(),
        }
    }
}

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

fn bad_request(
    code: i64,
    message: &str,
    id: Option<&Value>,
    reason: &'static str,
) -> (Reply, Outcome) {
    (
        reply::json_reply(400, &reply::jsonrpc_error_object(id, code, message), vec![]),
        Outcome::BadRequest(reason),
    )
}

/// `Content-Type` must be `application/json` (parameters allowed), `Content-Encoding` identity.
fn check_media(head: &RequestHead<'_>) -> Result<(), (Reply, Outcome)> {
    let refuse = |message: &str| {
        Err((
            reply::jsonrpc_error(415, reply::CODE_PAYLOAD_REJECTED, message, vec![]),
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
                reply::CODE_ORIGIN_REFUSED,
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
            let (r, o) = bad_request(reply::CODE_NOT_SERVED, &message, None, "protocol_version");
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

fn address_table(cfg: &EdgeConfig) -> SlotTable<'static> {
    SlotTable {
        namespace: "mcp_edge.addr",
        slots: cfg.rate_limit_slots,
        probes: 8,
    }
}

fn tenant_table(cfg: &EdgeConfig) -> SlotTable<'static> {
    SlotTable {
        namespace: "mcp_edge.tenant",
        slots: cfg.rate_limit_slots,
        probes: 8,
    }
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
            reply::CODE_RATE_LIMITED,
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
                    reply::CODE_UNAVAILABLE,
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

/// What the edge learned from an allowed body, for logs and for the response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BodySummary {
    /// The first message's method (`batch` for a batch).
    pub method: String,
    /// The tool of a single `tools/call`.
    pub tool: Option<String>,
    /// Ids of `tools/list` requests: their responses are filtered.
    pub tools_list_ids: Vec<Value>,
    /// What the body costs against the rate limit: one per request or notification.
    pub cost: u64,
}

/// The headers `Mcp-Method` / `Mcp-Name` (MCP 2026-07-28), when sent.
pub struct RoutingHeaders<'a> {
    pub mcp_method: Option<&'a [u8]>,
    pub mcp_name: Option<&'a [u8]>,
}

fn summary(payload: &Payload) -> BodySummary {
    let messages = payload.messages();
    BodySummary {
        method: if payload.is_batch() {
            "batch".into()
        } else {
            messages
                .first()
                .and_then(Message::method)
                .unwrap_or("response")
                .to_string()
        },
        tool: match payload {
            Payload::Single(m) => m.tool_name().map(str::to_string),
            Payload::Batch(_) => None,
        },
        tools_list_ids: messages
            .iter()
            .filter(|m| m.method() == Some("tools/list"))
            .filter_map(|m| m.id().cloned())
            .collect(),
        cost: (messages.iter().filter(|m| m.method().is_some()).count() as u64).max(1),
    }
}

/// What a body asks for, for the access log of a refused request (`None` if it does not parse).
pub fn describe_body(body: &[u8]) -> Option<BodySummary> {
    parse_payload(body).ok().map(|p| summary(&p))
}

/// The error object(s) of a refused payload: one per request id (the refused ones with their
/// reason, the others saying why they were not run), as one object or a batch.
fn refusal_body(payload: &Payload, code: i64, reasons: &[(Option<Value>, String)]) -> Value {
    let reason_for = |id: Option<&Value>| {
        reasons
            .iter()
            .find(|(rid, _)| rid.as_ref() == id)
            .map(|(_, r)| r.clone())
    };
    match payload {
        Payload::Single(m) => {
            let msg = reason_for(m.id())
                .unwrap_or_else(|| reasons.first().map(|(_, r)| r.clone()).unwrap_or_default());
            reply::jsonrpc_error_object(m.id(), code, &msg)
        }
        Payload::Batch(ms) => {
            let first = reasons.first().map(|(_, r)| r.clone()).unwrap_or_default();
            Value::Array(
                ms.iter()
                    .filter_map(|m| m.id().filter(|_| m.method().is_some()))
                    .map(|id| {
                        let msg = reason_for(Some(id)).unwrap_or_else(|| {
                            format!("Not run: another message in this batch was refused ({first})")
                        });
                        reply::jsonrpc_error_object(Some(id), code, &msg)
                    })
                    .collect(),
            )
        }
    }
}

/// Judges the complete body of an authenticated POST against the protocol and the policy.
pub fn judge_body(
    cfg: &EdgeConfig,
    admitted: &Admitted,
    routing: &RoutingHeaders<'_>,
    body: &[u8],
) -> Result<BodySummary, (Reply, Outcome)> {
    let payload = parse_payload(body).map_err(|e| {
        let reason = if e.code == crate::jsonrpc::PARSE_ERROR {
            "parse_error"
        } else {
            "invalid_request"
        };
        bad_request(
            e.code,
            &format!("Invalid JSON-RPC: {}", e.message),
            e.id.as_ref(),
            reason,
        )
    })?;
    let first_id = payload.messages().first().and_then(Message::id);
    protocol::check_batch(&payload, admitted.version)
        .map_err(|m| bad_request(crate::jsonrpc::INVALID_REQUEST, &m, None, "batch"))?;
    protocol::check_routing_headers(&payload, routing.mcp_method, routing.mcp_name)
        .map_err(|m| bad_request(protocol::HEADER_MISMATCH, &m, first_id, "header_mismatch"))?;
    match cfg.policy.judge(&admitted.tenant, &payload) {
        PayloadVerdict::Allow => Ok(summary(&payload)),
        PayloadVerdict::Forbidden { refusals } => {
            let method_only = refusals
                .iter()
                .all(|(_, r)| matches!(r, Refusal::MethodNotAllowed { .. }));
            let reasons: Vec<_> = refusals
                .iter()
                .map(|(id, r)| (id.clone(), r.message()))
                .collect();
            let body = refusal_body(&payload, reply::CODE_FORBIDDEN, &reasons);
            let outcome = if method_only {
                Outcome::MethodNotServed
            } else {
                Outcome::ToolNotAllowed
            };
            Err((reply::json_reply(403, &body, vec![]), outcome))
        }
        PayloadVerdict::InsufficientScope { scopes, ids } => {
            let needed = scopes.into_iter().collect::<Vec<_>>().join(" ");
            let message = format!(
                "This call needs the scope(s) {needed}, which this access token does not have: obtain a token with them and retry."
            );
            let reasons: Vec<_> = ids.into_iter().map(|id| (id, message.clone())).collect();
            let body = refusal_body(&payload, reply::CODE_INSUFFICIENT_SCOPE, &reasons);
            Err((
                reply::insufficient_scope(&prm::metadata_url(cfg), &needed, &body),
                Outcome::InsufficientScope,
            ))
        }
    }
}

/// What an admitted request learned about its tenant's bucket, for the response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateState {
    pub tier: Tier,
    pub per_minute: u64,
    pub remaining: u64,
    pub reset_secs: u64,
}

impl RateState {
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers): the tier's quota
    /// per 60 s window, what is left now and when the bucket is full again.
    pub fn headers(&self) -> [(&'static str, String); 2] {
        let name = self.tier.name();
        [
            (
                "ratelimit-policy",
                format!("\"{name}\";q={};w=60", self.per_minute),
            ),
            (
                "ratelimit",
                format!("\"{name}\";r={};t={}", self.remaining, self.reset_secs),
            ),
        ]
    }
}

/// Takes `cost` tokens from the tenant's bucket, or refuses with 429.
pub fn admit(
    cfg: &EdgeConfig,
    store: &dyn SharedStore,
    tenant: &TenantContext,
    cost: u64,
    now_ms: u64,
) -> Result<RateState, (Reply, Outcome)> {
    let tier = tenant.tier;
    let limit: Limit = cfg.rate_limits.get(&tier).copied().unwrap_or(Limit {
        capacity: 1,
        per_minute: 1,
    });
    let decision =
        tenant_table(cfg).update(store, tenant.tenant_id.as_bytes(), &limit, now_ms, |s| {
            let (next, d) = limit.take(s, cost, now_ms);
            (Some(next), d)
        });
    let retry_after = match decision {
        Some(Decision::Admitted {
            remaining,
            reset_secs,
        }) => {
            return Ok(RateState {
                tier,
                per_minute: limit.per_minute,
                remaining,
                reset_secs,
            });
        }
        Some(Decision::Limited { retry_after_secs }) => retry_after_secs,
        // No free slot for this tenant's bucket: refuse rather than run unlimited.
        None => 1,
    };
    let message = format!(
        "Rate limit exceeded for the {} tier: {} requests a minute (bursts of up to {}). Retry after {} s.",
        tier.name(),
        limit.per_minute,
        limit.capacity,
        retry_after
    );
    let state = RateState {
        tier,
        per_minute: limit.per_minute,
        remaining: 0,
        reset_secs: retry_after,
    };
    let mut headers = vec![("retry-after".to_string(), retry_after.to_string())];
    headers.extend(state.headers().into_iter().map(|(n, v)| (n.to_string(), v)));
    Err((
        reply::jsonrpc_error(429, reply::CODE_RATE_LIMITED, &message, headers),
        Outcome::RateLimited,
    ))
}

/// Filters a `tools/list` response body for this token; on a body it cannot read, an error body.
pub fn rewrite_tools_list(
    cfg: &EdgeConfig,
    tenant: &TenantContext,
    content_type: &str,
    ids: &[Value],
    body: &[u8],
) -> Vec<u8> {
    let keep = |tool: &str| cfg.policy.may_call(tenant, tool);
    crate::tools_list::filter_response(content_type, body, ids, &keep).unwrap_or_else(|e| {
        let id = ids.first();
        let err = reply::jsonrpc_error_object(
            id,
            -32603,
            &format!("The MCP edge could not filter the tool list ({}).", e.0),
        );
        if content_type.starts_with("text/event-stream") {
            format!("event: message\ndata: {err}\n\n").into_bytes()
        } else {
            err.to_string().into_bytes()
        }
    })
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

#[cfg(test)]
mod body_tests {
    use super::*;
    use crate::config::parse_config;
    use crate::tenant::Tier;
    use serde_json::json;

    fn cfg() -> EdgeConfig {
        let v = json!({
            "resource": "https://mcp.example/mcp",
            "issuers": ["https://as"],
            "jwks": {"remote": {"cluster": "c", "path": "/jwks", "authority": "as"}},
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write", "mcp:admin"]},
            "tool_scopes": {"list_projects": "mcp:read", "create_project": "mcp:write", "delete_project": "mcp:admin"},
            "allowed_origins": ["http://localhost:6274"]
        });
        parse_config(v.to_string().as_bytes(), &|_| None).unwrap()
    }

    fn admitted(scopes: &[&str], allowed: Option<&[&str]>, version: ProtocolVersion) -> Admitted {
        Admitted {
            tenant: TenantContext {
                tenant_id: "t".into(),
                user_id: "u".into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                allowed_tools: allowed.map(|a| a.iter().map(|s| s.to_string()).collect()),
                data_scope: String::new(),
                tier: Tier::Pro,
            },
            version,
        }
    }

    const NO_ROUTING: RoutingHeaders<'static> = RoutingHeaders {
        mcp_method: None,
        mcp_name: None,
    };

    fn call(id: u32, tool: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
        )
    }

    fn status(r: &Result<BodySummary, (Reply, Outcome)>) -> u32 {
        r.as_ref().map_or_else(|(r, _)| r.status, |_| 200)
    }

    #[test]
    fn allowed_call_is_summarised() {
        let a = admitted(&["mcp:read"], None, ProtocolVersion::V2025_06_18);
        let s = judge_body(&cfg(), &a, &NO_ROUTING, call(1, "list_projects").as_bytes()).unwrap();
        assert_eq!(s.method, "tools/call");
        assert_eq!(s.tool.as_deref(), Some("list_projects"));
        let s = judge_body(
            &cfg(),
            &a,
            &NO_ROUTING,
            br#"{"jsonrpc":"2.0","id":"L","method":"tools/list"}"#,
        )
        .unwrap();
        assert_eq!(s.tools_list_ids, vec![json!("L")]);
    }

    #[test]
    fn forbidden_and_step_up() {
        let a = admitted(
            &["mcp:read", "mcp:write"],
            Some(&["list_projects"]),
            ProtocolVersion::V2025_06_18,
        );
        let r = judge_body(
            &cfg(),
            &a,
            &NO_ROUTING,
            call(4, "create_project").as_bytes(),
        );
        let (reply, outcome) = r.unwrap_err();
        assert_eq!((reply.status, outcome), (403, Outcome::ToolNotAllowed));
        assert!(
            reply.header("www-authenticate").is_none(),
            "no step-up for allowed_tools"
        );
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["id"], 4);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("create_project")
        );

        let a = admitted(
            &["mcp:read", "mcp:write"],
            None,
            ProtocolVersion::V2025_11_25,
        );
        let (reply, outcome) = judge_body(
            &cfg(),
            &a,
            &NO_ROUTING,
            call(5, "delete_project").as_bytes(),
        )
        .unwrap_err();
        assert_eq!((reply.status, outcome), (403, Outcome::InsufficientScope));
        let h = reply.header("www-authenticate").unwrap();
        assert!(
            h.contains("error=\"insufficient_scope\"") && h.contains("scope=\"mcp:admin\""),
            "{h}"
        );
    }

    #[test]
    fn batches() {
        let body = format!(
            "[{},{}]",
            call(1, "list_projects"),
            call(2, "delete_project")
        );
        let old = admitted(
            &["mcp:read"],
            Some(&["list_projects"]),
            ProtocolVersion::V2025_03_26,
        );
        let (reply, _) = judge_body(&cfg(), &old, &NO_ROUTING, body.as_bytes()).unwrap_err();
        assert_eq!(reply.status, 403);
        let errors: Value = serde_json::from_slice(&reply.body).unwrap();
        let ids: Vec<_> = errors
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].clone())
            .collect();
        assert_eq!(ids, vec![json!(1), json!(2)], "an error per id");
        let new = admitted(&["mcp:read"], None, ProtocolVersion::V2025_06_18);
        let ok_batch = format!(
            "[{},{}]",
            call(1, "list_projects"),
            call(2, "list_projects")
        );
        assert_eq!(
            status(&judge_body(&cfg(), &new, &NO_ROUTING, ok_batch.as_bytes())),
            400
        );
        assert!(judge_body(&cfg(), &old, &NO_ROUTING, ok_batch.as_bytes()).is_ok());
    }

    #[test]
    fn smuggling_attempts() {
        let a = admitted(
            &["mcp:read", "mcp:write"],
            Some(&["list_projects"]),
            ProtocolVersion::V2025_06_18,
        );
        let c = cfg();
        let dup_method = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"create_project"}}"#;
        assert_eq!(status(&judge_body(&c, &a, &NO_ROUTING, dup_method)), 400);
        let dup_name = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects","name":"create_project"}}"#;
        assert_eq!(status(&judge_body(&c, &a, &NO_ROUTING, dup_name)), 400);
        let escaped = br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"cre\u0061te_project"}}"#;
        assert_eq!(status(&judge_body(&c, &a, &NO_ROUTING, escaped)), 403);
        let routing = RoutingHeaders {
            mcp_method: Some(b"tools/call"),
            mcp_name: Some(b"list_projects"),
        };
        let (reply, _) =
            judge_body(&c, &a, &routing, call(3, "create_project").as_bytes()).unwrap_err();
        assert_eq!(reply.status, 400);
        assert_eq!(
            serde_json::from_slice::<Value>(&reply.body).unwrap()["error"]["code"],
            -32020
        );
        assert!(judge_body(&c, &a, &routing, call(3, "list_projects").as_bytes()).is_ok());
        assert_eq!(
            status(&judge_body(&c, &a, &NO_ROUTING, b"\xef\xbb\xbf{}")),
            400
        );
        assert_eq!(status(&judge_body(&c, &a, &NO_ROUTING, b"")), 400);
    }

    #[test]
    fn tools_list_is_filtered_for_the_token() {
        let a = admitted(&["mcp:read"], None, ProtocolVersion::V2025_06_18);
        let body = json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"list_projects"},{"name":"create_project"},{"name":"delete_project"}]}});
        let out = rewrite_tools_list(
            &cfg(),
            &a.tenant,
            "application/json",
            &[json!(1)],
            body.to_string().as_bytes(),
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"], json!([{"name": "list_projects"}]));
        let out = rewrite_tools_list(
            &cfg(),
            &a.tenant,
            "application/json",
            &[json!(1)],
            b"garbage",
        );
        assert!(String::from_utf8_lossy(&out).contains("-32603"));
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::config::parse_config;
    use crate::rate_limit::testing::MemoryShared;
    use serde_json::json;

    fn cfg() -> EdgeConfig {
        let v = json!({
            "resource": "https://mcp.example/mcp",
            "issuers": ["https://as"],
            "jwks": {"inline": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "k"}]}},
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write"]},
            "tool_scopes": {},
            "rate_limits": {
                "free": {"requests_per_minute": 60, "burst": 2},
                "pro": {"requests_per_minute": 600, "burst": 5},
                "enterprise": {"requests_per_minute": 6000, "burst": 50}
            },
            "invalid_token_limit": {"requests_per_minute": 60, "burst": 3}
        });
        parse_config(v.to_string().as_bytes(), &|_| None).unwrap()
    }

    fn tenant(id: &str, tier: Tier) -> TenantContext {
        TenantContext {
            tenant_id: id.into(),
            user_id: "u".into(),
            scopes: vec![],
            allowed_tools: None,
            data_scope: String::new(),
            tier,
        }
    }

    #[test]
    fn tenants_are_limited_by_their_tier() {
        let c = cfg();
        let shared = MemoryShared::default();
        let free = tenant("f", Tier::Free);
        let pro = tenant("p", Tier::Pro);
        assert!(admit(&c, &shared, &free, 1, 0).is_ok());
        let state = admit(&c, &shared, &free, 1, 0).unwrap();
        assert_eq!(state.remaining, 0);
        assert_eq!(state.headers()[0].1, "\"free\";q=60;w=60");
        let (reply, outcome) = admit(&c, &shared, &free, 1, 0).unwrap_err();
        assert_eq!((reply.status, outcome), (429, Outcome::RateLimited));
        assert_eq!(reply.header("retry-after"), Some("1"));
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("free tier") && msg.contains("60 requests a minute"),
            "{msg}"
        );
        // the pro tenant is untouched, and a batch costs its length
        assert!(admit(&c, &shared, &pro, 5, 0).is_ok());
        assert!(admit(&c, &shared, &pro, 1, 0).is_err());
        // an hour later everyone is full again
        assert!(admit(&c, &shared, &free, 2, 3_600_000).is_ok());
    }

    #[test]
    fn bad_tokens_are_limited_per_address_before_verification() {
        let c = cfg();
        let shared = MemoryShared::default();
        let mut cache = TokenCache::new(4, 30);
        let judge = |ip: &str, cache: &mut TokenCache| {
            let head = RequestHead {
                method: "POST",
                path: "/mcp",
                authorization: vec![b"Bearer eyJhbGciOiJFZERTQSIsImtpZCI6ImsifQ.e30.AAAA"],
                content_type: Some(b"application/json"),
                ..RequestHead::default()
            };
            let keys = KeyState {
                keys: c.inline_keys.as_ref(),
                may_refetch: false,
            };
            let limiter = AddressLimiter {
                store: &shared,
                client_ip: Some(ip),
                now_ms: 1_000,
            };
            match judge_head(&c, &head, &keys, cache, &limiter, 1) {
                HeadVerdict::Respond(r, o) => (r.status, o),
                other => panic!("{other:?}"),
            }
        };
        for _ in 0..3 {
            assert_eq!(judge("192.0.2.7", &mut cache).0, 401);
        }
        assert_eq!(
            judge("192.0.2.7", &mut cache),
            (429, Outcome::TooManyInvalidTokens)
        );
        assert_eq!(
            judge("192.0.2.8", &mut cache).0,
            401,
            "another address is not affected"
        );
    }

    #[test]
    fn cost_counts_requests_and_notifications() {
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":2,"result":{}}]"#;
        assert_eq!(describe_body(batch).unwrap().cost, 2);
        assert_eq!(
            describe_body(br#"{"jsonrpc":"2.0","id":2,"result":{}}"#)
                .unwrap()
                .cost,
            1
        );
    }
}
