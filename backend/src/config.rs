//! Command line and environment options of the `mcp-edge-backend` binary.

use std::net::SocketAddr;

use clap::Parser;

use crate::app::DEFAULT_ALLOWED_HOSTS;

/// The mcp-edge tool server. Serves MCP (Streamable HTTP, stateless) at POST /mcp to requests that
/// carry a valid mcp-edge gateway signature, and GET /healthz to anyone. Listen on an internal
/// address only: Envoy with the mcp-edge filter is its only intended client.
#[derive(Debug, Clone, Parser)]
#[command(name = "mcp-edge-backend", version)]
pub struct Cli {
    /// Address to listen on; port 0 picks a free port. The address actually bound is printed on
    /// stdout as `mcp-edge-backend listening on <addr>`.
    #[arg(long, env = "BACKEND_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Redis URL for tenant data (e.g. redis://127.0.0.1:6379/0). Without it data is kept in
    /// memory and lost on exit.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Shared secret for the gateway signature (HMAC-SHA256), the same as the filter's; at least
    /// 32 bytes.
    #[arg(
        long,
        env = "MCP_EDGE_GATEWAY_SECRET",
        hide_env_values = true,
        required_unless_present = "print_tool_scopes"
    )]
    pub gateway_secret: Option<String>,

    /// Host header value the MCP endpoint accepts (DNS-rebinding protection). `name` allows any
    /// port, `name:port` only that port. Repeat the option, or give a comma-separated list in the
    /// environment variable. Defaults to 127.0.0.1, localhost and ::1 on any port.
    #[arg(
        long = "allowed-host",
        env = "BACKEND_ALLOWED_HOSTS",
        value_name = "HOST",
        value_delimiter = ',',
        default_values_t = DEFAULT_ALLOWED_HOSTS.map(String::from)
    )]
    pub allowed_hosts: Vec<String>,

    /// Log as JSON lines instead of compact text (logs go to stderr; filter with RUST_LOG).
    #[arg(long, env = "BACKEND_LOG_JSON")]
    pub log_json: bool,

    /// Print the tool → required scope map of this server's tool catalogue as JSON and exit.
    #[arg(long)]
    pub print_tool_scopes: bool,
}
