//! Helpers shared by the integration tests: the real router over a memory store, and requests
//! carrying an identity assertion made exactly as the mcp-edge filter makes it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use mcp_edge_backend::app::{AppConfig, DEFAULT_ALLOWED_HOSTS, router};
use mcp_edge_backend::gateway_auth::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, Trust};
use mcp_edge_backend::metering::Metering;
use mcp_edge_backend::sources::ToolRegistry;
use mcp_edge_backend::store::{MemoryStore, ProjectStore};
use mcp_edge_contract::{
    self as contract, AssertionSigner, Binding, GatewayKey, Identity, IdentityClaims, Tier, headers,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const SECRET: &[u8] = b"integration-secret-integration-secret";

pub fn app() -> Router {
    app_with_metering(Metering::in_memory())
}

/// The real router over a memory store, metering with `metering`.
pub fn app_with_metering(metering: Metering) -> Router {
    app_with_store(Arc::new(MemoryStore::new()), metering)
}

/// The real router over `store`, metering with `metering`.
pub fn app_with_store(store: Arc<dyn ProjectStore>, metering: Metering) -> Router {
    router(AppConfig {
        trust: Trust::new(SECRET, DEFAULT_ISSUER, DEFAULT_AUDIENCE).expect("secret"),
        tools: Arc::new(ToolRegistry::demo(store, metering.clone())),
        metering,
        allowed_hosts: DEFAULT_ALLOWED_HOSTS.map(String::from).to_vec(),
        batch_limits: Default::default(),
    })
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A POST /mcp as it leaves Envoy: signed trusted headers, MCP transport headers, a Host. The
/// token's data scope is `team:engineering`.
pub fn signed_post(tenant: &str, host: &str, body: &Value) -> Request<Body> {
    signed_post_scoped(tenant, "team:engineering", host, body)
}

/// [`signed_post`] for a token with the given data scope.
pub fn signed_post_scoped(
    tenant: &str,
    data_scope: &str,
    host: &str,
    body: &Value,
) -> Request<Body> {
    let caller = Caller {
        tenant,
        data_scope,
        ..Caller::default()
    };
    signed_post_as(&caller, host, body)
}

/// Who a signed request comes from, as the filter would vouch for it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub tenant: &'a str,
    pub user: &'a str,
    pub scopes: &'a str,
    pub data_scope: &'a str,
    pub tier: &'a str,
    pub request_id: &'a str,
}

impl Default for Caller<'_> {
    fn default() -> Self {
        Self {
            tenant: "acme",
            user: "alice",
            // Every scope the catalogue names: the backend checks each tool's scope itself.
            scopes: "mcp:read mcp:write mcp:admin",
            data_scope: "team:engineering",
            tier: "pro",
            // A fresh id per request, as the edge makes: the backend runs a call only once.
            request_id: Box::leak(
                format!("req-{}", uuid::Uuid::new_v4().simple()).into_boxed_str(),
            ),
        }
    }
}

/// The headers of a POST /mcp with `body` from `caller`, signed now: trusted headers and MCP
/// transport headers (no Host). `MCP-Protocol-Version: 2025-06-18`, none on `initialize`.
pub fn signed_headers(caller: &Caller<'_>, body: &str) -> Vec<(&'static str, String)> {
    // The initialize request itself carries no version header.
    let version = if body.contains("\"initialize\"") {
        ""
    } else {
        "2025-06-18"
    };
    signed_headers_at(caller, body, version)
}

/// [`signed_headers`] with `MCP-Protocol-Version: version` (none when empty), signed with it.
pub fn signed_headers_at(
    caller: &Caller<'_>,
    body: &str,
    version: &str,
) -> Vec<(&'static str, String)> {
    let identity = Identity {
        tenant_id: caller.tenant.to_owned(),
        user_id: caller.user.to_owned(),
        scopes: caller.scopes.split(' ').map(str::to_owned).collect(),
        data_scope: caller.data_scope.to_owned(),
        tier: Tier::parse(caller.tier).expect("a tier name"),
    };
    let digest = contract::body_digest(body.as_bytes());
    let binding = Binding {
        method: "POST",
        path: "/mcp",
        protocol_version: version,
        request_id: caller.request_id,
        issued_at: now(),
        body_digest: &digest,
    };
    let key = GatewayKey::new(SECRET).expect("secret");
    let assertion = AssertionSigner::new(&key, DEFAULT_ISSUER, DEFAULT_AUDIENCE)
        .sign(
            &IdentityClaims::new(&identity).expect("signable identity"),
            &binding,
        )
        .expect("signable request");
    let headers = vec![
        ("content-type", "application/json".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        (headers::IDENTITY, assertion),
    ];
    let mut headers = headers;
    if !version.is_empty() {
        headers.push(("mcp-protocol-version", version.to_owned()));
    }
    headers
}

/// A POST /mcp from `caller`, as it leaves Envoy.
pub fn signed_post_as(caller: &Caller<'_>, host: &str, body: &Value) -> Request<Body> {
    let body = body.to_string();
    let headers = signed_headers(caller, &body);
    post_with(host, headers, body)
}

/// A POST /mcp from `caller` speaking protocol `version` (no header when empty), to 127.0.0.1.
pub fn signed_post_at(caller: &Caller<'_>, version: &str, body: &Value) -> Request<Body> {
    let body = body.to_string();
    let headers = signed_headers_at(caller, &body, version);
    post_with("127.0.0.1:10000", headers, body)
}

fn post_with(host: &str, headers: Vec<(&'static str, String)>, body: String) -> Request<Body> {
    let mut builder = Request::builder()
        .method("POST")
        .uri("/mcp")
        .header("host", host);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::from(body)).expect("request")
}

/// A fresh JSON-RPC id: the backend runs a call (request id + JSON-RPC id) only once.
pub fn next_call_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(3);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A `tools/call` JSON-RPC request with a fresh id.
pub fn tool_call(name: &str, arguments: Value) -> Value {
    json!({"jsonrpc":"2.0","id":next_call_id(),"method":"tools/call","params":{"name":name,"arguments":arguments}})
}

/// [`call_tool`] as `caller`.
pub async fn call_tool_as(
    app: &Router,
    caller: &Caller<'_>,
    name: &str,
    arguments: Value,
) -> Value {
    let (status, text, _) = send(
        app,
        signed_post_as(caller, "127.0.0.1:10000", &tool_call(name, arguments)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).expect("json response")
}

pub async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String, Option<String>) {
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

pub async fn rpc(app: &Router, tenant: &str, body: Value) -> Value {
    rpc_scoped(app, tenant, "team:engineering", body).await
}

pub async fn rpc_scoped(app: &Router, tenant: &str, data_scope: &str, body: Value) -> Value {
    let (status, text, content_type) = send(
        app,
        signed_post_scoped(tenant, data_scope, "127.0.0.1:10000", &body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    serde_json::from_str(&text).expect("json response")
}

pub async fn call_tool(app: &Router, tenant: &str, name: &str, arguments: Value) -> Value {
    rpc(
        app,
        tenant,
        json!({"jsonrpc":"2.0","id":next_call_id(),"method":"tools/call","params":{"name":name,"arguments":arguments}}),
    )
    .await
}

/// [`call_tool`] for a token with the given data scope.
pub async fn call_tool_scoped(
    app: &Router,
    tenant: &str,
    data_scope: &str,
    name: &str,
    arguments: Value,
) -> Value {
    rpc_scoped(
        app,
        tenant,
        data_scope,
        json!({"jsonrpc":"2.0","id":next_call_id(),"method":"tools/call","params":{"name":name,"arguments":arguments}}),
    )
    .await
}

/// The `structuredContent` of a successful tool result, after checking that the text block carries
/// the same JSON.
pub fn ok(response: &Value) -> Value {
    let result = &response["result"];
    assert_eq!(result["isError"], false, "{response}");
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().expect("text"))
        .expect("json text");
    assert_eq!(text, result["structuredContent"], "{response}");
    result["structuredContent"].clone()
}

/// The message of an `isError: true` tool result.
pub fn tool_error(response: &Value) -> String {
    assert_eq!(response["result"]["isError"], true, "{response}");
    response["result"]["content"][0]["text"]
        .as_str()
        .expect("text")
        .to_owned()
}

/// The code of a JSON-RPC error response.
pub fn rpc_error_code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {response}"))
}
