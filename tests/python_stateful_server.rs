//! The official MCP Python SDK's Streamable HTTP server in stateful mode behind the edge
//! (`tests/python/py_stateful_server.py`: session ids, SSE responses, a GET stream per session),
//! with `stateful_upstream: true`. The edge binds each `Mcp-Session-Id` to the token's tenant and
//! user (`filter/src/session.rs`), passes SSE streams through unbuffered, and signs every
//! request: the server verifies the identity assertion with `docs/verify/verify_identity_asgi.py` and
//! refuses anything else. The server keeps one event store for every session: a stream resumed
//! with `Last-Event-ID` replays only filtered lists, to the user it was sent to.

use anyhow::{Result, ensure};
use mcp_edge_tests::client::{sdk_client, tool_names};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{Stack, StackOptions, Upstream};
use mcp_edge_tests::streamable::post;
use mcp_edge_tests::upstream_cases::{
    a_resumed_stream_replays_a_filtered_list, delete_ends_the_session, ensure_authorized_per_tool,
    event_ids_are_bound_to_their_user, get_stream_delivers_events_before_it_ends,
    requests_that_bypass_the_edge_are_refused, session_ids_are_bound_to_tenant_and_user,
};
use serde_json::{Value, json};

/// `announce`, `echo` and `whoami` need `mcp:read`, `shout` `mcp:write`, `purge` `mcp:admin`;
/// `hidden` is unknown to the edge.
fn overrides() -> Value {
    json!({
        "stateful_upstream": true,
        "tool_scopes": {"announce": "mcp:read", "echo": "mcp:read", "whoami": "mcp:read",
                        "shout": "mcp:write", "purge": "mcp:admin"}
    })
}

/// Initializes a session through the edge; the session id the client got.
fn initialize(s: &Stack, token: &str) -> Result<String> {
    let (sid, body) = mcp_edge_tests::streamable::initialize(&s.mcp_url, token)?;
    ensure!(body.contains("py-sdk-stateful"), "initialize: {body}");
    Ok(sid)
}

fn official_client_works_through_sessions(s: &Stack) -> Result<()> {
    let every = s.token_with("tenant-pys", "mcp:read mcp:write mcp:admin", None)?;
    let listed = sdk_client(
        &s.mcp_url,
        &every,
        json!([
            {"name": "echo", "arguments": {"text": "in a session"}},
            {"name": "whoami", "arguments": {}}
        ]),
    )?;
    ensure!(
        listed["serverInfo"]["name"] == "py-sdk-stateful",
        "{listed}"
    );
    let names = tool_names(&listed)?;
    ensure!(
        names == ["announce", "echo", "purge", "shout", "whoami"],
        "all scopes: {names:?}"
    );
    let results = &listed["results"];
    ensure!(
        results[0]["content"][0]["text"] == "in a session",
        "{listed}"
    );
    ensure!(
        results[1]["content"][0]["text"] == "tenant=tenant-pys user=user-of-tenant-pys",
        "whoami: {listed}"
    );
    let narrow = s.token_with("tenant-pys", "mcp:read", None)?;
    let listed = sdk_client(&s.mcp_url, &narrow, json!([]))?;
    let names = tool_names(&listed)?;
    ensure!(
        names == ["announce", "echo", "whoami"],
        "mcp:read: {names:?}"
    );
    Ok(())
}

/// Each refusal has one cause, and a code only the edge answers with (docs/errors.md).
fn refusals_in_a_session_stay_at_the_edge(s: &Stack) -> Result<()> {
    let token = s.token_with(
        "tenant-pys",
        "mcp:read mcp:admin",
        Some(&["echo", "whoami", "shout"]),
    )?;
    let sid = initialize(s, &token)?;
    for (id, tool, status, code) in [
        (10, "purge", 403, -32041),  // has the scope, not in allowed_tools
        (11, "shout", 403, -32042),  // allowed, lacks mcp:write
        (12, "hidden", 403, -32041), // unknown to the edge
    ] {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": {"text": "x"}}});
        let resp = post(&s.mcp_url, &token, Some(&sid), &call)?;
        let got = resp.status();
        let body: Value = resp.json()?;
        ensure!(got == status, "{tool}: {got} {body}");
        ensure!(body["error"]["code"] == code, "{tool}: {body}");
    }
    let call = json!({"jsonrpc": "2.0", "id": 13, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}}});
    let resp = post(&s.mcp_url, &token, Some(&sid), &call)?;
    ensure!(resp.status() == 200, "whoami: {}", resp.status());
    let answer = resp.text()?;
    ensure!(
        answer.contains("tenant=tenant-pys user=user-of-tenant-pys"),
        "whoami: {answer}"
    );
    Ok(())
}

/// At 2026-07-28 (`server/discover`, no `initialize`, no session) the SDK serves even its
/// stateful app statelessly; the edge with `stateful_upstream` lets such a client through.
fn rmcp_client_is_authorized_per_tool(s: &Stack) -> Result<()> {
    ensure_authorized_per_tool(s, "2026-07-28")
}

const CASES: &[Case] = mcp_edge_tests::cases![
    official_client_works_through_sessions,
    refusals_in_a_session_stay_at_the_edge,
    rmcp_client_is_authorized_per_tool,
    session_ids_are_bound_to_tenant_and_user,
    get_stream_delivers_events_before_it_ends,
    a_resumed_stream_replays_a_filtered_list,
    event_ids_are_bound_to_their_user,
    delete_ends_the_session,
    requests_that_bypass_the_edge_are_refused,
];

fn main() {
    mcp_edge_tests::runner::run_with_options(
        &StackOptions {
            plugin_overrides: overrides(),
            upstream: Upstream::Python("py_stateful_server.py"),
            ..StackOptions::default()
        },
        CASES,
    );
}
