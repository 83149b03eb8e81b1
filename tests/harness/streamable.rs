//! Raw Streamable HTTP requests through the edge, for the tests that look at what the MCP SDK
//! clients hide: session ids, status codes, refusal bodies and the timing of SSE events.

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use reqwest::blocking::Response;
use serde_json::{Value, json};

use crate::client::{header, http};

/// The protocol version these requests speak (the newest one with `initialize` and sessions).
pub const VERSION: &str = "2025-11-25";

/// A JSON-RPC POST to `url`, with the session id when given.
pub fn post(url: &str, token: &str, session: Option<&str>, body: &Value) -> Result<Response> {
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

/// Initializes a session at `url` and sends `notifications/initialized`; the session id the
/// client got and the body of the `initialize` answer.
pub fn initialize(url: &str, token: &str) -> Result<(String, String)> {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let resp = post(url, token, None, &init)?;
    ensure!(resp.status() == 200, "initialize: {}", resp.status());
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .context("no Mcp-Session-Id")?
        .to_str()?
        .to_string();
    let body = resp.text()?;
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = post(url, token, Some(&sid), &done)?;
    ensure!(resp.status() == 202, "initialized: {}", resp.status());
    Ok((sid, body))
}

/// The JSON-RPC error code of a refusal.
pub fn error_code(resp: Response) -> Result<Value> {
    let body: Value = resp.json()?;
    Ok(body["error"]["code"].clone())
}

/// A GET in the session: its stream, or with `last_event_id` the resumption of the stream that
/// sent that event (whatever the answer).
pub fn get(url: &str, token: &str, sid: &str, last_event_id: Option<&str>) -> Result<Response> {
    let mut req = http()
        .get(url)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", VERSION)
        .header("mcp-session-id", sid);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    Ok(req.send()?)
}

/// Opens the session's GET stream; fails unless it is answered 200 with `text/event-stream`.
pub fn open_get_stream(url: &str, token: &str, sid: &str) -> Result<Response> {
    let stream = get(url, token, sid, None)?;
    ensure!(stream.status() == 200, "GET: {}", stream.status());
    let ct = header(&stream, "content-type");
    ensure!(ct.starts_with("text/event-stream"), "GET: {ct}");
    Ok(stream)
}

/// Reads `stream` on a thread of its own and returns what it receives, chunk by chunk, as it
/// arrives (the stream stays open: whatever arrives, arrives while it streams).
pub fn chunks_of(mut stream: Response) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (10 s at most per chunk) until the chunks received contain `needle`.
pub fn wait_for_text(chunks: &mpsc::Receiver<Vec<u8>>, needle: &str) -> Result<()> {
    read_until(chunks, needle).map(drop)
}

/// What arrives (10 s at most per chunk) until it contains `needle`.
pub fn read_until(chunks: &mpsc::Receiver<Vec<u8>>, needle: &str) -> Result<String> {
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let chunk = chunks
            .recv_timeout(Duration::from_secs(10))
            .with_context(|| format!("no {needle:?} on the stream; got {seen:?}"))?;
        seen.extend(chunk);
    }
    Ok(String::from_utf8(seen)?)
}

/// The `id` of every event in an event stream's text, in order.
pub fn event_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|id| id.trim_start().to_string())
        .collect()
}

/// The tool names of every tool list in an event stream's text (or a JSON body), in order.
pub fn listed_tools(text: &str) -> Vec<String> {
    let messages = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(text))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok());
    let mut names = Vec::new();
    for m in messages {
        if let Some(tools) = m["result"]["tools"].as_array() {
            names.extend(
                tools
                    .iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_string)),
            );
        }
    }
    names
}
