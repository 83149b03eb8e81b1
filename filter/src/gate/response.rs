//! The answer of a forwarded request: CORS and RateLimit headers, and the rewrite of every answer
//! that can carry a tool list (any JSON body, whole; any event stream, event by event): the tools
//! this token may not call are dropped, and a stream's event ids are bound to the token's tenant
//! and user ([`crate::session`]), whatever request the answer belongs to.

use serde_json::Value;

use crate::config::EdgeConfig;
use crate::reply;
use crate::session::{self, BoundId};
use crate::tenant::TenantContext;
use crate::tools_list::{self, RewriteError, SseFilter};

use super::RateState;

/// How a response body is judged, chosen from its head.
#[derive(Debug)]
pub enum ResponseJudge {
    /// Nothing to judge: no body, or a media type no client reads JSON-RPC from.
    Pass,
    /// A JSON body (or, for a `tools/list` request, anything but an event stream), read whole
    /// once complete; the response head is held until then.
    Whole { content_type: String },
    /// An event stream, filtered event by event.
    Streamed(StreamedList),
}

impl ResponseJudge {
    /// The judge for a response with this `Content-Type` (`tools_list`: a `tools/list` request
    /// answered with success, whose answer must be readable; `no_body`: the head ended the stream).
    pub fn for_response(
        cfg: &EdgeConfig,
        content_type: &str,
        tools_list: bool,
        no_body: bool,
    ) -> Self {
        if no_body {
            return Self::Pass;
        }
        let media = tools_list::media_type(content_type);
        if media == "text/event-stream" {
            return Self::Streamed(StreamedList::new(cfg));
        }
        if tools_list::is_json(&media) || tools_list {
            return Self::Whole {
                content_type: content_type.to_string(),
            };
        }
        Self::Pass
    }

    /// Whether the response head waits for the body's verdict (its length may change).
    pub fn holds_head(&self) -> bool {
        matches!(self, Self::Whole { .. })
    }
}

/// The headers to set on the response (an empty value removes the header).
pub fn response_headers(
    cors_origin: Option<&str>,
    rate: &RateState,
    judge: &ResponseJudge,
) -> Vec<(String, String)> {
    let mut set = cors_origin
        .map(crate::cors::response_headers)
        .unwrap_or_default();
    // Let agents pace themselves.
    set.extend(rate.headers().into_iter().map(|(n, v)| (n.to_string(), v)));
    if matches!(judge, ResponseJudge::Streamed(_)) {
        // The stream is rewritten as it goes: its length changes.
        set.push(("content-length".into(), String::new()));
    }
    set
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

/// An answer streamed as `text/event-stream`, filtered event by event. After an error (an event
/// that may hold a list and is not JSON, not UTF-8, or larger than `max_body_bytes`) the client
/// gets one JSON-RPC error event and nothing more of the stream: fail closed, and the headers
/// (200, event stream) are already gone, so an error event is the answer it can read.
#[derive(Debug)]
pub struct StreamedList {
    filter: SseFilter,
    failed: bool,
}

impl StreamedList {
    fn new(cfg: &EdgeConfig) -> Self {
        Self {
            filter: SseFilter::new(cfg.max_body_bytes),
            failed: false,
        }
    }

    /// The bytes to send in place of `chunk` (`ids`: the request's `tools/list` ids, for the
    /// error's id).
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
        let bind = |id: &str| {
            cfg.prepared.gateway_key.as_ref().map(|key| {
                session::bind_id(key, BoundId::Event, &tenant.tenant_id, &tenant.user_id, id)
            })
        };
        self.filter
            .push(chunk, end, &keep, &bind)
            .unwrap_or_else(|e| {
                // Only complete events went on: the client holds no partial one to finish.
                self.failed = true;
                error_body(ids, &e, true)
            })
    }
}

/// The answer in place of a response the edge could not filter.
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

/// A whole response body filtered for this token: `None` when it passes as it came; on a body it
/// cannot read, an error body.
pub fn rewrite_whole(
    cfg: &EdgeConfig,
    tenant: &TenantContext,
    content_type: &str,
    ids: &[Value],
    body: &[u8],
) -> Option<Vec<u8>> {
    let keep = |tool: &str| cfg.policy.may_call(tenant, tool);
    // An event stream is never judged whole (see `ResponseJudge::for_response`).
    let no_ids = |_: &str| None;
    tools_list::filter_response(content_type, body, &keep, &no_ids)
        .unwrap_or_else(|e| Some(error_body(ids, &e, false)))
}
