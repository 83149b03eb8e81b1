//! MCP protocol versions through real Envoy and the real .wasm, driven by rmcp 3.11's client (the
//! backend's SDK version): a 2026-07-28 client that opens with `server/discover` and a 2025-11-25
//! client that opens with `initialize`, both with the edge's shipped default configuration.
//!
//! Each pins its version explicitly (`ClientLifecycleMode::Discover` with one preferred version;
//! `ClientConfig::with_protocol_version` for `initialize`) and lists tools (filtered by the token's
//! `allowed_tools`), calls tools, sends `logging/setLevel` and `completion/complete` (and at
//! 2026-07-28 `subscriptions/listen`), and is refused a tool outside `allowed_tools`.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result, bail, ensure};
use mcp_edge_tests::client::{http, marker};
use mcp_edge_tests::rmcp_client::{
    Client, call, discover_client, ensure_negotiated, initialize_client, runtime,
};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::Stack;
use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, ProtocolVersion, Reference, SubscriptionFilter,
};
#[allow(deprecated)] // logging is deprecated by SEP-2577, still part of 2025-03-26..2025-11-25
use rmcp::model::{LoggingLevel, SetLevelRequestParams};
use rmcp::service::ServiceError;
use serde_json::json;

/// The tools a token may call: `allowed_tools` narrowed further by its scopes (no `mcp:admin`).
const ALLOWED: [&str; 3] = ["create_project", "delete_project", "list_projects"];
const SCOPES: &str = "mcp:read mcp:write";

/// A `completion/complete` request (the backend has no prompts: it answers "Method not found").
fn completion() -> CompleteRequestParams {
    CompleteRequestParams::new(
        Reference::for_prompt("summary"),
        ArgumentInfo::new("project", "a"),
    )
}

/// A JSON-RPC error the server (not the edge) answered: its code.
fn server_error_code(e: &ServiceError) -> Option<i32> {
    match e {
        ServiceError::McpError(data) => Some(data.code.0),
        _ => None,
    }
}

/// What every version must do: tools filtered, calls served, a refused tool refused, the
/// optional methods forwarded to the backend (which answers them itself).
async fn exercise(client: &Client, tenant: &str) -> Result<()> {
    let listed: BTreeSet<String> = client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let expected: BTreeSet<String> = ["create_project", "list_projects"].map(String::from).into();
    ensure!(listed == expected, "tools/list for {tenant}: {listed:?}");

    let name = format!("{tenant}-project");
    let created = client
        .call_tool(call("create_project", json!({"name": name})))
        .await?;
    ensure!(
        created.is_error != Some(true),
        "create_project: {created:?}"
    );
    let projects = client.call_tool(call("list_projects", json!({}))).await?;
    let text = serde_json::to_string(&projects.structured_content)?;
    ensure!(text.contains(&name), "list_projects misses {name}: {text}");

    // delete_project is in allowed_tools but needs mcp:admin: a step-up refusal at the edge.
    let e = client
        .call_tool(call(
            "delete_project",
            json!({"id": "p", "confirm_name": name}),
        ))
        .await
        .err()
        .context("delete_project without mcp:admin was served")?;
    let shown = format!("{e:?}");
    ensure!(
        shown.contains("mcp:admin") || shown.contains("insufficient_scope"),
        "delete_project: {shown}"
    );
    // get_project is outside allowed_tools: refused at the edge with its own code and message.
    let e = client
        .call_tool(call("get_project", json!({"id": "p"})))
        .await
        .err()
        .context("a tool outside allowed_tools was served")?;
    // rmcp keeps a 403 without a challenge as a transport error carrying the status and the
    // edge's JSON-RPC body (it does not turn it into an McpError).
    let shown = format!("{e:?}");
    ensure!(
        shown.contains("HTTP 403")
            && shown.contains(&mcp_edge_contract::codes::FORBIDDEN.to_string())
            && shown.contains("get_project")
            && shown.contains("allowed_tools"),
        "get_project: {shown}"
    );

    // Served by default: the backend answers (it declares neither logging nor completions, so
    // rmcp says "Method not found"); before, the edge refused both with 403.
    #[allow(deprecated)] // logging is deprecated by SEP-2577, still part of these versions
    let level = client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Warning))
        .await;
    expect_backend_answer("logging/setLevel", level.map(|_| ()))?;
    let complete = client.complete(completion()).await;
    expect_backend_answer("completion/complete", complete.map(|_| ()))?;
    Ok(())
}

/// The request passed the edge and the backend answered it: a result, or rmcp's own
/// `Method not found` (-32601), never an edge refusal (-32041 / -32042) or a transport failure.
fn expect_backend_answer(method: &str, outcome: Result<(), ServiceError>) -> Result<()> {
    match outcome {
        Ok(()) => Ok(()),
        Err(e) if server_error_code(&e) == Some(-32601) => Ok(()),
        Err(e) => bail!("{method}: not answered by the backend: {e:?}"),
    }
}

/// A client pinned to `version` (2026-07-28: `server/discover`; older: `initialize`) exercised
/// for `tenant`; at 2026-07-28 it also opens `subscriptions/listen`.
fn client_at(s: &Stack, tenant: &str, version: ProtocolVersion) -> Result<()> {
    let t = s.token_with(tenant, SCOPES, Some(&ALLOWED))?;
    runtime()?.block_on(async {
        let stateless = !version.has_initialize();
        let client = if stateless {
            discover_client(s, &t).await?
        } else {
            initialize_client(s, &t, version.clone()).await?
        };
        ensure_negotiated(&client, version.as_str())?;
        exercise(&client, tenant).await?;
        if stateless {
            let listen = client
                .listen(SubscriptionFilter::builder().tools_list_changed().build())
                .await;
            expect_backend_answer("subscriptions/listen", listen.map(|_| ()))?;
        }
        client.cancel().await?;
        Ok(())
    })
}

fn discover_client_at_2026_07_28(s: &Stack) -> Result<()> {
    client_at(s, "tenant-v2026", ProtocolVersion::V_2026_07_28)
}

fn initialize_client_at_2025_11_25(s: &Stack) -> Result<()> {
    client_at(s, "tenant-v2025", ProtocolVersion::V_2025_11_25)
}

/// `completion/complete` needs `mcp:read`: without it the SDK gets the step-up challenge.
fn completion_needs_read_scope(s: &Stack) -> Result<()> {
    let t = s.token_with("tenant-noread", "mcp:write", Some(&ALLOWED))?;
    runtime()?.block_on(async {
        let client = discover_client(s, &t).await?;
        let e = client
            .complete(completion())
            .await
            .err()
            .context("completion/complete without mcp:read was served")?;
        let shown = format!("{e:?}");
        ensure!(
            shown.contains("insufficient_scope") && shown.contains("mcp:read"),
            "{shown}"
        );
        client.cancel().await?;
        Ok(())
    })
}

/// The upstream timeout Envoy gave a request (it tells the upstream in
/// `x-envoy-expected-rq-timeout-ms`; absent when there is none), seen at the recording upstream.
fn upstream_timeout_of(
    s: &Stack,
    token: &str,
    method: &str,
    params: serde_json::Value,
) -> Result<Option<String>> {
    let m = marker(&format!("timeout-{}", method.replace('/', "_")));
    let mut params = params;
    params["_meta"] = json!({"marker": m});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp = http()
        .post(&s.recorded_mcp_url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .body(body.to_string())
        .send()?;
    ensure!(resp.status() == 200, "{method}: {}", resp.status());
    let got = s.recorder.with_marker(&m);
    ensure!(
        got.len() == 1,
        "{method} reached the upstream {} times",
        got.len()
    );
    Ok(got[0]
        .header_values("x-envoy-expected-rq-timeout-ms")
        .into_iter()
        .next())
}

/// A `subscriptions/listen` stream stays open: envoy.yaml routes it (by `Mcp-Method`, which the
/// edge checks against the body) without the 60 s upstream timeout other requests have.
fn listen_streams_have_no_upstream_timeout(s: &Stack) -> Result<()> {
    let t = s.token_with("tenant-listen", SCOPES, None)?;
    let listen = upstream_timeout_of(
        s,
        &t,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    )?;
    ensure!(
        listen.is_none(),
        "subscriptions/listen has a timeout: {listen:?}"
    );
    let list = upstream_timeout_of(s, &t, "tools/list", json!({}))?;
    ensure!(list.as_deref() == Some("60000"), "tools/list: {list:?}");
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    listen_streams_have_no_upstream_timeout,
    discover_client_at_2026_07_28,
    initialize_client_at_2025_11_25,
    completion_needs_read_scope,
];

fn main() {
    mcp_edge_tests::runner::run(CASES);
}
