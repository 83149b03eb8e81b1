//! The answer of a forwarded request: CORS and RateLimit headers, and the `tools/list` rewrite that
//! drops the tools this token may not call (a JSON answer whole, an event stream event by event).

use serde_json::Value;

use crate::config::EdgeConfig;
use crate::reply;
use crate::tenant::TenantContext;
use crate::tools_list::{RewriteError, SseFilter};

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

/// A `tools/list` answer streamed as `text/event-stream`, filtered event by event. After an error
/// (an event that is not JSON, not UTF-8, or larger than `max_body_bytes`) the client gets one
/// JSON-RPC error event for the request and nothing more of the stream: fail closed, and the
/// headers (200, event stream) are already gone, so an error event is the answer it can read.
#[derive(Debug)]
pub struct StreamedList {
    filter: SseFilter,
    failed: bool,
}

impl StreamedList {
    /// A streamed filter when `content_type` is an event stream (else the answer is buffered).
    pub fn for_content_type(cfg: &EdgeConfig, content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        media
            .eq_ignore_ascii_case("text/event-stream")
            .then(|| Self {
                filter: SseFilter::new(cfg.max_body_bytes),
                failed: false,
            })
    }

    /// The bytes to send in place of `chunk`.
    pub fn push(
        &mut self,
        cfg: &EdgeConfig,
        tenant: &TenantContext,
        ids: &[Value],
        chunk: &[u8],
        end: bool,
    ) -> Vec<u8> {
        if self.failed {
            return Vec::new();
        }
        let keep = |tool: &str| cfg.policy.may_call(tenant, tool);
        self.filter
            .push(chunk, end, ids, &keep)
            .unwrap_or_else(|e| {
                // Only complete events went on: the client holds no partial one to finish.
                self.failed = true;
                error_body(ids, &e, true)
            })
    }
}

/// The answer in place of a `tools/list` result the edge could not filter.
fn error_body(ids: &[Value], e: &RewriteError, event_stream: bool) -> Vec<u8> {
    let err = reply::jsonrpc_error_object(
        ids.first(),
        -32603,
        &format!("The MCP edge could not filter the tool list ({}).", e.0),
    );
    if event_stream {
        format!("event: message\ndata: {err}\n\n").into_bytes()
    } else {
        err.to_string().into_bytes()
    }
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
    crate::tools_list::filter_response(content_type, body, ids, &keep)
        .unwrap_or_else(|e| error_body(ids, &e, content_type.starts_with("text/event-stream")))
}
