//! What the request line and the transport headers decide before and after authentication:
//! the metadata document, the MCP path, CORS preflight, HTTP methods, `Origin`, then (for an
//! authenticated request) the protocol version and the media type.

use mcp_edge_contract::codes;

use crate::config::EdgeConfig;
use crate::protocol::{self, ProtocolVersion};
use crate::reply::Reply;
use crate::session;
use crate::tenant::TenantContext;

use super::{Denial, Outcome, RequestHead};

/// Where a request goes after its request line and `Origin`.
#[derive(Debug)]
pub enum Route {
    /// Answered here, not a denial (metadata, CORS preflight).
    Served(Reply, Outcome),
    /// The MCP endpoint: authenticate.
    Mcp,
    Denied(Denial),
}

fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

fn metadata(cfg: &EdgeConfig, method: &str) -> Route {
    if method != "GET" && method != "HEAD" {
        return Route::Denied(Denial::MethodNotAllowed(
            "The protected resource metadata is read with GET.",
        ));
    }
    let reply = Reply {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "max-age=300".into()),
            ("access-control-allow-origin".into(), "*".into()),
        ],
        body: cfg.prepared.metadata_document.clone(),
    };
    Route::Served(reply, Outcome::MetadataServed)
}

/// Routes a request by path, method and `Origin`.
pub fn route(cfg: &EdgeConfig, head: &RequestHead<'_>) -> Route {
    let path = path_only(head.path);
    if crate::prm::is_metadata_path(cfg, path) {
        return metadata(cfg, head.method);
    }
    if !cfg.mcp_paths.iter().any(|p| p == path) {
        return Route::Denied(Denial::NotFound);
    }
    if head.method == "OPTIONS"
        && let Some(origin) = crate::cors::allowed_origin(cfg, head.origin)
    {
        let reply = Reply {
            status: 204,
            headers: crate::cors::preflight_headers(origin),
            body: Vec::new(),
        };
        return Route::Served(reply, Outcome::CorsPreflight);
    }
    if !matches!(head.method, "POST" | "GET" | "DELETE") {
        return Route::Denied(Denial::MethodNotAllowed(
            "The MCP endpoint accepts POST, GET and DELETE.",
        ));
    }
    if head.origin.is_some() && crate::cors::allowed_origin(cfg, head.origin).is_none() {
        return Route::Denied(Denial::OriginRefused);
    }
    Route::Mcp
}

/// For an authenticated request: the protocol version it speaks, and for a POST, a JSON body that
/// is not compressed.
pub fn check_transport(head: &RequestHead<'_>) -> Result<ProtocolVersion, Denial> {
    let version = protocol::request_version(head.protocol_version)
        .map_err(Denial::UnsupportedProtocolVersion)?;
    if head.method == "POST" {
        check_media(head)?;
    }
    Ok(version)
}

/// GET and DELETE reach the upstream only when it keeps sessions and the request speaks a version
/// that has them (before 2026-07-28); otherwise the edge answers without buffering a body.
pub fn check_session_method(
    cfg: &EdgeConfig,
    method: &str,
    version: ProtocolVersion,
) -> Result<(), Denial> {
    if matches!(method, "GET" | "DELETE") && (!cfg.stateful_upstream || version.is_stateless()) {
        return Err(Denial::StatelessUpstream);
    }
    Ok(())
}

/// For a stateful upstream: the upstream's own session id inside the client's `Mcp-Session-Id`,
/// which must be bound to this token's tenant and user (see [`crate::session`]). `None` when the
/// request carries none (or the upstream keeps no sessions: the header then passes as it is).
pub fn check_session_id(
    cfg: &EdgeConfig,
    tenant: &TenantContext,
    session_id: Option<&[u8]>,
) -> Result<Option<String>, Denial> {
    let Some(bound) = session_id.filter(|_| cfg.stateful_upstream) else {
        return Ok(None);
    };
    let key = cfg
        .prepared
        .gateway_key
        .as_ref()
        .ok_or(Denial::CannotVouch)?;
    let bound = std::str::from_utf8(bound)
        .map_err(|_| Denial::UnknownSession(session::SessionRefused::Mismatch))?;
    session::check(key, &tenant.tenant_id, &tenant.user_id, bound)
        .map(|sid| Some(sid.to_string()))
        .map_err(Denial::UnknownSession)
}

/// The upstream's own event id inside the client's `Last-Event-ID`, which must be one the edge
/// sent this token's tenant and user (see [`crate::session`]): a client resumes only its own
/// streams. `None` when the request carries none; more than one is refused.
pub fn check_last_event_id<'a>(
    cfg: &EdgeConfig,
    tenant: &TenantContext,
    mut values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<String>, Denial> {
    let Some(bound) = values.next() else {
        return Ok(None);
    };
    let refused = || Denial::BadRequest {
        code: codes::INVALID_REQUEST,
        message: "Last-Event-ID was not issued for this token's tenant and user: resume only \
                  streams this token received."
            .into(),
        id: None,
        reason: "last_event_id",
    };
    if values.next().is_some() {
        return Err(refused());
    }
    let key = cfg
        .prepared
        .gateway_key
        .as_ref()
        .ok_or(Denial::CannotVouch)?;
    let bound = std::str::from_utf8(bound).map_err(|_| refused())?;
    session::check_id(
        key,
        session::BoundId::Event,
        &tenant.tenant_id,
        &tenant.user_id,
        bound,
    )
    .map(|id| Some(id.to_string()))
    .map_err(|_| refused())
}

/// `Content-Type` must be `application/json` (parameters allowed), `Content-Encoding` identity.
fn check_media(head: &RequestHead<'_>) -> Result<(), Denial> {
    if let Some(enc) = head.content_encoding
        && !enc.trim_ascii().eq_ignore_ascii_case(b"identity")
    {
        return Err(Denial::UnsupportedMediaType(
            "Request bodies must not be compressed (Content-Encoding: identity only).",
        ));
    }
    let media = head.content_type.map(|ct| {
        ct.split(|b| *b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii()
    });
    if !media.is_some_and(|m| m.eq_ignore_ascii_case(b"application/json")) {
        return Err(Denial::UnsupportedMediaType(
            "MCP requests must be sent as Content-Type: application/json.",
        ));
    }
    Ok(())
}
