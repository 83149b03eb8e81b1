//! A third-party MCP server behind the edge: the official TypeScript SDK's Streamable HTTP server
//! in stateless mode (`tests/node/ts_server.mjs`, SDK 1.32.2, protocol versions up to 2025-11-25)
//! instead of our backend, with the edge's shipped configuration except `tool_scopes`, which name
//! this server's tools. Driven by the official TypeScript client and by rmcp 3.11's client.
//!
//! The server knows nothing about the edge (it does not verify the identity assertion): the edge
//! alone decides who may list and call what.

use anyhow::{Result, ensure};
use mcp_edge_tests::client::{sdk_client, tool_names};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{Stack, StackOptions, Upstream};
use mcp_edge_tests::upstream_cases::{
    ensure_authorized_per_tool, get_stream_is_answered_at_the_edge,
};
use serde_json::json;

/// `echo` needs `mcp:read`, `shout` `mcp:write`, `purge` `mcp:admin`; `hidden` is unknown to the
/// edge.
fn overrides() -> serde_json::Value {
    json!({"tool_scopes": {"echo": "mcp:read", "shout": "mcp:write", "purge": "mcp:admin"}})
}

fn official_client_sees_only_its_tools(s: &Stack) -> Result<()> {
    let every = s.token_with("tenant-ts", "mcp:read mcp:write mcp:admin", None)?;
    let listed = sdk_client(&s.mcp_url, &every, json!([]))?;
    let names = tool_names(&listed)?;
    ensure!(names == ["echo", "purge", "shout"], "all scopes: {names:?}");
    let narrow = s.token_with(
        "tenant-ts",
        "mcp:read mcp:write",
        Some(&["echo", "purge", "hidden"]),
    )?;
    let listed = sdk_client(
        &s.mcp_url,
        &narrow,
        json!([{"name": "echo", "arguments": {"text": "through the edge"}}]),
    )?;
    let names = tool_names(&listed)?;
    ensure!(names == ["echo"], "allowed_tools and scopes: {names:?}");
    ensure!(
        listed["results"][0]["content"][0]["text"] == "through the edge",
        "{listed}"
    );
    Ok(())
}

/// The server only speaks up to 2025-11-25: rmcp's `server/discover` probe falls back to
/// `initialize` through the edge.
fn rmcp_client_is_authorized_per_tool(s: &Stack) -> Result<()> {
    ensure_authorized_per_tool(s, "2025-11-25")
}

const CASES: &[Case] = mcp_edge_tests::cases![
    official_client_sees_only_its_tools,
    rmcp_client_is_authorized_per_tool,
    get_stream_is_answered_at_the_edge,
];

fn main() {
    mcp_edge_tests::runner::run_with_options(
        &StackOptions {
            plugin_overrides: overrides(),
            upstream: Upstream::Node("ts_server.mjs"),
            ..StackOptions::default()
        },
        CASES,
    );
}
