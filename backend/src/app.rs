//! The axum application: `/healthz` (alive) and `/readyz` (can serve billable calls) in the open,
//! `/mcp` behind the identity assertion check, then the batch splitter, then rmcp.
//!
//! Kept apart from `main` so tests drive the very router the binary serves.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::batch::{BatchLimits, serve_batches};
use crate::gateway_auth::{Trust, tenant_context};
use crate::metering::Metering;
use crate::request_log::log_requests;
use crate::sources::{ToolRegistry, ToolServer};

/// The MCP endpoint's path.
pub const MCP_PATH: &str = "/mcp";

/// Hosts served by default: loopback names on any port (an entry without a port matches any port).
pub const DEFAULT_ALLOWED_HOSTS: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

#[derive(Clone)]
pub struct AppConfig {
    /// Verifies the edge's identity assertion (secret, names, body cap).
    pub trust: Trust,
    /// Every tool served, from every source.
    pub tools: Arc<ToolRegistry>,
    /// Daily quotas and usage events of billable calls.
    pub metering: Metering,
    /// `Host` values (`name` = any port, or `name:port`) rmcp's DNS-rebinding check lets through.
    pub allowed_hosts: Vec<String>,
    /// How much one JSON-RPC batch's answer may carry.
    pub batch_limits: BatchLimits,
}

/// rmcp's Streamable HTTP service in stateless mode: no sessions, plain JSON answers.
pub fn mcp_service(
    tools: Arc<ToolRegistry>,
    metering: Metering,
    allowed_hosts: Vec<String>,
) -> StreamableHttpService<ToolServer, NeverSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_sse_retry(None)
        // The gateway layer in front already enforces the configured cap.
        .with_max_request_body_bytes(mcp_edge_contract::limits::MAX_BODY_BYTES_CEILING)
        .with_allowed_hosts(allowed_hosts);
    let server = ToolServer::new(tools, metering);
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

pub fn router(config: AppConfig) -> Router {
    let mcp = Router::new()
        .route_service(
            MCP_PATH,
            mcp_service(config.tools, config.metering.clone(), config.allowed_hosts),
        )
        // Layers run outermost last-added: the assertion (which binds the whole body) is verified
        // first, its caller becomes the TenantContext, then a batch is split for rmcp.
        .route_layer(axum::middleware::from_fn_with_state(
            config.batch_limits,
            serve_batches,
        ))
        .route_layer(axum::middleware::from_fn(tenant_context))
        .route_layer(config.trust.layer());
    let metering = config.metering.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(move || ready(metering.clone())))
        .merge(mcp)
        .layer(axum::middleware::from_fn(log_requests))
}

/// `/readyz`: 200 while billable calls can be recorded, else 503 saying why (the usage outbox is
/// unwritable, or its writer thread is gone or stuck). Other tools would still work; a load
/// balancer should send traffic elsewhere all the same.
async fn ready(metering: Metering) -> (StatusCode, String) {
    match metering.ready() {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
    }
}
