//! Per-tool authorization on JSON-RPC bodies at the edge, through real Envoy and the real .wasm.
//!
//! Denials go through the listener whose upstream records requests, and every one of them also
//! asserts that the upstream received nothing. `tools/list` filtering is checked against the real
//! backend with the official TypeScript SDK client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use mcp_edge_tests::client::*;
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::Stack;
use mcp_edge_tests::stats::read_stats;
use reqwest::blocking::Response;
use serde_json::{Value, json};

fn tool_call(id: u64, tool: &str, marker: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {}, "_meta": {"marker": marker}}})
}

fn post(s: &Stack, token: &str, body: &str, headers: &[(&str, &str)]) -> Result<Response> {
    post_to(&s.recorded_mcp_url, token, body, headers)
}

/// [`post`] to `url` (the recording upstream's listener or the real backend's).
fn post_to(url: &str, token: &str, body: &str, headers: &[(&str, &str)]) -> Result<Response> {
    let mut req = http()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(token)
        .body(body.to_string());
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    Ok(req.send()?)
}

/// Asserts the status, that nothing with `marker` reached the upstream, and returns the body.
fn denied(resp: Response, status: u16, s: &Stack, marker: &str) -> Result<(String, Value)> {
    let got = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text()?;
    ensure!(got == status, "expected {status}, got {got}: {text}");
    ensure!(
        s.recorder.with_marker(marker).is_empty(),
        "the upstream received a denied request ({marker})"
    );
    let body: Value = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
    Ok((challenge, body))
}

fn forwarded_once(s: &Stack, marker: &str) -> Result<mcp_edge_tests::recorder::Recorded> {
    let got = s.recorder.with_marker(marker);
    ensure!(
        got.len() == 1,
        "expected the upstream to receive {marker} once, got {}",
        got.len()
    );
    Ok(got[0].clone())
}

// ---------------------------------------------------------------------------------------------

fn tool_outside_allowed_tools_is_refused(s: &Stack) -> Result<()> {
    let t = s.token_with(
        "tenant-allow",
        "mcp:read mcp:write mcp:admin",
        Some(&["list_projects"]),
    )?;
    let m = marker("outside-allowed");
    let (challenge, body) = denied(
        post(s, &t, &tool_call(3, "create_project", &m).to_string(), &[])?,
        403,
        s,
        &m,
    )?;
    ensure!(
        challenge.is_empty(),
        "no step-up challenge for allowed_tools: {challenge}"
    );
    ensure!(
        body["id"] == 3
            && body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("create_project"),
        "{body}"
    );
    let m = marker("unknown-tool");
    let (_, body) = denied(
        post(s, &t, &tool_call(4, "drop_all_tables", &m).to_string(), &[])?,
        403,
        s,
        &m,
    )?;
    ensure!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("drop_all_tables"),
        "{body}"
    );
    let m = marker("inside-allowed");
    ensure!(
        post(s, &t, &tool_call(5, "list_projects", &m).to_string(), &[])?.status() == 200,
        "allowed tool refused"
    );
    forwarded_once(s, &m)?;
    Ok(())
}

fn step_up_challenge_then_success(s: &Stack) -> Result<()> {
    let m = marker("step-up");
    let body = tool_call(8, "delete_project", &m).to_string();
    let rw = s.token_with("tenant-step", "mcp:read mcp:write", None)?;
    let (challenge, err) = denied(
        post(s, &rw, &body, &[("mcp-protocol-version", "2025-11-25")])?,
        403,
        s,
        &m,
    )?;
    ensure!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    ensure!(challenge.contains("scope=\"mcp:admin\""), "{challenge}");
    ensure!(challenge.contains("resource_metadata=\""), "{challenge}");
    ensure!(err["id"] == 8 && err["error"]["code"].is_i64(), "{err}");
    let admin = s.token_with("tenant-step", "mcp:read mcp:write mcp:admin", None)?;
    let resp = post(s, &admin, &body, &[("mcp-protocol-version", "2025-11-25")])?;
    ensure!(resp.status() == 200, "with mcp:admin: {}", resp.status());
    forwarded_once(s, &m)?;
    Ok(())
}

fn batch_smuggling_is_refused_with_an_error_per_id(s: &Stack) -> Result<()> {
    let t = s.token_with(
        "tenant-batch",
        "mcp:read mcp:write",
        Some(&["list_projects"]),
    )?;
    let m = marker("batch");
    let batch = json!([
        tool_call(1, "list_projects", &m),
        tool_call(2, "create_project", &m)
    ])
    .to_string();
    let (_, body) = denied(post(s, &t, &batch, &[])?, 403, s, &m)?;
    let ids: Vec<Value> = body
        .as_array()
        .context("an array of errors")?
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    ensure!(ids == vec![json!(1), json!(2)], "{body}");
    // Batches are not part of 2025-06-18 at all.
    let m = marker("batch-new");
    let ok_batch = json!([
        tool_call(1, "list_projects", &m),
        tool_call(2, "list_projects", &m)
    ])
    .to_string();
    denied(
        post(s, &t, &ok_batch, &[("mcp-protocol-version", "2025-06-18")])?,
        400,
        s,
        &m,
    )?;
    // An allowed batch under 2025-03-26 goes through whole.
    let m = marker("batch-ok");
    let ok_batch = json!([
        tool_call(1, "list_projects", &m),
        tool_call(2, "list_projects", &m)
    ])
    .to_string();
    ensure!(
        post(s, &t, &ok_batch, &[("mcp-protocol-version", "2025-03-26")])?.status() == 200,
        "allowed batch refused"
    );
    forwarded_once(s, &m)?;
    Ok(())
}

/// A `tools/call` of `create_project` named `name`.
fn create_call(id: u64, name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "create_project", "arguments": {"name": name}}})
}

/// The names of the tenant's projects, listed through the edge and the real backend.
fn project_names(s: &Stack, token: &str) -> Result<Vec<String>> {
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "list_projects", "arguments": {"limit": 100}}});
    let resp = post_to(&s.mcp_url, token, &list.to_string(), &[])?;
    let text = resp.text()?;
    let body: Value = serde_json::from_str(&text).with_context(|| text.clone())?;
    let projects = body["result"]["structuredContent"]["projects"]
        .as_array()
        .with_context(|| format!("no projects: {body}"))?;
    Ok(projects
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect())
}

/// POSTs a 2025-03-26 batch through the edge to the real backend; its answers (200, JSON array).
fn served_batch(s: &Stack, token: &str, batch: &Value) -> Result<Vec<Value>> {
    let v2025_03 = [("mcp-protocol-version", "2025-03-26")];
    let resp = post_to(&s.mcp_url, token, &batch.to_string(), &v2025_03)?;
    let status = resp.status().as_u16();
    let content_type = header(&resp, "content-type");
    let text = resp.text()?;
    ensure!(status == 200, "batch answered {status}: {text}");
    ensure!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let answers: Value = serde_json::from_str(&text).with_context(|| text.clone())?;
    answers
        .as_array()
        .cloned()
        .with_context(|| format!("an array of answers: {text}"))
}

fn batch_of_allowed_calls_is_served_by_the_backend(s: &Stack) -> Result<()> {
    let t = s.token_with(
        "tenant-batch-served",
        "mcp:read mcp:write",
        Some(&["create_project", "list_projects"]),
    )?;
    let answers = served_batch(
        s,
        &t,
        &json!([create_call(1, "Batch A"), create_call(2, "Batch B")]),
    )?;
    let mut ids: Vec<u64> = answers.iter().filter_map(|a| a["id"].as_u64()).collect();
    ids.sort_unstable();
    ensure!(ids == [1, 2], "{answers:?}");
    ensure!(
        answers.iter().all(|a| a["result"]["isError"] == false),
        "{answers:?}"
    );
    // The backend's array answer still passes the edge's tools/list filter; no answer to a
    // notification.
    let answers = served_batch(
        s,
        &t,
        &json!([
            {"jsonrpc": "2.0", "id": 5, "method": "tools/list"},
            {"jsonrpc": "2.0", "method": "notifications/initialized"}
        ]),
    )?;
    ensure!(answers.len() == 1 && answers[0]["id"] == 5, "{answers:?}");
    let listed = tool_names(&answers[0]["result"])?;
    ensure!(listed == ["create_project", "list_projects"], "{listed:?}");
    // A forbidden element refuses the batch whole at the edge: its allowed element never runs.
    let smuggling = json!([
        create_call(3, "Batch C"),
        tool_call(4, "delete_project", "batch-served")
    ]);
    let v2025_03 = [("mcp-protocol-version", "2025-03-26")];
    let resp = post_to(&s.mcp_url, &t, &smuggling.to_string(), &v2025_03)?;
    let status = resp.status().as_u16();
    ensure!(
        status == 403,
        "forbidden element: {status}: {}",
        resp.text()?
    );
    let mut names = project_names(s, &t)?;
    names.sort();
    ensure!(names == ["Batch A", "Batch B"], "{names:?}");
    Ok(())
}

fn duplicate_and_escaped_keys_cannot_smuggle(s: &Stack) -> Result<()> {
    let t = s.token_with("tenant-dup", "mcp:read mcp:write", Some(&["list_projects"]))?;
    let m = marker("dup-method");
    let dup_method = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{{"name":"create_project","_meta":{{"marker":"{m}"}}}}}}"#
    );
    let (_, body) = denied(post(s, &t, &dup_method, &[])?, 400, s, &m)?;
    ensure!(body["error"]["code"] == -32700, "{body}");
    let m = marker("dup-name");
    let dup_name = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"list_projects","name":"create_project","_meta":{{"marker":"{m}"}}}}}}"#
    );
    denied(post(s, &t, &dup_name, &[])?, 400, s, &m)?;
    let m = marker("escaped-forbidden");
    let escaped = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{{"name":"cre\u0061te_project","_meta":{{"marker":"{m}"}}}}}}"#
    );
    let (_, body) = denied(post(s, &t, &escaped, &[])?, 403, s, &m)?;
    ensure!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("create_project"),
        "{body}"
    );
    // An allowed call written with escapes is forwarded byte for byte.
    let m = marker("escaped-allowed");
    let escaped_ok = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{{"name":"list\u005fprojects","_meta":{{"marker":"{m}"}}}}}}"#
    );
    ensure!(
        post(s, &t, &escaped_ok, &[])?.status() == 200,
        "escaped allowed call refused"
    );
    ensure!(
        forwarded_once(s, &m)?.body == escaped_ok.as_bytes(),
        "the forwarded body differs from the judged one"
    );
    Ok(())
}

/// A JSON-RPC id is echoed in every answer and keys the backend's bookkeeping: a string id over the
/// contract's 128 bytes is refused at the edge (400, -32600, not echoed), alone or in a batch; one
/// of 128 bytes passes.
fn long_request_ids_are_refused(s: &Stack) -> Result<()> {
    let t = s.token_with("tenant-long-id", "mcp:read", Some(&["list_projects"]))?;
    let call = |id: Value, m: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "list_projects", "arguments": {}, "_meta": {"marker": m}}})
    };
    let m = marker("long-id");
    let long = call(json!("i".repeat(300 * 1024)), &m).to_string();
    let (_, body) = denied(post(s, &t, &long, &[])?, 400, s, &m)?;
    ensure!(
        body["error"]["code"] == -32600 && body["id"].is_null(),
        "{body}"
    );
    let m = marker("long-id-batch");
    let batch = json!([call(json!(1), &m), call(json!("b".repeat(129)), &m)]).to_string();
    let (_, body) = denied(post(s, &t, &batch, &[])?, 400, s, &m)?;
    ensure!(body["error"]["code"] == -32600, "{body}");
    let m = marker("longest-id");
    let longest = call(json!("l".repeat(128)), &m).to_string();
    let resp = post(s, &t, &longest, &[])?;
    ensure!(
        resp.status() == 200,
        "a 128-byte id was refused: {}",
        resp.text()?
    );
    forwarded_once(s, &m)?;
    Ok(())
}

fn gzip_body_and_wrong_media_type_are_refused(s: &Stack) -> Result<()> {
    let t = s.token_with("tenant-gzip", "mcp:read", Some(&["list_projects"]))?;
    let m = marker("gzip");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(tool_call(1, "delete_project", &m).to_string().as_bytes())?;
    let resp = http()
        .post(&s.recorded_mcp_url)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .bearer_auth(&t)
        .body(gz.finish()?)
        .send()?;
    denied(resp, 415, s, &m)?;
    let m = marker("text-plain");
    let resp = http()
        .post(&s.recorded_mcp_url)
        .header("content-type", "text/plain")
        .bearer_auth(&t)
        .body(tool_call(1, "list_projects", &m).to_string())
        .send()?;
    denied(resp, 415, s, &m)?;
    Ok(())
}

fn body_cap_is_exact(s: &Stack) -> Result<()> {
    const CAP: usize = 1024 * 1024; // envoy.yaml's max_body_bytes
    let t = s.token_with("tenant-cap", "mcp:read", None)?;
    let sized = |m: &str, len: usize| -> String {
        let empty = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "list_projects", "_meta": {"marker": m, "pad": ""}}})
        .to_string();
        let mut v: Value = serde_json::from_str(&empty).unwrap_or_default();
        v["params"]["_meta"]["pad"] = json!("x".repeat(len - empty.len()));
        v.to_string()
    };
    let m = marker("cap-exact");
    let body = sized(&m, CAP);
    ensure!(body.len() == CAP, "test body is {} bytes", body.len());
    ensure!(
        post(s, &t, &body, &[])?.status() == 200,
        "a body of exactly the cap was refused"
    );
    forwarded_once(s, &m)?;
    let m = marker("cap-over");
    let body = sized(&m, CAP + 1);
    denied(post(s, &t, &body, &[])?, 413, s, &m)?;
    Ok(())
}

/// Sends a raw HTTP/1.1 request whose body arrives in `chunk`-byte pieces with pauses (no Nagle
/// delay, so each piece leaves in its own segment); returns the status and the client's port.
fn chunked_request(s: &Stack, token: &str, body: &str, chunk: usize) -> Result<(u16, u16)> {
    let addr = s
        .recorded_mcp_url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    let mut tcp = TcpStream::connect(&addr)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    let port = tcp.local_addr()?.port();
    write!(
        tcp,
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )?;
    for piece in body.as_bytes().chunks(chunk) {
        write!(tcp, "{:x}\r\n", piece.len())?;
        tcp.write_all(piece)?;
        tcp.write_all(b"\r\n")?;
        tcp.flush()?;
        std::thread::sleep(Duration::from_millis(2));
    }
    tcp.write_all(b"0\r\n\r\n")?;
    let mut response = String::new();
    tcp.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .context("no status line")?
        .parse()?;
    Ok((status, port))
}

/// Envoy's trace log of the HTTP layer while it lives: it names every time a piece of a request
/// body is handed to the wasm filter. Back to `info` (how the stack starts Envoy) when dropped.
struct BodyTrace<'a>(&'a Stack);

impl<'a> BodyTrace<'a> {
    fn start(s: &'a Stack) -> Result<Self> {
        Self::set(s, "paths=http:trace,conn_handler:debug")?;
        Ok(Self(s))
    }

    fn set(s: &Stack, query: &str) -> Result<()> {
        let r = http()
            .post(format!("{}/logging?{query}", s.admin_url))
            .send()?;
        ensure!(r.status() == 200, "/logging?{query}: {}", r.status());
        Ok(())
    }

    /// How many pieces of body the wasm filter was given on the connection from `client_port`
    /// (waits up to 5 s for at least `at_least` to appear in the log).
    fn pieces(&self, client_port: u16, at_least: usize) -> Result<usize> {
        let accepted = format!("new connection from 127.0.0.1:{client_port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.0.log_tail("envoy", usize::MAX);
            let connection = log
                .lines()
                .rev()
                .find(|l| l.ends_with(&accepted))
                .and_then(|l| l.split("\"ConnectionId\":\"").nth(1))
                .and_then(|rest| rest.split('"').next())
                .map(|id| format!("\"ConnectionId\":\"{id}\""));
            let pieces = connection.as_deref().map_or(0, |c| {
                log.lines()
                    .filter(|l| {
                        l.contains(c)
                            && l.contains("decode data called: filter=envoy.filters.http.wasm ")
                    })
                    .count()
            });
            if pieces >= at_least || std::time::Instant::now() > deadline {
                return Ok(pieces);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for BodyTrace<'_> {
    fn drop(&mut self) {
        let _ = Self::set(self.0, "paths=http:info,conn_handler:info");
    }
}

fn body_in_many_small_chunks_is_judged_whole(s: &Stack) -> Result<()> {
    // The filter must have been handed the body in several pieces (not one merged read), and
    // judged it only once it was whole.
    const SEVERAL: usize = 4;
    let trace = BodyTrace::start(s)?;
    let t = s.token_with(
        "tenant-chunks",
        "mcp:read mcp:write",
        Some(&["list_projects"]),
    )?;
    let m = marker("chunks-forbidden");
    let body = tool_call(1, "create_project", &m).to_string();
    let (status, port) = chunked_request(s, &t, &body, 7)?;
    ensure!(status == 403, "forbidden call in chunks: {status}");
    ensure!(
        s.recorder.with_marker(&m).is_empty(),
        "chunked forbidden call reached the upstream"
    );
    let pieces = trace.pieces(port, SEVERAL)?;
    ensure!(
        pieces >= SEVERAL,
        "the filter got the forbidden body in {pieces} piece(s), not {SEVERAL} or more"
    );
    let m = marker("chunks-allowed");
    let body = tool_call(1, "list_projects", &m).to_string();
    let (status, port) = chunked_request(s, &t, &body, 5)?;
    ensure!(status == 200, "allowed call in chunks: {status}");
    ensure!(
        forwarded_once(s, &m)?.body == body.as_bytes(),
        "chunked body changed"
    );
    let pieces = trace.pieces(port, SEVERAL)?;
    ensure!(
        pieces >= SEVERAL,
        "the filter got the allowed body in {pieces} piece(s), not {SEVERAL} or more"
    );
    Ok(())
}

/// One HTTP/2 (prior knowledge) POST to the recording upstream's listener, its body sent in two
/// halves and ended by `trailers` when given; the status, the body and the response's trailers.
fn h2_exchange(
    s: &Stack,
    token: &str,
    extra: &[(&'static str, &'static str)],
    body: String,
    trailers: Option<http::HeaderMap>,
) -> Result<(u16, String, Option<http::HeaderMap>)> {
    let addr = s
        .recorded_mcp_url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let extra = extra.to_vec();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(&addr).await?;
        let (client, conn) = h2::client::handshake(tcp).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut client = client.ready().await?;
        let mut req = http::Request::post(format!("http://{addr}/mcp"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (name, value) in extra {
            req = req.header(name, value);
        }
        let (response, mut stream) = client.send_request(req.body(())?, false)?;
        let bytes = bytes::Bytes::from(body);
        let (a, b) = bytes.split_at(bytes.len() / 2);
        stream.send_data(bytes::Bytes::copy_from_slice(a), false)?;
        stream.send_data(bytes::Bytes::copy_from_slice(b), trailers.is_none())?;
        if let Some(trailers) = trailers {
            stream.send_trailers(trailers)?;
        }
        let resp = tokio::time::timeout(Duration::from_secs(20), response).await??;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await?;
        Ok((
            status,
            String::from_utf8_lossy(&text).into_owned(),
            trailers,
        ))
    })
}

/// Sends one HTTP/2 (prior knowledge) POST whose body ends with trailers; returns the status.
fn h2_with_trailers(s: &Stack, token: &str, body: String) -> Result<u16> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", http::HeaderValue::from_static("none"));
    Ok(h2_exchange(s, token, &[], body, Some(trailers))?.0)
}

fn http2_with_trailers_is_judged(s: &Stack) -> Result<()> {
    let t = s.token_with("tenant-h2", "mcp:read mcp:write", Some(&["list_projects"]))?;
    let m = marker("h2-forbidden");
    let status = h2_with_trailers(s, &t, tool_call(1, "create_project", &m).to_string())?;
    ensure!(
        status == 403,
        "forbidden call over h2 with trailers: {status}"
    );
    ensure!(
        s.recorder.with_marker(&m).is_empty(),
        "h2 forbidden call reached the upstream"
    );
    let m = marker("h2-allowed");
    let body = tool_call(1, "list_projects", &m).to_string();
    let status = h2_with_trailers(s, &t, body.clone())?;
    ensure!(
        status == 200,
        "allowed call over h2 with trailers: {status}"
    );
    ensure!(
        forwarded_once(s, &m)?.body == body.as_bytes(),
        "h2 body changed"
    );
    Ok(())
}

fn path_variants_never_bypass_the_policy(s: &Stack) -> Result<()> {
    let t = s.token_with(
        "tenant-paths",
        "mcp:read mcp:write",
        Some(&["list_projects"]),
    )?;
    let origin = s.recorded_mcp_url.trim_end_matches("/mcp").to_string();
    // Each variant has one right answer: Envoy normalises it to /mcp before the filter runs
    // (then the policy refuses the tool, 403), refuses it (escaped slash, 400), or it is another
    // path that nothing serves (404).
    for (path, expected) in [
        ("/mcp/", 404),
        ("/MCP", 404),
        ("//mcp", 403),
        ("/%6dcp", 403),
        ("/./mcp", 403),
        ("/x/../mcp", 403),
        ("/mcp;x", 404),
        ("/mcp%2f", 400),
    ] {
        let m = marker(&format!("path-{}", path.replace(['/', '%', '.', ';'], "_")));
        let resp = http()
            .post(format!("{origin}{path}"))
            .header("content-type", "application/json")
            .bearer_auth(&t)
            .body(tool_call(1, "create_project", &m).to_string())
            .send()?;
        let status = resp.status().as_u16();
        ensure!(
            status == expected,
            "{path}: forbidden call answered {status}, expected {expected}"
        );
        ensure!(
            s.recorder.with_marker(&m).is_empty(),
            "{path}: a forbidden call reached the upstream"
        );
    }
    for path in ["/mcp/", "/MCP"] {
        let m = marker(&format!("path-ok-{}", path.replace('/', "_")));
        let resp = http()
            .post(format!("{origin}{path}"))
            .header("content-type", "application/json")
            .bearer_auth(&t)
            .body(tool_call(1, "list_projects", &m).to_string())
            .send()?;
        ensure!(resp.status() == 404, "{path}: {}", resp.status());
    }
    Ok(())
}

/// (case, tool in the body, headers, status, JSON-RPC error code of a refusal)
type HeaderCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16, i64);

fn routing_headers_must_agree_with_the_body(s: &Stack) -> Result<()> {
    let t = s.token_with("tenant-hdr", "mcp:read mcp:write", Some(&["list_projects"]))?;
    let v26 = ("mcp-protocol-version", "2026-07-28");
    let call = ("mcp-method", "tools/call");
    let cases: [HeaderCase; 6] = [
        (
            "mcp-name",
            "create_project",
            &[v26, call, ("mcp-name", "list_projects")],
            400,
            -32020,
        ),
        (
            "mcp-method",
            "list_projects",
            &[("mcp-method", "tools/list")],
            400,
            -32020,
        ),
        (
            "mcp-agree",
            "list_projects",
            &[v26, call, ("mcp-name", "list_projects")],
            200,
            0,
        ),
        // MCP 2026-07-28's UnsupportedProtocolVersionError (its data is checked below).
        (
            "bad-version",
            "list_projects",
            &[("mcp-protocol-version", "1999-01-01")],
            400,
            -32022,
        ),
        // From 2026-07-28 on the standard headers are required, and Mcp-Name may be Base64.
        ("no-mcp-method", "list_projects", &[v26], 400, -32020),
        (
            "base64-name",
            "list_projects",
            &[v26, call, ("mcp-name", "=?base64?bGlzdF9wcm9qZWN0cw==?=")],
            200,
            0,
        ),
    ];
    for (case, tool, headers, status, code) in cases {
        let m = marker(case);
        let resp = post(s, &t, &tool_call(1, tool, &m).to_string(), headers)?;
        if status == 200 {
            ensure!(resp.status() == 200, "{case}: {}", resp.status());
            forwarded_once(s, &m)?;
            continue;
        }
        let (_, body) = denied(resp, status, s, &m)?;
        ensure!(body["error"]["code"] == code, "{case}: {body}");
        if case == "bad-version" {
            let data = &body["error"]["data"];
            ensure!(
                data["requested"] == "1999-01-01"
                    && data["supported"]
                        .as_array()
                        .is_some_and(|v| v.contains(&json!("2026-07-28"))),
                "{case}: {body}"
            );
        }
    }
    Ok(())
}

fn origin_allow_list(s: &Stack) -> Result<()> {
    let t = s.token_with("tenant-origin", "mcp:read", None)?;
    let m = marker("evil-origin");
    denied(
        post(
            s,
            &t,
            &tool_call(1, "list_projects", &m).to_string(),
            &[("origin", "https://evil.example")],
        )?,
        403,
        s,
        &m,
    )?;
    let m = marker("good-origin");
    let resp = post(
        s,
        &t,
        &tool_call(1, "list_projects", &m).to_string(),
        &[("origin", "http://localhost:6274")],
    )?;
    ensure!(resp.status() == 200, "allowed origin: {}", resp.status());
    forwarded_once(s, &m)?;
    // The resource's own origin (what MCP's DNS-rebinding conformance check sends) is allowed
    // without being listed; the same host on another port is another origin.
    let own = s.mcp_url.trim_end_matches("/mcp");
    let m = marker("own-origin");
    let resp = post(
        s,
        &t,
        &tool_call(1, "list_projects", &m).to_string(),
        &[("origin", own)],
    )?;
    ensure!(
        resp.status() == 200,
        "the resource's own origin {own}: {}",
        resp.status()
    );
    forwarded_once(s, &m)?;
    let m = marker("other-port-origin");
    denied(
        post(
            s,
            &t,
            &tool_call(1, "list_projects", &m).to_string(),
            &[("origin", "http://127.0.0.1:1")],
        )?,
        403,
        s,
        &m,
    )?;
    // A browser's preflight from the allowed origin, and a refusal it can read.
    let pre = http()
        .request(reqwest::Method::OPTIONS, &s.recorded_mcp_url)
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()?;
    let h = |r: &Response, n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    ensure!(pre.status() == 204, "preflight: {}", pre.status());
    ensure!(
        h(&pre, "access-control-allow-origin") == "http://localhost:6274",
        "preflight ACAO"
    );
    ensure!(
        h(&pre, "access-control-allow-headers").contains("authorization"),
        "preflight ACAH"
    );
    let bad = http()
        .request(reqwest::Method::OPTIONS, &s.recorded_mcp_url)
        .header("origin", "https://evil.example")
        .send()?;
    // Refused as any other method but POST, GET and DELETE is, in the edge's JSON-RPC shape.
    ensure!(
        bad.status() == 405,
        "a foreign origin's preflight: {}",
        bad.status()
    );
    ensure!(
        h(&bad, "access-control-allow-origin").is_empty(),
        "a foreign origin got CORS headers"
    );
    let refusal: Value = bad.json()?;
    ensure!(
        refusal["error"]["code"].is_i64() && refusal["id"].is_null(),
        "a foreign origin's preflight: {refusal}"
    );
    let m = marker("cors-401");
    let unauth = http()
        .post(&s.recorded_mcp_url)
        .header("origin", "http://localhost:6274")
        .header("content-type", "application/json")
        .body(tool_call(1, "list_projects", &m).to_string())
        .send()?;
    ensure!(unauth.status() == 401, "no token: {}", unauth.status());
    ensure!(
        h(&unauth, "access-control-expose-headers").contains("www-authenticate"),
        "WWW-Authenticate not exposed"
    );
    let ok = post(
        s,
        &t,
        &tool_call(1, "list_projects", &marker("cors-ok")).to_string(),
        &[("origin", "http://localhost:6274")],
    )?;
    ensure!(
        h(&ok, "access-control-allow-origin") == "http://localhost:6274",
        "forwarded answer lacks ACAO"
    );
    Ok(())
}

fn other_methods_follow_the_policy(s: &Stack) -> Result<()> {
    let none = s.token_with("tenant-methods", "", None)?;
    for (method, expected) in [
        ("ping", 200),
        ("tools/list", 200),
        ("initialize", 200),
        ("resources/list", 403),
        ("prompts/list", 403),
        ("admin/shutdown", 403),
    ] {
        let m = marker(&format!("method-{}", method.replace('/', "_")));
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": {"marker": m}}}).to_string();
        let resp = post(s, &none, &body, &[])?;
        if expected == 200 {
            ensure!(resp.status() == 200, "{method}: {}", resp.status());
            forwarded_once(s, &m)?;
        } else {
            let (challenge, _) = denied(resp, expected, s, &m)?;
            if method.starts_with("resources/") || method.starts_with("prompts/") {
                ensure!(
                    challenge.contains("scope=\"mcp:read\""),
                    "{method}: {challenge}"
                );
            }
        }
    }
    // GET and DELETE need a token too.
    let resp = http().get(&s.recorded_mcp_url).send()?;
    ensure!(
        resp.status() == 401,
        "GET without a token: {}",
        resp.status()
    );
    let resp = http().delete(&s.recorded_mcp_url).send()?;
    ensure!(
        resp.status() == 401,
        "DELETE without a token: {}",
        resp.status()
    );
    Ok(())
}

fn tools_list_is_filtered_for_the_sdk_client(s: &Stack) -> Result<()> {
    let listed = sdk_client(
        &s.mcp_url,
        &s.token_with(
            "tenant-list",
            "mcp:read mcp:write",
            Some(&["get_project", "list_projects"]),
        )?,
        json!([]),
    )?;
    let listed = tool_names(&listed)?;
    ensure!(
        listed == ["get_project", "list_projects"],
        "allowed_tools: {listed:?}"
    );
    let read_only = sdk_client(
        &s.mcp_url,
        &s.token_with("tenant-list", "mcp:read", None)?,
        json!([]),
    )?;
    let ro = tool_names(&read_only)?;
    ensure!(
        ro == [
            "get_analytics",
            "get_project",
            "get_usage",
            "list_projects",
            "list_tasks",
        ],
        "mcp:read: {ro:?}"
    );
    let admin = sdk_client(
        &s.mcp_url,
        &s.token_with("tenant-list", "mcp:read mcp:write mcp:admin", None)?,
        json!([]),
    )?;
    let all = tool_names(&admin)?;
    ensure!(
        all == [
            "archive_project",
            "assign_task",
            "create_project",
            "create_task",
            "delete_project",
            "get_analytics",
            "get_project",
            "get_usage",
            "list_projects",
            "list_tasks",
            "update_task",
        ],
        "admin: {all:?}"
    );
    Ok(())
}

/// A server that answers a `ping` with a tool list (as JSON, or on an event stream): the client
/// sees only the tools its token may call, and the stream's event ids bound to it.
fn a_list_on_any_answer_is_filtered(s: &Stack) -> Result<()> {
    use mcp_edge_tests::recorder::{ANSWER_WITH_TOOLS, ANSWER_WITH_TOOLS_SSE};
    use mcp_edge_tests::streamable::{event_ids, listed_tools};
    let t = s.token_with("tenant-any", "mcp:read mcp:write", Some(&["list_projects"]))?;
    for marker in [ANSWER_WITH_TOOLS, ANSWER_WITH_TOOLS_SSE] {
        let ping = json!({"jsonrpc": "2.0", "id": "p", "method": "ping",
            "params": {"_meta": {"marker": marker}}});
        let resp = post(s, &t, &ping.to_string(), &[])?;
        ensure!(resp.status() == 200, "{marker}: {}", resp.status());
        let answer = resp.text()?;
        let listed = listed_tools(&answer);
        ensure!(
            listed == ["list_projects"],
            "{marker}: {listed:?} in {answer}"
        );
        if marker == ANSWER_WITH_TOOLS_SSE {
            let ids = event_ids(&answer);
            ensure!(
                ids.len() == 2 && ids.iter().all(|id| id.starts_with("up-") && id.len() == 27),
                "{marker}: ids {ids:?}"
            );
        }
    }
    Ok(())
}

/// A `tools/list` answered as JSON whose end comes with trailers (no body chunk ends the stream):
/// the list is judged at the trailers, filtered like any other.
fn a_list_followed_by_trailers_is_filtered(s: &Stack) -> Result<()> {
    use mcp_edge_tests::recorder::ANSWER_WITH_TOOLS_AND_TRAILERS;
    use mcp_edge_tests::streamable::listed_tools;
    let t = s.token_with(
        "tenant-trailers",
        "mcp:read mcp:write",
        Some(&["list_projects"]),
    )?;
    let list = json!({"jsonrpc": "2.0", "id": "t", "method": "tools/list",
        "params": {"_meta": {"marker": ANSWER_WITH_TOOLS_AND_TRAILERS}}});
    let te = [("te", "trailers")];
    let (status, answer, trailers) = h2_exchange(s, &t, &te, list.to_string(), None)?;
    ensure!(status == 200, "tools/list: {status} {answer}");
    ensure!(
        trailers.is_some_and(|t| t.contains_key("x-checksum")),
        "the answer came without the upstream's trailers: {answer}"
    );
    let listed = listed_tools(&answer);
    ensure!(listed == ["list_projects"], "{listed:?} in {answer}");
    Ok(())
}

/// A JSON answer larger than Envoy's buffer limit (`per_connection_buffer_limit_bytes`) cannot be
/// held to be judged whole: Envoy refuses it (500) rather than pass it on unjudged.
fn a_json_answer_over_the_buffer_limit_is_refused(s: &Stack) -> Result<()> {
    use mcp_edge_tests::recorder::{ANSWER_LARGE, LARGE_ANSWER_BYTES};
    let t = s.token_with("tenant-large", "mcp:read mcp:write", None)?;
    let ping = json!({"jsonrpc": "2.0", "id": "big", "method": "ping",
        "params": {"_meta": {"marker": ANSWER_LARGE}}});
    let resp = post(s, &t, &ping.to_string(), &[])?;
    let status = resp.status();
    let body = resp.text()?;
    ensure!(
        status == 500 && body.len() < LARGE_ANSWER_BYTES,
        "{status}, {} bytes",
        body.len()
    );
    Ok(())
}

fn outcomes_are_counted_and_logged(s: &Stack) -> Result<()> {
    // This case runs alone: the outcome counters move for these two requests only.
    let t = s.token_with("tenant-logged", "mcp:read", Some(&["list_projects"]))?;
    let before = s.stats("mcp_edge.outcome")?;
    let m = marker("logged");
    denied(
        post(s, &t, &tool_call(1, "create_project", &m).to_string(), &[])?,
        403,
        s,
        &m,
    )?;
    let m = marker("logged-allowed");
    ensure!(
        post(s, &t, &tool_call(2, "list_projects", &m).to_string(), &[])?.status() == 200,
        "allowed call refused"
    );
    forwarded_once(s, &m)?;
    let after = s.stats("mcp_edge.outcome")?;
    for (outcome, expected) in [("denied.tool_not_allowed", 1), ("allowed", 1)] {
        let counted = after.filter_since(&before, &format!("outcome.{outcome}"));
        ensure!(
            counted == expected,
            "outcome.{outcome} grew by {counted}, expected {expected}"
        );
    }
    // Envoy writes the access log line at the end of the stream; give it a moment.
    for _ in 0..50 {
        let log = s.log_tail("envoy", usize::MAX);
        if log.lines().any(|l| {
            l.contains("\"tenant\":\"tenant-logged\"")
                && l.contains("\"tool\":\"create_project\"")
                && l.contains("denied.tool_not_allowed")
        }) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("no access log line with tenant, tool and outcome")
}

/// Counts reach Envoy once per flush period of the worker that made them, not per request: on
/// one connection (one worker), after a first count is seen (a tick just happened), three more
/// requests are not visible at once; they arrive together at a later tick, and nothing more after.
/// A filter that hands each count over at once fails the second look.
fn counts_reach_envoy_batched_per_worker(s: &Stack) -> Result<()> {
    const FLUSH: Duration = Duration::from_millis(4_000);
    let envoy = s.start_envoy(
        "envoy-batched",
        &json!({"stats_flush_ms": FLUSH.as_millis() as u64}),
    )?;
    let t = s.token_with("tenant-batched", "mcp:read", Some(&["list_projects"]))?;
    // One client, one connection: every request is counted by the same worker.
    let client = http();
    let send = |id: u64, tool: &str| -> Result<u16> {
        let m = marker(&format!("batched-{id}"));
        Ok(client
            .post(&envoy.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(&t)
            .body(tool_call(id, tool, &m).to_string())
            .send()
            .and_then(|resp| {
                let status = resp.status().as_u16();
                // Read to the end, so the next request reuses this connection (this worker).
                resp.bytes().map(|_| status)
            })?)
    };
    let before = read_stats(&envoy.admin_url, "mcp_edge.outcome")?;
    let counted = || -> Result<[u64; 2]> {
        let now = read_stats(&envoy.admin_url, "mcp_edge.outcome")?;
        Ok(["allowed", "denied.tool_not_allowed"]
            .map(|o| now.filter_since(&before, &format!("outcome.{o}"))))
    };
    let wait_for = |want: [u64; 2]| -> Result<()> {
        let since = Instant::now();
        loop {
            let now = counted()?;
            if now == want {
                return Ok(());
            }
            ensure!(
                now.iter().zip(want).all(|(c, w)| *c <= w),
                "counted {now:?}, more than the {want:?} requests sent"
            );
            ensure!(
                since.elapsed() < FLUSH + Duration::from_secs(3),
                "after {:?} Envoy has {now:?} of {want:?} (flush every {FLUSH:?})",
                since.elapsed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    ensure!(send(1, "list_projects")? == 200, "first allowed call");
    wait_for([1, 0])?;
    // A tick has just handed the first count over; the next is a flush period away.
    let ticked = Instant::now();
    ensure!(send(2, "list_projects")? == 200, "second allowed call");
    ensure!(send(3, "list_projects")? == 200, "third allowed call");
    ensure!(send(9, "create_project")? == 403, "refused call");
    let at_once = counted()?;
    ensure!(
        ticked.elapsed() < FLUSH / 2,
        "the machine took {:?} for three requests: cannot tell batching apart",
        ticked.elapsed()
    );
    ensure!(
        at_once == [1, 0],
        "counted {at_once:?} right after the requests, before the next tick: not batched"
    );
    wait_for([3, 1])?;
    // The next tick hands over nothing more.
    std::thread::sleep(FLUSH + Duration::from_millis(500));
    let later = counted()?;
    ensure!(
        later == [3, 1],
        "counted {later:?} after another tick, expected [3, 1]"
    );
    Ok(())
}

/// An Envoy a case starts on its own thread outlives that thread (Envoy's hot restart, off in the
/// harness, would end it with the thread: `PR_SET_PDEATHSIG`), until the case's guard stops it.
fn extra_envoy_outlives_the_thread_that_started_it(s: &Stack) -> Result<()> {
    let envoy = std::thread::scope(|scope| {
        scope
            .spawn(|| s.start_envoy("envoy-orphaned", &json!({})))
            .join()
            .map_err(|_| anyhow::anyhow!("the starting thread panicked"))?
    })?;
    // The thread is gone; Envoy must still answer for a while (PDEATHSIG acts within ms).
    let client = http();
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(2) {
        let status = client
            .get(format!("{}/ready", envoy.admin_url))
            .send()?
            .status();
        ensure!(status == 200, "admin /ready answered {status}");
        s.check_alive()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    let admin = envoy.admin_url.clone();
    drop(envoy);
    ensure!(
        client.get(format!("{admin}/ready")).send().is_err(),
        "the guard did not stop the Envoy it started"
    );
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    counts_reach_envoy_batched_per_worker,
    extra_envoy_outlives_the_thread_that_started_it,
    tool_outside_allowed_tools_is_refused,
    step_up_challenge_then_success,
    batch_smuggling_is_refused_with_an_error_per_id,
    batch_of_allowed_calls_is_served_by_the_backend,
    duplicate_and_escaped_keys_cannot_smuggle,
    long_request_ids_are_refused,
    gzip_body_and_wrong_media_type_are_refused,
    body_cap_is_exact,
    body_in_many_small_chunks_is_judged_whole,
    http2_with_trailers_is_judged,
    path_variants_never_bypass_the_policy,
    routing_headers_must_agree_with_the_body,
    origin_allow_list,
    other_methods_follow_the_policy,
    tools_list_is_filtered_for_the_sdk_client,
    a_list_on_any_answer_is_filtered,
    a_list_followed_by_trailers_is_filtered,
    a_json_answer_over_the_buffer_limit_is_refused;
    alone: outcomes_are_counted_and_logged,
];

fn main() {
    mcp_edge_tests::runner::run(CASES);
}
