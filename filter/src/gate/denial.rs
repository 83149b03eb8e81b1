//! Every way the edge refuses a request, and the one place each maps to what the client sees
//! (status, `WWW-Authenticate` challenge, JSON-RPC error body, extra headers) and to its stat name.

use mcp_edge_contract::codes;
use serde_json::Value;

use crate::config::EdgeConfig;
use crate::protocol::UnsupportedVersion;
use crate::rate_limit::Limit;
use crate::reply::{self, Reply, Unauthenticated};
use crate::tenant::Tier;
use crate::token::TokenError;

use super::admission::RateState;

/// How a request ended at the edge, for stats and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Allowed,
    MetadataServed,
    CorsPreflight,
    NoToken,
    InvalidToken(&'static str),
    NotFound,
    MethodNotAllowed,
    KeysUnavailable,
    BodyTooLarge,
    UnsupportedMediaType,
    OriginRefused,
    /// `Mcp-Session-Id` not bound to this token's tenant and user.
    UnknownSession,
    BadRequest(&'static str),
    ToolNotAllowed,
    MethodNotServed,
    InsufficientScope,
    RateLimited,
    /// The tenant holds as many long-lived streams as its tier allows.
    TooManyStreams,
    /// The global rate limit service gave no decision and the tier fails closed.
    GlobalLimitUnavailable,
    TooManyInvalidTokens,
    InternalError,
}

impl Outcome {
    /// A stable name for Envoy stats (`mcp_edge.outcome.<name>`).
    pub fn stat_name(self) -> String {
        match self {
            Self::Allowed => "allowed".into(),
            Self::MetadataServed => "metadata_served".into(),
            Self::CorsPreflight => "cors_preflight".into(),
            Self::NoToken => "denied.no_token".into(),
            Self::InvalidToken(reason) => format!("denied.invalid_token.{reason}"),
            Self::NotFound => "denied.not_found".into(),
            Self::MethodNotAllowed => "denied.method_not_allowed".into(),
            Self::KeysUnavailable => "denied.keys_unavailable".into(),
            Self::BodyTooLarge => "denied.body_too_large".into(),
            Self::UnsupportedMediaType => "denied.unsupported_media_type".into(),
            Self::OriginRefused => "denied.origin".into(),
            Self::UnknownSession => "denied.unknown_session".into(),
            Self::BadRequest(reason) => format!("denied.bad_request.{reason}"),
            Self::ToolNotAllowed => "denied.tool_not_allowed".into(),
            Self::MethodNotServed => "denied.method_not_served".into(),
            Self::InsufficientScope => "denied.insufficient_scope".into(),
            Self::RateLimited => "denied.rate_limited".into(),
            Self::TooManyStreams => "denied.too_many_streams".into(),
            Self::GlobalLimitUnavailable => "denied.global_limit_unavailable".into(),
            Self::TooManyInvalidTokens => "denied.too_many_invalid_tokens".into(),
            Self::InternalError => "denied.internal_error".into(),
        }
    }
}

/// Why the edge refuses a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Denial {
    /// Not the MCP endpoint nor the metadata document.
    NotFound,
    /// An HTTP method the path does not serve; the message names the ones it does.
    MethodNotAllowed(&'static str),
    OriginRefused,
    /// GET or DELETE while the upstream keeps no sessions: no SSE stream to open, no session to end.
    StatelessUpstream,
    /// `Mcp-Session-Id` bare, tampered with, or bound to another tenant or user.
    UnknownSession(crate::session::SessionRefused),
    NoToken,
    InvalidToken(TokenError),
    /// This address sent too many invalid tokens lately.
    TooManyInvalidTokens(Limit),
    /// No signing keys yet (fail closed).
    KeysUnavailable,
    /// `MCP-Protocol-Version` this edge does not know.
    UnsupportedProtocolVersion(UnsupportedVersion),
    /// Not `application/json`, or compressed; the message says which.
    UnsupportedMediaType(&'static str),
    BodyTooLarge,
    /// Not JSON-RPC, a batch the version forbids, or headers that disagree with the body.
    BadRequest {
        code: i32,
        message: String,
        id: Option<Value>,
        reason: &'static str,
    },
    /// Tools or methods this token may not call; `body` holds one error per request id.
    Forbidden {
        body: Value,
        methods_only: bool,
    },
    /// A token with `needed` scopes would be allowed (step-up); `body` as for `Forbidden`.
    InsufficientScope {
        needed: String,
        body: Value,
    },
    RateLimited {
        tier: Tier,
        limit: Limit,
        state: RateState,
    },
    /// The tenant holds `cap` long-lived streams already (or the count could not be written).
    TooManyStreams {
        tier: Tier,
        cap: u32,
    },
    /// The configuration was refused: every request is.
    Misconfigured,
    /// The trusted headers could not be signed.
    CannotVouch,
}

impl Denial {
    /// The outcome counted for this denial.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::NotFound => Outcome::NotFound,
            Self::MethodNotAllowed(_) | Self::StatelessUpstream => Outcome::MethodNotAllowed,
            Self::OriginRefused => Outcome::OriginRefused,
            Self::UnknownSession(_) => Outcome::UnknownSession,
            Self::NoToken => Outcome::NoToken,
            Self::InvalidToken(e) => Outcome::InvalidToken(e.reason()),
            Self::TooManyInvalidTokens(_) => Outcome::TooManyInvalidTokens,
            Self::KeysUnavailable => Outcome::KeysUnavailable,
            Self::UnsupportedProtocolVersion(_) => Outcome::BadRequest("protocol_version"),
            Self::UnsupportedMediaType(_) => Outcome::UnsupportedMediaType,
            Self::BodyTooLarge => Outcome::BodyTooLarge,
            Self::BadRequest { reason, .. } => Outcome::BadRequest(reason),
            Self::Forbidden { methods_only, .. } => {
                if *methods_only {
                    Outcome::MethodNotServed
                } else {
                    Outcome::ToolNotAllowed
                }
            }
            Self::InsufficientScope { .. } => Outcome::InsufficientScope,
            Self::RateLimited { .. } => Outcome::RateLimited,
            Self::TooManyStreams { .. } => Outcome::TooManyStreams,
            Self::Misconfigured | Self::CannotVouch => Outcome::InternalError,
        }
    }

    /// What the client gets.
    pub fn reply(&self, cfg: Option<&EdgeConfig>) -> Reply {
        let plain =
            |status, code, message: &str| reply::jsonrpc_error(status, code, message, vec![]);
        let challenge = |why: Unauthenticated| {
            let (url, scope) = cfg.map_or(("", ""), |c| {
                (
                    c.prepared.metadata_url.as_str(),
                    c.prepared.challenge_scope.as_str(),
                )
            });
            reply::unauthorized(url, scope, &why)
        };
        match self {
            Self::NotFound => plain(
                404,
                codes::NOT_SERVED,
                "Not found: this server answers MCP requests at its MCP endpoint only.",
            ),
            Self::MethodNotAllowed(message) => plain(405, codes::NOT_SERVED, message),
            Self::OriginRefused => plain(
                403,
                codes::ORIGIN_REFUSED,
                "Requests from this Origin are not allowed.",
            ),
            Self::StatelessUpstream => stateless_upstream(),
            Self::UnknownSession(_) => plain(
                404,
                codes::SESSION_NOT_FOUND,
                "Session not found: this Mcp-Session-Id was not issued for this token's tenant and user; start a new session with initialize.",
            ),
            Self::NoToken => challenge(Unauthenticated::NoToken),
            Self::InvalidToken(e) => challenge(Unauthenticated::InvalidToken {
                description: e.description(),
            }),
            Self::TooManyInvalidTokens(limit) => too_many_invalid_tokens(limit),
            Self::KeysUnavailable => reply::jsonrpc_error(
                503,
                codes::UNAVAILABLE,
                "The MCP edge has no token signing keys yet; retry shortly.",
                vec![("retry-after".into(), "5".into())],
            ),
            Self::UnsupportedProtocolVersion(unsupported) => reply::json_reply(
                400,
                &reply::jsonrpc_error_with_data(
                    codes::UNSUPPORTED_PROTOCOL_VERSION,
                    &unsupported.message(),
                    unsupported.data(),
                ),
                vec![],
            ),
            Self::UnsupportedMediaType(message) => plain(415, codes::PAYLOAD_REJECTED, message),
            Self::BodyTooLarge => plain(
                413,
                codes::PAYLOAD_REJECTED,
                &cfg.map_or("Request body too large.".into(), |c| {
                    format!("Request body larger than {} bytes.", c.max_body_bytes)
                }),
            ),
            Self::BadRequest {
                code, message, id, ..
            } => reply::json_reply(
                400,
                &reply::jsonrpc_error_object(id.as_ref(), *code, message),
                vec![],
            ),
            Self::Forbidden { body, .. } => reply::json_reply(403, body, vec![]),
            Self::InsufficientScope { needed, body } => reply::insufficient_scope(
                cfg.map_or("", |c| c.prepared.metadata_url.as_str()),
                needed,
                body,
            ),
            Self::RateLimited { tier, limit, state } => rate_limited(*tier, limit, state),
            Self::TooManyStreams { tier, cap } => plain(
                429,
                codes::RATE_LIMITED,
                &format!(
                    "Too many open streams: the {} tier allows {cap} at once per tenant (GET streams, subscriptions/listen); close one before opening another.",
                    tier.name()
                ),
            ),
            Self::Misconfigured => plain(503, codes::UNAVAILABLE, "The MCP edge is misconfigured."),
            Self::CannotVouch => plain(
                500,
                codes::NOT_SERVED,
                "The MCP edge could not vouch for this request.",
            ),
        }
    }
}

fn stateless_upstream() -> Reply {
    reply::jsonrpc_error(
        405,
        codes::NOT_SERVED,
        "This MCP server keeps no sessions: it offers no stream on GET and nothing to DELETE; send requests with POST.",
        vec![("allow".into(), "POST".into())],
    )
}

fn too_many_invalid_tokens(limit: &Limit) -> Reply {
    reply::jsonrpc_error(
        429,
        codes::RATE_LIMITED,
        &format!(
            "Too many requests with invalid tokens from this address (limit {} a minute); obtain a valid token.",
            limit.per_minute
        ),
        vec![("retry-after".into(), "60".into())],
    )
}

/// 429 with `Retry-After` and the RateLimit headers of the tenant's bucket.
fn rate_limited(tier: Tier, limit: &Limit, state: &RateState) -> Reply {
    let message = format!(
        "Rate limit exceeded for the {} tier: {} requests a minute (bursts of up to {}). Retry after {} s.",
        tier.name(),
        limit.per_minute,
        limit.capacity,
        state.reset_secs
    );
    let mut headers = vec![("retry-after".to_string(), state.reset_secs.to_string())];
    headers.extend(state.headers().into_iter().map(|(n, v)| (n.to_string(), v)));
    reply::jsonrpc_error(429, codes::RATE_LIMITED, &message, headers)
}
