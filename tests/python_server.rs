//! The official MCP Python SDK's Streamable HTTP server behind the edge, stateless with JSON
//! responses (`tests/python/py_server.py`, `mcp` 2.3.0 from PyPI in the repository's `.venv`),
//! with the edge's shipped configuration except `tool_scopes`, which name this server's tools.
//! Driven by the official TypeScript client and by rmcp 3.11's client. The server refuses any
//! request without the edge's identity assertion (`docs/verify/verify_identity_asgi.py`) and its
//! `whoami` tool answers with the identity the edge vouched for.

use anyhow::{Result, ensure};
use mcp_edge_tests::client::{http, sdk_client, tool_names};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{Stack, StackOptions, Upstream};
use mcp_edge_tests::upstream_cases::{
    ensure_authorized_per_tool, get_stream_is_answered_at_the_edge,
    requests_that_bypass_the_edge_are_refused,
};
use serde_json::{Value, json};

/// `echo` and `whoami` need `mcp:read`, `shout` `mcp:write`, `purge` `mcp:admin`; `hidden` is
/// unknown to the edge.
fn overrides() -> Value {
    json!({"tool_scopes": {
        "echo": "mcp:read", "whoami": "mcp:read", "shout": "mcp:write", "purge": "mcp:admin"
    }})
}

fn official_client_sees_only_its_tools(s: &Stack) -> Result<()> {
    let every = s.token_with("tenant-py", "mcp:read mcp:write mcp:admin", None)?;
    let listed = sdk_client(&s.mcp_url, &every, json!([]))?;
    ensure!(
        listed["serverInfo"]["name"] == "py-sdk-stateless",
        "{listed}"
    );
    let names = tool_names(&listed)?;
    ensure!(
        names == ["echo", "purge", "shout", "whoami"],
        "all scopes: {names:?}"
    );
    let narrow = s.token_with(
        "tenant-py",
        "mcp:read mcp:write",
        Some(&["echo", "whoami", "purge", "hidden"]),
    )?;
    let listed = sdk_client(
        &s.mcp_url,
        &narrow,
        json!([
            {"name": "echo", "arguments": {"text": "through the edge"}},
            {"name": "whoami", "arguments": {}}
        ]),
    )?;
    let names = tool_names(&listed)?;
    ensure!(
        names == ["echo", "whoami"],
        "allowed_tools and scopes: {names:?}"
    );
    let results = &listed["results"];
    ensure!(
        results[0]["content"][0]["text"] == "through the edge",
        "{listed}"
    );
    ensure!(
        results[1]["content"][0]["text"] == "tenant=tenant-py user=user-of-tenant-py",
        "whoami: {listed}"
    );
    Ok(())
}

/// The Python SDK 2.3.0 answers `server/discover`: rmcp settles on 2026-07-28 through the edge.
fn rmcp_client_is_authorized_per_tool(s: &Stack) -> Result<()> {
    ensure_authorized_per_tool(s, "2026-07-28")
}

/// The SDK checks `Host` (DNS-rebinding protection) and the edge forwards the client's: the
/// public host the server was told about (`PUBLIC_HOST` in tests/python/edge_tools.py) is served,
/// another is refused by the SDK with 421.
fn sdk_serves_only_the_hosts_it_was_told(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-py", "mcp:read", None)?;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    for (host, status) in [("mcp.example.com", 200), ("other.example.com", 421)] {
        let resp = http()
            .post(&s.mcp_url)
            .bearer_auth(&token)
            .header("host", host)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-11-25")
            .body(list.to_string())
            .send()?;
        let got = resp.status();
        let body = resp.text()?;
        ensure!(got == status, "Host {host}: {got} {body}");
        ensure!(
            status != 200 || body.contains("\"whoami\""),
            "Host {host}: {body}"
        );
    }
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    official_client_sees_only_its_tools,
    rmcp_client_is_authorized_per_tool,
    get_stream_is_answered_at_the_edge,
    requests_that_bypass_the_edge_are_refused,
    sdk_serves_only_the_hosts_it_was_told,
];

fn main() {
    mcp_edge_tests::runner::run_with_options(
        &StackOptions {
            plugin_overrides: overrides(),
            upstream: Upstream::Python("py_server.py"),
            ..StackOptions::default()
        },
        CASES,
    );
}
