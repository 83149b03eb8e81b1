//! The test cases a third-party MCP server behind the edge must pass, whatever its SDK (each
//! server's test binary lists them beside its own). The servers (tests/node, tests/python) share a
//! tool set: `echo` and `shout` (with a `text` argument), `purge`, and `hidden`, unknown to the
//! edge; their `tool_scopes` give `echo` `mcp:read`, `shout` `mcp:write`, `purge` `mcp:admin`.
//!
//! - Any server: per-tool authorization with rmcp's client, no way around the edge.
//! - A stateless server: GET is answered at the edge.
//! - A stateful one (`stateful_upstream: true`, and an `announce` tool needing `mcp:read` that
//!   is answered after it sends `notifications/tools/list_changed` on the session's GET stream):
//!   sessions bound to the token's tenant and user, SSE events on the GET stream delivered while
//!   it is open, DELETE; with an event store (both servers keep one for every session), a stream
//!   resumed with `Last-Event-ID` replays only filtered lists, and only to the user it was sent to.

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use crate::client::{header, http, marker};
use crate::rmcp_client::{auto_client, call, ensure_negotiated, runtime};
use crate::stack::Stack;
use crate::streamable::{
    VERSION, chunks_of, error_code, event_ids, get, initialize, listed_tools, open_get_stream,
    post, read_until, wait_for_text,
};

/// The tenant of these cases' tokens.
const TENANT: &str = "tenant-upstream";

/// rmcp 3.11's client (`server/discover` at 2026-07-28, falling back to `initialize` at
/// 2025-11-25) settles on `version` through the edge, gets `echo` answered and each refusal from
/// the edge, for its own reason: `shout` is not in `allowed_tools`, `hidden` is unknown, `purge`
/// lacks `mcp:admin`.
pub fn ensure_authorized_per_tool(s: &Stack, version: &str) -> Result<()> {
    let t = s.token_with(TENANT, "mcp:read mcp:write", Some(&["echo", "purge"]))?;
    runtime()?.block_on(async {
        let client = auto_client(s, &t).await?;
        ensure_negotiated(&client, version)?;
        let echoed = client
            .call_tool(call("echo", json!({"text": "hi"})))
            .await?;
        let text = serde_json::to_string(&echoed.content)?;
        ensure!(text.contains("hi"), "echo: {text}");
        for (tool, expected) in [
            ("shout", "allowed_tools"),
            ("hidden", "no policy for the tool"),
            ("purge", "insufficient_scope"),
        ] {
            let e = client
                .call_tool(call(tool, json!({"text": "x"})))
                .await
                .err()
                .with_context(|| format!("{tool} was served"))?;
            let shown = format!("{e:?}");
            ensure!(shown.contains(expected), "{tool}: {shown}");
        }
        client.cancel().await?;
        Ok(())
    })
}

/// A stateless server has no GET stream: the edge answers GET itself (405, `Allow: POST`, the
/// edge's -32046 in a JSON-RPC body), and nothing reaches an upstream (the same filter in front
/// of the recording upstream sees no request with the GET's marker).
pub fn get_stream_is_answered_at_the_edge(s: &Stack) -> Result<()> {
    let t = s.token_with(TENANT, "mcp:read", None)?;
    for url in [&s.mcp_url, &s.recorded_mcp_url] {
        let m = marker("stateless-get");
        let resp = http()
            .get(format!("{url}?marker={m}"))
            .bearer_auth(&t)
            .header("accept", "text/event-stream")
            .send()?;
        ensure!(resp.status() == 405, "GET {url}: {}", resp.status());
        let allow = header(&resp, "allow");
        ensure!(allow == "POST", "GET {url}: Allow {allow:?}");
        let body: Value = resp.json()?;
        ensure!(
            body["error"]["code"] == mcp_edge_contract::codes::NOT_SERVED,
            "GET {url}: {body}"
        );
        ensure!(
            s.recorder.with_marker(&m).is_empty(),
            "GET {url} reached the recording upstream"
        );
    }
    Ok(())
}

/// A tool call in a session (`announce`, which the server answers after sending
/// `notifications/tools/list_changed` on the session's GET stream) is answered, and the
/// notification arrives on the GET stream opened before, while that stream is still open: the
/// edge does not hold SSE events back.
pub fn get_stream_delivers_events_before_it_ends(s: &Stack) -> Result<()> {
    let (url, token) = (&s.mcp_url, &s.token_with(TENANT, "mcp:read", None)?);
    let (sid, _) = initialize(url, token)?;
    let sid = &sid;
    let events = chunks_of(open_get_stream(url, token, sid)?);
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "announce", "arguments": {}}});
    let resp = post(url, token, Some(sid), &call)?;
    ensure!(resp.status() == 200, "announce: {}", resp.status());
    let answer = resp.text()?;
    ensure!(answer.contains("announced"), "announce: {answer}");
    wait_for_text(&events, "notifications/tools/list_changed")
}

/// DELETE ends a session: answered 200, then a request in it gets 404.
pub fn delete_ends_the_session(s: &Stack) -> Result<()> {
    let (url, token) = (&s.mcp_url, &s.token_with(TENANT, "mcp:read", None)?);
    let (sid, _) = initialize(url, token)?;
    let sid = &sid;
    let resp = http()
        .delete(url)
        .bearer_auth(token)
        .header("mcp-protocol-version", VERSION)
        .header("mcp-session-id", sid)
        .send()?;
    ensure!(resp.status() == 200, "DELETE: {}", resp.status());
    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"});
    let resp = post(url, token, Some(sid), &list)?;
    ensure!(resp.status() == 404, "after DELETE: {}", resp.status());
    Ok(())
}

/// A session id the edge handed out for a token is accepted with that token, and refused (404,
/// -32057) with another tenant's token, bare (the upstream's own id) and tampered.
pub fn session_ids_are_bound_to_tenant_and_user(s: &Stack) -> Result<()> {
    let (url, token) = (&s.mcp_url, &s.token_with(TENANT, "mcp:read", None)?);
    let other_tenant = &s.token_with("tenant-other", "mcp:read", None)?;
    let (sid, _) = initialize(url, token)?;
    let sid = sid.as_str();
    let (upstream, tag) = sid.rsplit_once('.').context("not in the bound form")?;
    ensure!(tag.len() == 22, "128-bit mac in base64url: {sid}");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let resp = post(url, token, Some(sid), &list)?;
    ensure!(resp.status() == 200, "own session: {}", resp.status());
    let tampered = format!("{upstream}x.{tag}");
    for (token, sid, what) in [
        (other_tenant, sid, "another tenant's token"),
        (token, upstream, "the bare upstream id"),
        (token, tampered.as_str(), "a tampered id"),
    ] {
        let resp = post(url, token, Some(sid), &list)?;
        ensure!(resp.status() == 404, "{what}: {}", resp.status());
        let code = error_code(resp)?;
        ensure!(code == -32057, "{what}: {code}");
    }
    Ok(())
}

/// Requests sent straight to the server (`Stack::backend_addr`) are refused (401, -32040): one
/// with a valid token but no assertion, one with an assertion for another tenant signed with a
/// made-up secret, and one with contract v2's headers. Not only for stateful servers: any server
/// that verifies the assertion.
pub fn requests_that_bypass_the_edge_are_refused(s: &Stack) -> Result<()> {
    let token = &s.token_with(TENANT, "mcp:read", None)?;
    let direct = format!("http://{}/mcp", s.backend_addr);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let resp = post(&direct, token, None, &init)?;
    ensure!(resp.status() == 401, "token only: {}", resp.status());
    let code = error_code(resp)?;
    ensure!(code == -32040, "token only: {code}");
    let body = init.to_string();
    let forged = forged_assertion("victim", VERSION, body.as_bytes())?;
    let v2 = [
        ("x-mcp-tenant-id", "victim"),
        ("x-mcp-user-id", "admin"),
        ("x-mcp-scopes", "mcp:read mcp:write mcp:admin"),
        ("x-mcp-tier", "enterprise"),
        ("x-mcp-request-id", "forged-1"),
        (
            "x-mcp-gateway-signature",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
    ];
    for (what, headers) in [
        (
            "forged assertion",
            vec![("x-mcp-identity", forged.as_str())],
        ),
        ("contract v2 headers", v2.to_vec()),
    ] {
        let mut req = http()
            .post(&direct)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", VERSION);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp = req.body(body.clone()).send()?;
        ensure!(resp.status() == 401, "{what}: {}", resp.status());
        let code = error_code(resp)?;
        ensure!(code == -32040, "{what}: {code}");
    }
    Ok(())
}

/// An assertion for `tenant` with every scope, made as the edge makes one but with a secret that
/// is not the stack's.
fn forged_assertion(tenant: &str, version: &str, body: &[u8]) -> Result<String> {
    use mcp_edge_contract::assertion::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};
    use mcp_edge_contract::{AssertionSigner, Binding, GatewayKey, Identity, IdentityClaims, Tier};
    let identity = Identity {
        tenant_id: tenant.into(),
        user_id: "admin".into(),
        scopes: ["mcp:read", "mcp:write", "mcp:admin"]
            .map(String::from)
            .to_vec(),
        data_scope: String::new(),
        tier: Tier::Enterprise,
    };
    let key = GatewayKey::new(b"not-the-gateway-secret-not-the-gateway-secret")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let digest = mcp_edge_contract::body_digest(body);
    AssertionSigner::new(&key, DEFAULT_ISSUER, DEFAULT_AUDIENCE)
        .sign(
            &IdentityClaims::new(&identity).map_err(|e| anyhow::anyhow!("{e}"))?,
            &Binding {
                method: "POST",
                path: "/mcp",
                protocol_version: version,
                request_id: "forged-1",
                issued_at: crate::client::now(),
                body_digest: &digest,
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// A session of `token` whose `tools/list` was answered as an event stream: the session id, the
/// id of the stream's first event (the priming event, after which a resumption replays the
/// answer), and the tools listed. Fails if the answer has no event id (no event store).
fn listed_in_a_stream(s: &Stack, token: &str) -> Result<(String, String, Vec<String>)> {
    let (sid, _) = initialize(&s.mcp_url, token)?;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let resp = post(&s.mcp_url, token, Some(&sid), &list)?;
    ensure!(resp.status() == 200, "tools/list: {}", resp.status());
    let answer = resp.text()?;
    let first = event_ids(&answer)
        .into_iter()
        .next()
        .with_context(|| format!("no event id (no event store?): {answer}"))?;
    Ok((sid, first, listed_tools(&answer)))
}

/// A token of [`TENANT`] that may list and call `echo` only.
fn echo_only(s: &Stack) -> Result<String> {
    s.token_with(TENANT, "mcp:read mcp:write mcp:admin", Some(&["echo"]))
}

/// A stream resumed with `Last-Event-ID` (`GET`) replays the `tools/list` answer: the client sees
/// it filtered as on the POST that asked.
pub fn a_resumed_stream_replays_a_filtered_list(s: &Stack) -> Result<()> {
    let token = echo_only(s)?;
    let (sid, first, listed) = listed_in_a_stream(s, &token)?;
    ensure!(listed == ["echo"], "the POST's list: {listed:?}");
    let resumed = get(&s.mcp_url, &token, &sid, Some(&first))?;
    ensure!(resumed.status() == 200, "resumption: {}", resumed.status());
    let replayed = read_until(&chunks_of(resumed), "\"result\"")?;
    let listed = listed_tools(&replayed);
    ensure!(listed == ["echo"], "the replayed list: {listed:?}");
    Ok(())
}

/// Event ids are bound to the user they were sent to: another user of the same tenant, in a
/// session of their own, cannot resume the stream (400), nor can anyone resume with the
/// upstream's bare id (the one the stream ids of every event show).
pub fn event_ids_are_bound_to_their_user(s: &Stack) -> Result<()> {
    let token = echo_only(s)?;
    let (sid, first, _) = listed_in_a_stream(s, &token)?;
    let mut spec = s.spec(TENANT);
    spec.sub = format!("another-user-of-{TENANT}");
    spec.scope = "mcp:read mcp:write mcp:admin".into();
    let other = s.sign("RS256", xtask::claims_for(&spec))?;
    let (other_sid, _) = initialize(&s.mcp_url, &other)?;
    let resp = get(&s.mcp_url, &other, &other_sid, Some(&first))?;
    let status = resp.status();
    if status != 400 {
        let replayed = read_until(&chunks_of(resp), "\"result\"").unwrap_or_else(|e| e.to_string());
        anyhow::bail!(
            "another user resuming {first}: {status}, replayed the tools {:?}",
            listed_tools(&replayed)
        );
    }
    let (bare, _) = first
        .rsplit_once('.')
        .with_context(|| format!("the event id {first} is not bound"))?;
    let resp = get(&s.mcp_url, &token, &sid, Some(bare))?;
    ensure!(
        resp.status() == 400,
        "the bare id {bare}: {}",
        resp.status()
    );
    let code = error_code(resp)?;
    ensure!(code == -32600, "the bare id: {code}");
    Ok(())
}
