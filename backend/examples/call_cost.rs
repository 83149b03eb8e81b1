//! What one MCP call costs inside the backend, without HTTP or Envoy: the real router (trust layer,
//! TenantContext, batch splitter, rmcp, tools, metering in memory, memory store) driven with
//! `tower::ServiceExt::oneshot`, each request carrying an assertion made as the filter makes it.
//! A tenant holds 20 projects, as `scripts/bench.sh`'s seeded rows do.
//!
//!     cargo run --release -p mcp-edge-backend --example call_cost [-- <calls>]
//!
//! Prints µs per call (wall time on one thread) for `list_projects`, `create_task` and the
//! assertion check alone, so a profile (`perf record -g`) can be read against them.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use mcp_edge_backend::app::{AppConfig, DEFAULT_ALLOWED_HOSTS, router};
use mcp_edge_backend::gateway_auth::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, Trust};
use mcp_edge_backend::metering::Metering;
use mcp_edge_backend::sources::ToolRegistry;
use mcp_edge_backend::store::MemoryStore;
use mcp_edge_contract::{
    AssertionSigner, Binding, GatewayKey, Identity, IdentityClaims, body_digest, headers,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The server binary's allocator (`src/main.rs`), so the figures are the server's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const SECRET: &[u8] = b"call-cost-secret-call-cost-secret-0123";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A POST /mcp with `body`, as it leaves Envoy.
fn request(
    signer: &AssertionSigner,
    claims: &IdentityClaims,
    n: u64,
    body: &Value,
) -> Request<Body> {
    let body = body.to_string();
    let digest = body_digest(body.as_bytes());
    let request_id = format!("req-{n}");
    let assertion = signer
        .sign(
            claims,
            &Binding {
                method: "POST",
                path: "/mcp",
                protocol_version: "2025-06-18",
                request_id: &request_id,
                issued_at: now(),
                body_digest: &digest,
            },
        )
        .expect("signable");
    Request::post("/mcp")
        .header("host", "127.0.0.1:10000")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .header(headers::IDENTITY, assertion)
        .body(Body::from(body))
        .expect("request")
}

fn call(name: &str, arguments: Value, id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let calls: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000);
    let trust = Trust::new(SECRET, DEFAULT_ISSUER, DEFAULT_AUDIENCE).expect("secret");
    let app = router(AppConfig {
        trust: trust.clone(),
        tools: Arc::new(ToolRegistry::demo(
            Arc::new(MemoryStore::new()),
            Metering::in_memory(),
        )),
        metering: Metering::in_memory(),
        allowed_hosts: DEFAULT_ALLOWED_HOSTS.map(String::from).to_vec(),
        batch_limits: Default::default(),
    });
    let key = GatewayKey::new(SECRET).expect("secret");
    let signer = AssertionSigner::new(&key, DEFAULT_ISSUER, DEFAULT_AUDIENCE);
    let identity = Identity {
        tier: mcp_edge_contract::Tier::Enterprise,
        scopes: ["mcp:read", "mcp:write", "mcp:admin"]
            .map(String::from)
            .to_vec(),
        ..Identity::example("tenant-bench")
    };
    let claims = IdentityClaims::new(&identity).expect("signable");
    let mut n = 0;
    let mut send = |body: Value| {
        n += 1;
        app.clone().oneshot(request(&signer, &claims, n, &body))
    };
    let mut project = String::new();
    for i in 0..20 {
        let name = format!("Project {i:02} with a realistic name and a description");
        let response = send(call("create_project", json!({"name": name}), 1))
            .await
            .expect("infallible");
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        project = v["result"]["structuredContent"]["project"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    assert!(!project.is_empty(), "projects were not created");

    let mut answer_bytes = 0;
    let started = Instant::now();
    for _ in 0..calls {
        let response = send(call("list_projects", json!({}), 2))
            .await
            .expect("infallible");
        answer_bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .len();
    }
    let list = started.elapsed().as_secs_f64() * 1e6 / calls as f64;

    let started = Instant::now();
    for i in 0..calls.min(2_000) {
        let args = json!({"project_id": project, "title": format!("task {i}")});
        let response = send(call("create_task", args, 3))
            .await
            .expect("infallible");
        let _ = response.into_body().collect().await.expect("body");
    }
    let create = started.elapsed().as_secs_f64() * 1e6 / calls.min(2_000) as f64;

    // The assertion check alone: verify_parts on a head and body.
    let body = call("list_projects", json!({}), 2);
    let (parts, body) = request(&signer, &claims, 0, &body).into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    let started = Instant::now();
    for _ in 0..calls {
        let _ = std::hint::black_box(trust.verify_parts(&parts, &body));
    }
    let verify = started.elapsed().as_secs_f64() * 1e6 / calls as f64;

    println!("list_projects (20 projects, answer {answer_bytes} B): {list:.1} µs/call");
    println!("create_task: {create:.1} µs/call");
    println!("assertion check (verify_parts): {verify:.1} µs/call");
}
