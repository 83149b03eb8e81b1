//! The headers the edge vouches with: TenantContext values plus the gateway signature.
//!
//! Built here, set by the glue after every inbound `x-mcp-*` header was removed. The signature
//! format is the shared contract in `mcp-edge-contract`.

use mcp_edge_contract::{ContractError, SignedRequest, body_digest, headers, sign};

use crate::tenant::TenantContext;

/// Whether a header name belongs to the trusted namespace (any casing).
pub fn is_trusted_header_name(name: &str) -> bool {
    name.len() >= headers::PREFIX.len()
        && name.as_bytes()[..headers::PREFIX.len()].eq_ignore_ascii_case(headers::PREFIX.as_bytes())
}

/// Everything needed to vouch for one request.
pub struct Vouch<'a> {
    pub tenant: &'a TenantContext,
    pub method: &'a str,
    pub path: &'a str,
    pub request_id: &'a str,
    pub now: u64,
    pub body: &'a [u8],
}

/// The `x-mcp-*` headers to set on an allowed request, signature last.
pub fn trusted_headers(
    secret: &[u8],
    v: &Vouch<'_>,
) -> Result<Vec<(&'static str, String)>, ContractError> {
    let scopes = v.tenant.scopes_joined();
    let digest = body_digest(v.body);
    let signed = SignedRequest {
        method: v.method,
        path: v.path,
        tenant_id: &v.tenant.tenant_id,
        user_id: &v.tenant.user_id,
        scopes: &scopes,
        data_scope: &v.tenant.data_scope,
        tier: v.tenant.tier.name(),
        request_id: v.request_id,
        gateway_time: v.now,
        body_digest: &digest,
    };
    let signature = sign(secret, &signed)?;
    Ok(vec![
        (headers::TENANT_ID, v.tenant.tenant_id.clone()),
        (headers::USER_ID, v.tenant.user_id.clone()),
        (headers::SCOPES, scopes.clone()),
        (headers::DATA_SCOPE, v.tenant.data_scope.clone()),
        (headers::TIER, v.tenant.tier.name().to_string()),
        (headers::REQUEST_ID, v.request_id.to_string()),
        (headers::GATEWAY_TIME, v.now.to_string()),
        (headers::GATEWAY_SIGNATURE, signature),
    ])
}

/// A fresh request id for `x-mcp-request-id`: 128 bits from the VM's randomly keyed hasher and the
/// clock. It is the edge's own: an inbound `x-request-id` is client-controlled when Envoy treats the
/// client as internal, and ids that end up in logs and usage records must not be chosen by clients.
pub fn new_request_id(now_nanos: u128) -> String {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    let a = state.hash_one(now_nanos);
    let b = state.hash_one((now_nanos, a));
    format!("mcpe-{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::Tier;
    use mcp_edge_contract::verify;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn headers_verify_with_the_contract() {
        let t = TenantContext {
            tenant_id: "acme".into(),
            user_id: "u1".into(),
            scopes: vec!["mcp:read".into(), "mcp:write".into()],
            allowed_tools: None,
            data_scope: "team:eng".into(),
            tier: Tier::Pro,
        };
        let v = Vouch {
            tenant: &t,
            method: "POST",
            path: "/mcp",
            request_id: "r1",
            now: 500,
            body: b"{}",
        };
        let h = trusted_headers(SECRET, &v).unwrap();
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(get(headers::SCOPES), "mcp:read mcp:write");
        assert_eq!(get(headers::TIER), "pro");
        let digest = body_digest(b"{}");
        let req = SignedRequest {
            method: "POST",
            path: "/mcp",
            tenant_id: "acme",
            user_id: "u1",
            scopes: "mcp:read mcp:write",
            data_scope: "team:eng",
            tier: "pro",
            request_id: "r1",
            gateway_time: 500,
            body_digest: &digest,
        };
        assert_eq!(
            verify(SECRET, &req, get(headers::GATEWAY_SIGNATURE), 500),
            Ok(())
        );
    }

    #[test]
    fn trusted_namespace_any_casing() {
        assert!(is_trusted_header_name("x-mcp-tenant-id"));
        assert!(is_trusted_header_name("X-MCP-Tenant-Id"));
        assert!(is_trusted_header_name("x-mcp-"));
        assert!(!is_trusted_header_name("x-mc"));
        assert!(!is_trusted_header_name("mcp-session-id"));
    }

    #[test]
    fn request_ids_are_fresh_and_printable() {
        let a = new_request_id(1);
        let b = new_request_id(1);
        assert_ne!(a, b, "same clock reading, still different ids");
        assert_eq!(a.len(), 37);
        assert!(a.starts_with("mcpe-") && a[5..].bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
