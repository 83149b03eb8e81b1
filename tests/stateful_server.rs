//! A third-party MCP server that keeps sessions behind the edge: the official TypeScript SDK's
//! Streamable HTTP server in stateful mode (`tests/node/ts_stateful_server.mjs`), with
//! `stateful_upstream: true`. The edge binds each `Mcp-Session-Id` to the token's tenant and user
//! (`filter/src/session.rs`), passes SSE streams through unbuffered, and signs every request: the
//! server verifies the identity assertion with `docs/verify/verify_identity.mjs` and refuses anything else.
//! A `tools/list` answered as SSE is filtered event by event: a notification before the answer
//! reaches the client while the answer is still pending. Envoy's route timeouts are cut to
//! [`ROUTE_TIMEOUT`] here (every route that has one, as `timeout: 60s` in envoy.yaml), so the
//! tests show quickly that a POST is cut by it while a GET stream (envoy.yaml's `timeout: 0s`
//! route for GET) outlives it. The server keeps one event store for every session: a stream
//! resumed with `Last-Event-ID` replays only filtered lists, to the user it was sent to; a list
//! that reaches the client on another request's stream (a reused JSON-RPC id) is filtered too.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use mcp_edge_tests::client::{sdk_client, tool_names};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{Stack, StackOptions, Upstream};
use mcp_edge_tests::streamable::{
    chunks_of, get, initialize, listed_tools, open_get_stream, post, read_until,
};
use mcp_edge_tests::upstream_cases::{
    a_resumed_stream_replays_a_filtered_list, delete_ends_the_session,
    event_ids_are_bound_to_their_user, get_stream_delivers_events_before_it_ends,
    requests_that_bypass_the_edge_are_refused, session_ids_are_bound_to_tenant_and_user,
};
use serde_json::{Value, json};

/// The route timeout of this stack's Envoy instead of envoy.yaml's 60 s (see the module comment).
const ROUTE_TIMEOUT: Duration = Duration::from_secs(4);
/// [`ROUTE_TIMEOUT`] as envoy.yaml writes it.
const ROUTE_TIMEOUT_IN_CONFIG: &str = "4s";

/// `announce`, `echo` and `release` need `mcp:read`, `shout` `mcp:write`, `purge` `mcp:admin`;
/// `hidden` is unknown to the edge.
fn overrides() -> Value {
    json!({
        "stateful_upstream": true,
        "stream_limits": {"free": 2, "pro": 64, "enterprise": 64},
        "tool_scopes": {"announce": "mcp:read", "echo": "mcp:read", "release": "mcp:read",
            "shout": "mcp:write", "purge": "mcp:admin"}
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
        names == ["announce", "echo", "purge", "release", "shout"],
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
    ensure!(
        names == ["announce", "echo", "release"],
        "mcp:read: {names:?}"
    );
    Ok(())
}

/// Calls tool `name` in the session; its answer must contain `expect`.
fn call_tool(s: &Stack, token: &str, sid: &str, name: &str, expect: &str) -> Result<()> {
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": name, "arguments": {}}});
    let resp = post(&s.mcp_url, token, Some(sid), &call)?;
    ensure!(resp.status() == 200, "{name}: {}", resp.status());
    let answer = resp.text()?;
    ensure!(answer.contains(expect), "{name}: {answer}");
    Ok(())
}

/// A `tools/list` the server holds (see ts_stateful_server.mjs): a progress notification at once,
/// the answer after the tool `release`.
fn held_tools_list(s: &Stack, token: &str, sid: &str) -> Result<mpsc::Receiver<Vec<u8>>> {
    let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list",
        "params": {"_meta": {"progressToken": "p7", "mcp-edge-test/hold": true}}});
    let resp = post(&s.mcp_url, token, Some(sid), &list)?;
    ensure!(resp.status() == 200, "tools/list: {}", resp.status());
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    ensure!(ct.starts_with("text/event-stream"), "tools/list as {ct}");
    Ok(chunks_of(resp))
}

/// A streamed tools/list is not held to its end: the notification the server sends before the
/// answer arrives while the server still holds the answer (it waits for `release`, which this
/// test sends only after seeing the notification: an edge that buffered would time out here).
fn streamed_tools_list_passes_events_before_its_answer(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-st", "mcp:read", None)?;
    let (sid, _) = initialize(&s.mcp_url, &token)?;
    let answer = held_tools_list(s, &token, &sid)?;
    let before = read_until(&answer, "notifications/progress")?;
    ensure!(
        !before.contains("\"result\""),
        "answered before release: {before}"
    );
    call_tool(s, &token, &sid, "release", "released")?;
    let rest = read_until(&answer, "\"result\"")?;
    ensure!(
        rest.contains("\"echo\"") && rest.contains("\"release\""),
        "mcp:read tools: {rest}"
    );
    for refused in ["shout", "purge", "hidden"] {
        ensure!(
            !rest.contains(&format!("\"{refused}\"")),
            "{refused} listed: {rest}"
        );
    }
    Ok(())
}

/// A client that reuses the id of a pending `tools/list` (7) for a `tools/call` gets the list on
/// the call's stream (the server maps a response to the stream of the last request with its id;
/// `release` with `wait` answers only after the list is sent): the list is filtered there too.
fn a_list_answered_on_another_requests_stream_is_filtered(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-st", "mcp:read", None)?;
    let (sid, _) = initialize(&s.mcp_url, &token)?;
    let held = held_tools_list(s, &token, &sid)?;
    read_until(&held, "notifications/progress")?;
    let reuse = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "release", "arguments": {"wait": true}}});
    let resp = post(&s.mcp_url, &token, Some(&sid), &reuse)?;
    ensure!(resp.status() == 200, "release: {}", resp.status());
    let answer = resp.text()?;
    let listed = listed_tools(&answer);
    ensure!(
        !listed.is_empty(),
        "no list on the release's stream: {answer}"
    );
    ensure!(
        listed == ["echo", "announce", "release"],
        "the list on the release's stream: {listed:?}"
    );
    Ok(())
}

/// Long-lived streams are capped per tenant (`stream_limits`, here 2 for the free tier): a free
/// tenant's third GET stream is refused (429, -32043) while its calls and another tenant's
/// stream are served; a stream the client closes gives its place back.
fn a_tenant_at_its_stream_cap_is_refused_while_others_are_served(s: &Stack) -> Result<()> {
    let free = |tenant: &str| {
        let mut spec = s.spec(tenant);
        spec.tier = "free".into();
        spec.scope = "mcp:read".into();
        s.sign("RS256", xtask::claims_for(&spec))
    };
    let (capped, other) = (free("tenant-streams")?, free("tenant-streams-other")?);
    let mut open = Vec::new();
    for _ in 0..2 {
        let (sid, _) = initialize(&s.mcp_url, &capped)?;
        open.push(open_get_stream(&s.mcp_url, &capped, &sid)?);
    }
    let (third, _) = initialize(&s.mcp_url, &capped)?;
    let resp = get(&s.mcp_url, &capped, &third, None)?;
    let status = resp.status();
    ensure!(status == 429, "a third stream of a free tenant: {status}");
    let body: Value = resp.json()?;
    ensure!(
        body["error"]["code"] == -32043
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("free tier allows 2")),
        "{body}"
    );
    call_tool(s, &capped, &third, "release", "nothing held")?;
    let (other_sid, _) = initialize(&s.mcp_url, &other)?;
    let _other_stream = open_get_stream(&s.mcp_url, &other, &other_sid)?;
    // The client closes a stream: its place comes back once Envoy has ended the request.
    drop(open.remove(0));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = get(&s.mcp_url, &capped, &third, None)?;
        if resp.status() == 200 {
            return Ok(());
        }
        let body = resp.text()?;
        ensure!(
            body.contains("Too many open streams") && Instant::now() < deadline,
            "after a stream was closed: {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The GET stream outlives the route timeout that cuts a POST: a tools/list held past it ends
/// without its answer, and afterwards the GET stream, opened before it, still delivers events.
fn get_stream_outlives_the_route_timeout(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-st", "mcp:read", None)?;
    let (sid, _) = initialize(&s.mcp_url, &token)?;
    let events = chunks_of(open_get_stream(&s.mcp_url, &token, &sid)?);
    let sent = Instant::now();
    let answer = held_tools_list(s, &token, &sid)?;
    read_until(&answer, "notifications/progress")?;
    // The server holds the answer for 30 s; the route timeout ends the exchange long before,
    // and before the client's own 20 s read timeout could.
    let mut rest = Vec::new();
    let deadline = ROUTE_TIMEOUT + Duration::from_secs(3);
    loop {
        match answer.recv_timeout(deadline.saturating_sub(sent.elapsed())) {
            Ok(chunk) => rest.extend(chunk),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => anyhow::bail!(
                "the held POST was still open {:?} after it was sent (route timeout {ROUTE_TIMEOUT:?})",
                sent.elapsed()
            ),
        }
    }
    let cut = sent.elapsed();
    ensure!(
        cut >= ROUTE_TIMEOUT,
        "the held POST ended after {cut:?}, before the {ROUTE_TIMEOUT:?} route timeout"
    );
    let rest = String::from_utf8_lossy(&rest);
    ensure!(!rest.contains("\"result\""), "answered: {rest}");
    call_tool(s, &token, &sid, "release", "released")?;
    call_tool(s, &token, &sid, "announce", "announced")?;
    read_until(&events, "notifications/tools/list_changed")?;
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    official_client_works_through_sessions,
    session_ids_are_bound_to_tenant_and_user,
    get_stream_delivers_events_before_it_ends,
    streamed_tools_list_passes_events_before_its_answer,
    get_stream_outlives_the_route_timeout,
    a_resumed_stream_replays_a_filtered_list,
    event_ids_are_bound_to_their_user,
    a_list_answered_on_another_requests_stream_is_filtered,
    a_tenant_at_its_stream_cap_is_refused_while_others_are_served,
    delete_ends_the_session,
    requests_that_bypass_the_edge_are_refused,
];

fn main() {
    mcp_edge_tests::runner::run_with_options(
        &StackOptions {
            plugin_overrides: overrides(),
            upstream: Upstream::Node("ts_stateful_server.mjs"),
            route_timeout: Some(ROUTE_TIMEOUT_IN_CONFIG),
            ..StackOptions::default()
        },
        CASES,
    );
}
