//! The edge's decisions, start to end, as pure functions over plain values.
//!
//! The proxy-wasm glue collects what Envoy gives it (method, path, the `Authorization` values, the
//! body), calls these functions and carries out the verdict. Everything a reviewer needs to judge
//! the filter's behaviour is here, and all of it runs under `cargo test`.
//!
//! - [`head`]: what the request line and headers decide (metadata, paths, Origin, the token).
//! - [`body`]: what the JSON-RPC body decides (protocol rules, the tool policy), and the
//!   `tools/list` rewrite of the response.
//! - [`admission`]: the tenant's rate limit.
//! - [`vouch`]: the trusted headers of an allowed request.

mod admission;
mod body;
mod head;
mod vouch;

pub use admission::*;
pub use body::*;
pub use head::*;
pub use vouch::*;

use crate::config::EdgeConfig;
use crate::rate_limit::SlotTable;
use crate::reply::{self, Reply};
use serde_json::Value;

/// How a request ended at the edge, for stats and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            Self::CorsPreflight => "cors_preflight".into(),
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

pub(crate) fn bad_request(
    code: i32,
    message: &str,
    id: Option<&Value>,
    reason: &'static str,
) -> (Reply, Outcome) {
    (
        reply::json_reply(400, &reply::jsonrpc_error_object(id, code, message), vec![]),
        Outcome::BadRequest(reason),
    )
}

pub(crate) fn address_table(cfg: &EdgeConfig) -> SlotTable<'static> {
    SlotTable {
        namespace: "mcp_edge.addr",
        slots: cfg.rate_limit_slots,
        probes: 8,
    }
}

pub(crate) fn tenant_table(cfg: &EdgeConfig) -> SlotTable<'static> {
    SlotTable {
        namespace: "mcp_edge.tenant",
        slots: cfg.rate_limit_slots,
        probes: 8,
    }
}
