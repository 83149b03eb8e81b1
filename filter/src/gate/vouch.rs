//! The last step for an allowed request: the signed identity headers (see the contract crate).

use mcp_edge_contract::{RequestFacts, body_digest};

use crate::caller::Caller;
use crate::config::EdgeConfig;

use super::Denial;

/// The complete request of an authenticated client.
pub struct CompleteRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// `MCP-Protocol-Version` as forwarded (empty when absent).
    pub protocol_version: &'a str,
    pub request_id: &'a str,
    pub body: &'a [u8],
}

/// The `x-mcp-*` headers to set, or a refusal when they cannot be signed. The caller's identity
/// headers were prepared when its token was verified; only this request's values are added here.
pub fn vouch(
    cfg: &EdgeConfig,
    caller: &Caller,
    req: &CompleteRequest<'_>,
    now: u64,
) -> Result<Vec<(&'static str, String)>, Denial> {
    let digest = body_digest(req.body);
    let facts = RequestFacts {
        method: req.method,
        path: req.path,
        protocol_version: req.protocol_version,
        request_id: req.request_id,
        gateway_time: now,
        body_digest: &digest,
    };
    let key = cfg
        .prepared
        .gateway_key
        .as_ref()
        .ok_or(Denial::CannotVouch)?;
    let identity = caller
        .identity_headers
        .as_ref()
        .ok_or(Denial::CannotVouch)?;
    key.vouch(identity, &facts).map_err(|_| Denial::CannotVouch)
}
