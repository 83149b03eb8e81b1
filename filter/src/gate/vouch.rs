//! The last step for an allowed request: the trusted headers, or a refusal.

use crate::config::EdgeConfig;
use crate::reply::{self, Reply};
use crate::tenant::TenantContext;
use mcp_edge_contract::codes;
use mcp_edge_contract::{RequestFacts, body_digest, vouch_headers};

use super::*;

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
    let digest = body_digest(req.body);
    let facts = RequestFacts {
        method: req.method,
        path: req.path,
        request_id: req.request_id,
        gateway_time: now,
        body_digest: &digest,
    };
    vouch_headers(&cfg.gateway_secret, &tenant.identity, &facts).map_err(|_| {
        (
            reply::jsonrpc_error(
                500,
                codes::NOT_SERVED,
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
            codes::PAYLOAD_REJECTED,
            &format!("Request body larger than {} bytes.", cfg.max_body_bytes),
            vec![],
        ),
        Outcome::BodyTooLarge,
    )
}
