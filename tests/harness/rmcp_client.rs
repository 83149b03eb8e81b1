//! rmcp 3.11's client (the backend's SDK version) pointed at the edge: tokens, a runtime, and the
//! two ways a client opens, each with its protocol version pinned explicitly.

use anyhow::{Context as _, Result, ensure};
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt as _, ServiceExt as _};

use crate::stack::Stack;

/// A running rmcp client.
pub type Client = RunningService<RoleClient, ClientConfig>;

/// A runtime for one test case (the cases themselves are blocking).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Streamable HTTP to the edge (`Stack::mcp_url`) with the bearer token.
pub fn transport(s: &Stack, token: &str) -> StreamableHttpClientTransport<reqwest::Client> {
    StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(s.mcp_url.as_str()).auth_header(token),
    )
}

/// A client on MCP 2026-07-28: `server/discover`, then self-contained requests.
pub async fn discover_client(s: &Stack, token: &str) -> Result<Client> {
    ClientConfig::default()
        .serve_with_lifecycle(
            transport(s, token),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .context("server/discover through the edge")
}

/// A client on `version` (before 2026-07-28): `initialize` and `notifications/initialized`.
pub async fn initialize_client(s: &Stack, token: &str, version: ProtocolVersion) -> Result<Client> {
    ClientConfig::default()
        .with_protocol_version(version)
        .serve(transport(s, token))
        .await
        .context("initialize through the edge")
}

/// A client that tries `server/discover` at 2026-07-28 and falls back to `initialize` at
/// 2025-11-25 when the server is older (rmcp's `Auto` lifecycle).
pub async fn auto_client(s: &Stack, token: &str) -> Result<Client> {
    ClientConfig::default()
        .serve_with_lifecycle(
            transport(s, token),
            ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                legacy_version: Some(ProtocolVersion::V_2025_11_25),
            },
        )
        .await
        .context("server/discover or initialize through the edge")
}

/// The handshake (`server/discover` or `initialize`) settled on `version`.
pub fn ensure_negotiated(client: &Client, version: &str) -> Result<()> {
    let info = client
        .peer_info()
        .context("no server info after the handshake")?;
    ensure!(
        info.protocol_version.as_str() == version,
        "negotiated {} instead of {version}",
        info.protocol_version
    );
    Ok(())
}

/// `tools/call` params with JSON arguments.
pub fn call(name: &str, arguments: serde_json::Value) -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new(name.to_string());
    params.arguments = arguments.as_object().cloned();
    params
}
