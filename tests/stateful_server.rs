//! A third-party MCP server that keeps sessions behind the edge: the official TypeScript SDK's
//! Streamable HTTP server in stateful mode (`tests/node/ts_stateful_server.mjs`), with
//! `stateful_upstream: true`. The edge binds each `Mcp-Session-Id` to the token's tenant and user
//! (`filter/src/session.rs`), passes SSE streams through unbuffered, and signs every request: the
//! server verifies the signature with `docs/verify/verify_gateway.mjs` and refuses anything else.
//! A `tools/list` answered as SSE is filtered event by event: a notification before the answer
//! reaches the client while the answer is still pending. Envoy's route timeouts are cut to
//! [`ROUTE_TIMEOUT`] here (every route that has one, as `timeout: 60s` in envoy.yaml), so the
//! tests show quickly that a POST is cut by it while a GET stream (envoy.yaml's `timeout: 0s`
//! route for GET) outlives it.

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use mcp_edge_tests::client::{http, sdk_client, tool_names};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{Stack, StackOptions};
use reqwest::blocking::Response;
use serde_json::{Value, json};

const VERSION: &str = "2025-11-25";

/// The route timeout of this stack's Envoy instead of envoy.yaml's 60 s (see the module comment).
const ROUTE_TIMEOUT: &str = "4s";

/// `announce`, `echo` and `release` need `mcp:read`, `shout` `mcp:write`, `purge` `mcp:admin`;
/// `hidden` is unknown to the edge.
fn overrides() -> Value {
    json!({
        "stateful_upstream": true,
        "tool_scopes": {"announce": "mcp:read", "echo": "mcp:read", "release": "mcp:read",
            "shout": "mcp:write", "purge": "mcp:admin"}
    })
}

/// A JSON-RPC POST to `url`, with the session id when given.
fn post(url: &str, token: &str, session: Option<&str>, body: &Value) -> Result<Response> {
    let mut req = http()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", VERSION)
        .body(body.to_string());
    if let Some(sid) = session {
        req = req.header("mcp-session-id", sid);
    }
    Ok(req.send()?)
}

/// Initializes a session through the edge; the session id the client got.
fn initialize(s: &Stack, token: &str) -> Result<String> {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let resp = post(&s.mcp_url, token, None, &init)?;
    ensure!(resp.status() == 200, "initialize: {}", resp.status());
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .context("no Mcp-Session-Id")?
        .to_str()?
        .to_string();
    let body = resp.text()?;
    ensure!(body.contains("ts-sdk-stateful"), "initialize: {body}");
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = post(&s.mcp_url, token, Some(&sid), &done)?;
    ensure!(resp.status() == 202, "initialized: {}", resp.status());
    Ok(sid)
}

/// The JSON-RPC error code of a refusal.
fn error_code(resp: Response) -> Result<Value> {
    let body: Value = resp.json()?;
    Ok(body["error"]["code"].clone())
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

fn session_ids_are_bound_to_tenant_and_user(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-st", "mcp:read", None)?;
    let sid = initialize(s, &token)?;
    let (upstream, tag) = sid.rsplit_once('.').context("not in the bound form")?;
    ensure!(tag.len() == 22, "128-bit mac in base64url: {sid}");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let resp = post(&s.mcp_url, &token, Some(&sid), &list)?;
    ensure!(resp.status() == 200, "own session: {}", resp.status());
    let other_tenant = s.token_with("tenant-other", "mcp:read", None)?;
    let tampered = format!("{upstream}x.{tag}");
    for (token, sid, what) in [
        (&other_tenant, sid.as_str(), "another tenant's token"),
        (&token, upstream, "the bare upstream id"),
        (&token, tampered.as_str(), "a tampered id"),
    ] {
        let resp = post(&s.mcp_url, token, Some(sid), &list)?;
        ensure!(resp.status() == 404, "{what}: {}", resp.status());
        let code = error_code(resp)?;
        ensure!(code == -32057, "{what}: {code}");
    }
    Ok(())
}

/// The session's GET stream (Streamable HTTP's server-to-client SSE stream), open.
fn open_get_stream(s: &Stack, token: &str, sid: &str) -> Result<Response> {
    let stream = http()
        .get(&s.mcp_url)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", VERSION)
        .header("mcp-session-id", sid)
        .send()?;
    ensure!(stream.status() == 200, "GET: {}", stream.status());
    let ct = stream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    ensure!(ct.starts_with("text/event-stream"), "GET: {ct}");
    Ok(stream)
}

/// The body of `resp` chunk by chunk as it arrives; the channel closes at its end (or a read error).
fn chunks(mut resp: Response) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = resp.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// What arrives on `rx` until `needle` has (at most 10 s between chunks).
fn read_until(rx: &mpsc::Receiver<Vec<u8>>, needle: &str, what: &str) -> Result<String> {
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let chunk = rx
            .recv_timeout(Duration::from_secs(10))
            .with_context(|| format!("no {needle} on {what}; got {seen:?}"))?;
        seen.extend(chunk);
    }
    Ok(String::from_utf8(seen)?)
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
    Ok(chunks(resp))
}

/// A streamed tools/list is not held to its end: the notification the server sends before the
/// answer arrives while the server still holds the answer (it waits for `release`, which this
/// test sends only after seeing the notification: an edge that buffered would time out here).
fn streamed_tools_list_passes_events_before_its_answer(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-st", "mcp:read", None)?;
    let sid = initialize(s, &token)?;
    let answer = held_tools_list(s, &token, &sid)?;
    let before = read_until(&answer, "notifications/progress", "the tools/list stream")?;
    ensure!(
        !before.contains("\"result\""),
        "answered before release: {before}"
    );
    call_tool(s, &token, &sid, "release", "released")?;
    let rest = read_until(&answer, "\"result\"", "the tools/list stream")?;
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

/// The GET stream delivers events while it streams, and outlives the route timeout that cuts a
/// POST: a tools/list held past it ends without its answer, and afterwards the GET stream, opened
/// before it, still delivers events.
fn get_stream_outlives_the_route_timeout(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-st", "mcp:read", None)?;
    let sid = initialize(s, &token)?;
    let stream = open_get_stream(s, &token, &sid)?;
    let events = chunks(stream);
    let answer = held_tools_list(s, &token, &sid)?;
    read_until(&answer, "notifications/progress", "the tools/list stream")?;
    // The server holds the answer for 30 s; the route timeout ends the exchange long before.
    let mut rest = Vec::new();
    loop {
        match answer.recv_timeout(Duration::from_secs(20)) {
            Ok(chunk) => rest.extend(chunk),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                anyhow::bail!("the held POST was not cut by the {ROUTE_TIMEOUT} route timeout")
            }
        }
    }
    let rest = String::from_utf8_lossy(&rest);
    ensure!(!rest.contains("\"result\""), "answered: {rest}");
    call_tool(s, &token, &sid, "release", "released")?;
    call_tool(s, &token, &sid, "announce", "announced")?;
    read_until(
        &events,
        "notifications/tools/list_changed",
        "the GET stream",
    )?;
    Ok(())
}

fn delete_ends_the_session(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-st", "mcp:read", None)?;
    let sid = initialize(s, &token)?;
    let resp = http()
        .delete(&s.mcp_url)
        .bearer_auth(&token)
        .header("mcp-protocol-version", VERSION)
        .header("mcp-session-id", &sid)
        .send()?;
    ensure!(resp.status() == 200, "DELETE: {}", resp.status());
    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"});
    let resp = post(&s.mcp_url, &token, Some(&sid), &list)?;
    ensure!(resp.status() == 404, "after DELETE: {}", resp.status());
    Ok(())
}

fn requests_that_bypass_the_edge_are_refused(s: &Stack) -> Result<()> {
    let direct = format!("http://{}/mcp", s.backend_addr);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let token = s.token_with("tenant-st", "mcp:read", None)?;
    let resp = post(&direct, &token, None, &init)?;
    ensure!(
        resp.status() == 401,
        "straight to the server: {}",
        resp.status()
    );
    let code = error_code(resp)?;
    ensure!(code == -32040, "straight to the server: {code}");
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    official_client_works_through_sessions,
    session_ids_are_bound_to_tenant_and_user,
    streamed_tools_list_passes_events_before_its_answer,
    get_stream_outlives_the_route_timeout,
    delete_ends_the_session,
    requests_that_bypass_the_edge_are_refused,
];

fn main() {
    mcp_edge_tests::runner::run_with_options(
        &StackOptions {
            plugin_overrides: overrides(),
            upstream_script: Some("ts_stateful_server.mjs"),
            route_timeout: Some(ROUTE_TIMEOUT),
            ..StackOptions::default()
        },
        CASES,
    );
}
