//! The answer of a forwarded request: CORS and RateLimit headers, and the `tools/list` rewrite that
//! drops the tools this token may not call.

use serde_json::Value;

use crate::config::EdgeConfig;
use crate::reply;
use crate::tenant::TenantContext;

use super::RateState;

/// The headers to set on the response (an empty value removes the header), and whether its body is
/// a `tools/list` answer to filter.
pub fn response_headers(
    cors_origin: Option<&str>,
    rate: &RateState,
    tools_list: bool,
) -> (Vec<(String, String)>, bool) {
    let mut set = cors_origin
        .map(crate::cors::response_headers)
        .unwrap_or_default();
    // Let agents pace themselves.
    set.extend(rate.headers().into_iter().map(|(n, v)| (n.to_string(), v)));
    let filter = tools_list;
    if filter {
        // The body is rewritten: its length changes.
        set.push(("content-length".into(), String::new()));
    }
    (set, filter)
}

/// The `Mcp-Session-Id` the client gets for the upstream's: bound to this tenant and user (see
/// [`crate::session`]); removed (empty value) when it cannot be bound, so no bare id leaks.
pub fn bind_session(cfg: &EdgeConfig, tenant: &TenantContext, upstream: &[u8]) -> (String, String) {
    let bound = cfg
        .prepared
        .gateway_key
        .as_ref()
        .zip(std::str::from_utf8(upstream).ok())
        .map(|(key, sid)| crate::session::bind(key, &tenant.tenant_id, &tenant.user_id, sid));
    ("mcp-session-id".into(), bound.unwrap_or_default())
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
