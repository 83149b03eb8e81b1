//! A third-party MCP server that keeps sessions behind the edge: the official TypeScript SDK's
//! Streamable HTTP server in stateful mode (`tests/node/ts_stateful_server.mjs`), with
//! `stateful_upstream: true`. The edge binds each `Mcp-Session-Id` to the token's tenant and user
//! (`filter/src/session.rs`), passes SSE streams through unbuffered, and signs every request: the
//! server verifies the signature with `docs/verify/verify_gateway.mjs` and refuses anything else.

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

/// `announce` and `echo` need `mcp:read`, `shout` `mcp:write`, `purge` `mcp:admin`; `hidden` is
/// unknown to the edge.
fn overrides() -> Value {
    json!({
        "stateful_upstream": true,
        "tool_scopes": {"announce": "mcp:read", "echo": "mcp:read", "shout": "mcp:write", "purge": "mcp:admin"}
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

fn get_stream_delivers_events_before_it_ends(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-st", "mcp:read", None)?;
    let sid = initialize(s, &token)?;
    let mut stream = http()
        .get(&s.mcp_url)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", VERSION)
        .header("mcp-session-id", &sid)
        .send()?;
    ensure!(stream.status() == 200, "GET: {}", stream.status());
    let ct = stream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ensure!(ct.starts_with("text/event-stream"), "GET: {ct}");
    // The stream stays open: whatever arrives, arrives while it streams.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "announce", "arguments": {}}});
    let resp = post(&s.mcp_url, &token, Some(&sid), &call)?;
    ensure!(resp.status() == 200, "announce: {}", resp.status());
    let answer = resp.text()?;
    ensure!(answer.contains("announced"), "announce: {answer}");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("notifications/tools/list_changed") {
        let chunk = rx
            .recv_timeout(Duration::from_secs(10))
            .with_context(|| format!("no event on the GET stream; got {seen:?}"))?;
        seen.extend(chunk);
    }
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
    get_stream_delivers_events_before_it_ends,
    delete_ends_the_session,
    requests_that_bypass_the_edge_are_refused,
];

fn main() {
    mcp_edge_tests::runner::run_with_options(
        &StackOptions {
            plugin_overrides: overrides(),
            upstream_script: Some("ts_stateful_server.mjs"),
            ..StackOptions::default()
        },
        CASES,
    );
}
