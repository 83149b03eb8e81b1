//! End-to-end through the real router (gateway check + rmcp Streamable HTTP + tools + memory store),
//! driven with `tower::ServiceExt::oneshot` and requests signed as the filter signs them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use mcp_edge_backend::app::{AppConfig, DEFAULT_ALLOWED_HOSTS, mcp_service, router};
use mcp_edge_backend::gateway_auth::GatewayAuth;
use mcp_edge_backend::store::MemoryStore;
use mcp_edge_contract::{self as contract, SignedRequest, headers};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const SECRET: &[u8] = b"integration-secret-integration-secret";

fn app() -> Router {
    router(AppConfig {
        gateway_auth: GatewayAuth::new(SECRET).expect("secret"),
        store: Arc::new(MemoryStore::new()),
        allowed_hosts: DEFAULT_ALLOWED_HOSTS.map(String::from).to_vec(),
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A POST /mcp as it leaves Envoy: signed trusted headers, MCP transport headers, a Host.
fn signed_post(tenant: &str, host: &str, body: &Value) -> Request<Body> {
    let body = body.to_string();
    let digest = contract::body_digest(body.as_bytes());
    let time = now();
    let signed = SignedRequest {
        method: "POST",
        path: "/mcp",
        tenant_id: tenant,
        user_id: "alice",
        scopes: "mcp:read mcp:write",
        data_scope: "team:engineering",
        tier: "pro",
        request_id: "req-42",
        gateway_time: time,
        body_digest: &digest,
    };
    let signature = contract::sign(SECRET, &signed).expect("sign");
    let mut builder = Request::builder()
        .method("POST")
        .uri("/mcp")
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header(headers::TENANT_ID, tenant)
        .header(headers::USER_ID, "alice")
        .header(headers::SCOPES, "mcp:read mcp:write")
        .header(headers::DATA_SCOPE, "team:engineering")
        .header(headers::TIER, "pro")
        .header(headers::REQUEST_ID, "req-42")
        .header(headers::GATEWAY_TIME, time.to_string())
        .header(headers::GATEWAY_SIGNATURE, signature);
    if body.contains("\"initialize\"") {
        // The initialize request itself carries no version header.
    } else {
        builder = builder.header("mcp-protocol-version", "2025-06-18");
    }
    builder.body(Body::from(body)).expect("request")
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String, Option<String>) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        content_type,
    )
}

async fn rpc(app: &Router, tenant: &str, body: Value) -> Value {
    let (status, text, content_type) =
        send(app, signed_post(tenant, "127.0.0.1:10000", &body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    serde_json::from_str(&text).expect("json response")
}

async fn call_tool(app: &Router, tenant: &str, name: &str, arguments: Value) -> Value {
    rpc(
        app,
        tenant,
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":name,"arguments":arguments}}),
    )
    .await
}

#[tokio::test]
async fn initialize_list_and_call() {
    let app = app();

    let init = rpc(
        &app,
        "acme",
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},
            "clientInfo":{"name":"test","version":"1.0"}}}),
    )
    .await;
    assert_eq!(init["id"], 1);
    assert_eq!(
        init["result"]["serverInfo"]["name"], "mcp-edge-backend",
        "{init}"
    );
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );

    let (status, text, _) = send(
        &app,
        signed_post(
            "acme",
            "127.0.0.1:10000",
            &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");

    let list = rpc(
        &app,
        "acme",
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    )
    .await;
    let tools = list["result"]["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names.len(), 3, "{list}");
    for name in ["list_projects", "create_project", "get_project"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let list_tool = tools
        .iter()
        .find(|t| t["name"] == "list_projects")
        .expect("list_projects");
    assert_eq!(list_tool["annotations"]["readOnlyHint"], true);
    assert_eq!(list_tool["annotations"]["idempotentHint"], true);
    assert!(
        list_tool["inputSchema"]["properties"]["cursor"]["description"].is_string(),
        "{list_tool}"
    );
    let create_tool = tools
        .iter()
        .find(|t| t["name"] == "create_project")
        .expect("create_project");
    assert_eq!(create_tool["annotations"]["readOnlyHint"], false);
    assert_eq!(create_tool["annotations"]["destructiveHint"], false);

    // create → list → get
    let created = call_tool(
        &app,
        "acme",
        "create_project",
        json!({"name":"Apollo","description":"moon"}),
    )
    .await;
    let result = &created["result"];
    assert_eq!(result["isError"], false, "{created}");
    let project = &result["structuredContent"]["project"];
    let id = project["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("prj_"));
    assert_eq!(project["name"], "Apollo");
    assert_eq!(project["description"], "moon");
    assert_eq!(project["team"], "engineering");
    assert_eq!(project["createdBy"], "alice");
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().expect("text"))
        .expect("json text");
    assert_eq!(text, result["structuredContent"]);

    let listed = call_tool(&app, "acme", "list_projects", json!({})).await;
    let page = &listed["result"]["structuredContent"];
    assert_eq!(
        page["projects"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert!(page.get("nextCursor").is_none(), "{listed}");

    let got = call_tool(&app, "acme", "get_project", json!({"project_id": id})).await;
    assert_eq!(
        got["result"]["structuredContent"]["project"]["id"],
        id.as_str(),
        "{got}"
    );

    // another tenant sees none of it
    let other = call_tool(&app, "globex", "list_projects", json!({})).await;
    assert_eq!(
        other["result"]["structuredContent"]["projects"],
        json!([]),
        "{other}"
    );
    let other_get = call_tool(&app, "globex", "get_project", json!({"project_id": id})).await;
    assert_eq!(other_get["result"]["isError"], true, "{other_get}");
}

#[tokio::test]
async fn pagination_through_the_tool() {
    let app = app();
    for i in 0..5 {
        let r = call_tool(
            &app,
            "acme",
            "create_project",
            json!({"name": format!("p{i}")}),
        )
        .await;
        assert_eq!(r["result"]["isError"], false, "{r}");
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = json!({"limit": 2});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let r = call_tool(&app, "acme", "list_projects", args).await;
        let page = &r["result"]["structuredContent"];
        for p in page["projects"].as_array().expect("projects") {
            names.push(p["name"].as_str().expect("name").to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
}

#[tokio::test]
async fn errors_an_agent_can_act_on() {
    let app = app();

    let unknown = call_tool(
        &app,
        "acme",
        "get_project",
        json!({"project_id": "prj_nope"}),
    )
    .await;
    assert_eq!(unknown["result"]["isError"], true, "{unknown}");
    let message = unknown["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("list_projects"), "{message}");

    let bad_cursor = call_tool(&app, "acme", "list_projects", json!({"cursor": "garbage"})).await;
    assert_eq!(bad_cursor["error"]["code"], -32602, "{bad_cursor}");

    let bad_limit = call_tool(&app, "acme", "list_projects", json!({"limit": 0})).await;
    assert_eq!(bad_limit["error"]["code"], -32602, "{bad_limit}");

    // Tool input never names a tenant: unknown fields are refused (rmcp reports argument
    // deserialisation failures as a tool error result).
    let smuggled = call_tool(
        &app,
        "acme",
        "list_projects",
        json!({"tenant_id": "globex"}),
    )
    .await;
    assert_eq!(smuggled["result"]["isError"], true, "{smuggled}");
    let message = smuggled["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("tenant_id"), "{message}");

    let long_name = call_tool(
        &app,
        "acme",
        "create_project",
        json!({"name": "x".repeat(201)}),
    )
    .await;
    assert_eq!(long_name["result"]["isError"], true, "{long_name}");
}

#[tokio::test]
async fn unsigned_requests_never_reach_rmcp() {
    let app = app();
    let mut request = signed_post(
        "acme",
        "127.0.0.1:10000",
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    );
    request.headers_mut().remove(headers::GATEWAY_SIGNATURE);
    let (status, text, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["error"]["code"], -32040);
    assert!(body["id"].is_null());

    let (status, text, _) = send(
        &app,
        Request::get("/healthz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn hosts_outside_the_allowlist_are_refused() {
    let app = app();
    let body = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"});
    for host in ["127.0.0.1:10000", "localhost:8081", "localhost"] {
        let (status, text, _) = send(&app, signed_post("acme", host, &body)).await;
        assert_eq!(status, StatusCode::OK, "{host}: {text}");
    }
    let (status, _, _) = send(&app, signed_post("acme", "evil.example:80", &body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_tool_call_without_tenant_context_fails() {
    // The rmcp service alone, with no gateway layer in front: nothing puts a TenantContext in.
    let bare = Router::new().route_service(
        "/mcp",
        mcp_service(Arc::new(MemoryStore::new()), vec!["127.0.0.1".into()]),
    );
    let body = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_projects","arguments":{}}});
    let (status, text, _) = send(&bare, signed_post("acme", "127.0.0.1:10000", &body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let response: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(response["error"]["code"], -32603, "{response}");
}
