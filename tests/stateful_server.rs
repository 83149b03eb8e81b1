//! A third-party MCP server that keeps sessions behind the edge: the official TypeScript SDK's
//! Streamable HTTP server in stateful mode (`tests/node/ts_stateful_server.mjs`), with
//! `stateful_upstream: true`. The edge binds each `Mcp-Session-Id` to the token's tenant and user
//! (`filter/src/session.rs`), passes SSE streams through unbuffered, and signs every request: the
//! server verifies the signature with `docs/verify/verify_gateway.mjs` and refuses anything else.

use anyhow::{Result, ensure};
use mcp_edge_tests::client::{sdk_client, tool_names};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{Stack, StackOptions, Upstream};
use mcp_edge_tests::upstream_cases::{
    delete_ends_the_session, get_stream_delivers_events_before_it_ends,
    requests_that_bypass_the_edge_are_refused, session_ids_are_bound_to_tenant_and_user,
};
use serde_json::{Value, json};

/// `announce` and `echo` need `mcp:read`, `shout` `mcp:write`, `purge` `mcp:admin`; `hidden` is
/// unknown to the edge.
fn overrides() -> Value {
    json!({
        "stateful_upstream": true,
        "tool_scopes": {"announce": "mcp:read", "echo": "mcp:read", "shout": "mcp:write", "purge": "mcp:admin"}
    })
}

fn official_client_works_through_sessions(s: &Stack) -> Result<()> {
    let every = s.token_with("tenant-st", "mcp:read mcp:write mcp:admin", None)?;
    let listed = sdk_client(
        &s.mcp_url,
        &every,
        json!([{"name": "echo", "arguments": {"text": "in a session"}}]),
    )?;
    ensure!(
        listed["serverInfo"]["name"] == "ts-sdk-stateful",
        "{listed}"
    );
    let names = tool_names(&listed)?;
    ensure!(
        names == ["announce", "echo", "purge", "shout"],
        "all scopes: {names:?}"
    );
    ensure!(
        listed["results"][0]["content"][0]["text"] == "in a session",
        "{listed}"
    );
    let narrow = s.token_with("tenant-st", "mcp:read", None)?;
    let names = tool_names(&sdk_client(&s.mcp_url, &narrow, json!([]))?)?
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    ensure!(names == ["announce", "echo"], "mcp:read: {names:?}");
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    official_client_works_through_sessions,
    session_ids_are_bound_to_tenant_and_user,
    get_stream_delivers_events_before_it_ends,
    delete_ends_the_session,
    requests_that_bypass_the_edge_are_refused,
];

fn main() {
    mcp_edge_tests::runner::run_with_options(
        &StackOptions {
            plugin_overrides: overrides(),
            upstream: Upstream::Node("ts_stateful_server.mjs"),
            ..StackOptions::default()
        },
        CASES,
    );
}
