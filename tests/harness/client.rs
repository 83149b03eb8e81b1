//! Small HTTP and MCP client helpers shared by the end-to-end test binaries.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn http() -> Client {
    Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// A unique marker to find this request (or its absence) at the recording upstream.
pub fn marker(name: &str) -> String {
    format!("marker-{name}-{}", std::process::id())
}

/// A JSON-RPC `tools/call` body carrying a marker.
pub fn call_body(marker: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": "list_projects", "arguments": {}, "_meta": {"marker": marker}}})
    .to_string()
}

pub fn post_mcp(url: &str, token: Option<&str>, body: &str) -> Result<Response> {
    let mut req = http()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    Ok(req.send()?)
}

/// The socket address (`127.0.0.1:<port>`) of a URL's authority.
pub fn authority(url: &str) -> Result<std::net::SocketAddr> {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .with_context(|| format!("no authority in {url}"))?
        .parse()
        .with_context(|| format!("no socket address in {url}"))
}

pub fn header(resp: &Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Runs the official TypeScript SDK client (tests/node/sdk_client.mjs).
pub fn sdk_client(url: &str, token: &str, calls: Value) -> Result<Value> {
    node_script(
        "sdk_client.mjs",
        &[
            ("MCP_URL", url),
            ("MCP_TOKEN", token),
            ("MCP_CALLS", &calls.to_string()),
        ],
    )
}

/// Runs a script of tests/node with `env` and returns the JSON object it prints last; fails if
/// that object has an `error`.
pub fn node_script(script: &str, env: &[(&str, &str)]) -> Result<Value> {
    let script = crate::repo_root().join("tests/node").join(script);
    let mut cmd = Command::new(crate::procs::node_bin());
    cmd.arg(&script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().context("running node")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).with_context(|| {
        format!(
            "{} printed {stdout:?}; stderr: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if let Some(e) = v.get("error") {
        bail!(
            "{} failed: {e}; output: {v}; stderr: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(v)
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn structured(result: &Value) -> &Value {
    &result["structuredContent"]
}

/// The tool names in a `tools/list` result (`{"tools": [...]}`), sorted; an error if it has none.
pub fn tool_names(result: &Value) -> Result<Vec<&str>> {
    let mut names: Vec<&str> = result["tools"]
        .as_array()
        .with_context(|| format!("no tools in {result}"))?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// Waits, if needed, until at least `room` is left in the current UTC day: the backend's daily
/// quotas turn on the UTC day, so a case that counts one day's calls must not straddle midnight
/// (its quota would start again half way through).
pub fn utc_day_with_room(room: std::time::Duration) {
    const DAY_MS: u128 = 86_400_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let left = std::time::Duration::from_millis(u64::try_from(DAY_MS - now % DAY_MS).unwrap_or(0));
    if left < room {
        std::thread::sleep(left + std::time::Duration::from_millis(50));
    }
}
