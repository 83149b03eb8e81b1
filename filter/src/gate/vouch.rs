//! The last step for an allowed request: the identity assertion, `x-mcp-identity` (trust contract
//! v3, see the contract crate's `assertion` module).

use mcp_edge_contract::{Binding, body_digest, headers};

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

/// The one header to set, or a refusal when it cannot be signed. The caller's identity claims were
/// encoded when its token was verified; only this request's claims and the HMAC are computed here.
pub fn vouch(
    cfg: &EdgeConfig,
    caller: &Caller,
    req: &CompleteRequest<'_>,
    now: u64,
) -> Result<(&'static str, String), Denial> {
    let signer = cfg
        .prepared
        .assertion_signer
        .as_ref()
        .ok_or(Denial::CannotVouch)?;
    let identity = caller.identity_claims.as_ref().ok_or(Denial::CannotVouch)?;
    let digest = body_digest(req.body);
    let binding = Binding {
        method: req.method,
        path: req.path,
        protocol_version: req.protocol_version,
        request_id: req.request_id,
        issued_at: now,
        body_digest: &digest,
    };
    let assertion = signer
        .sign(identity, &binding)
        .map_err(|_| Denial::CannotVouch)?;
    Ok((headers::IDENTITY, assertion))
}
