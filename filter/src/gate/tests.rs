//! The journey through [`Gate`], driven as the glue drives it, with a fake host.

use std::cell::Cell;

use jwt_simple::prelude::*;
use mcp_edge_contract::{AssertionVerifier, RequestLine, headers as h};
use serde_json::{Value, json};

use super::*;
use crate::config::parse_config;
use crate::jwks::Installed;
use crate::rate_limit::testing::MemoryShared;
use crate::rate_limit::{SharedStore, SlotSecret};

pub(super) const NOW: u64 = 1_800_000_000;
const SECRET: &str = "0123456789abcdef0123456789abcdef";

pub(super) struct FakeHost {
    shared: MemoryShared,
    ip: Option<&'static str>,
    ip_reads: Cell<u32>,
}

impl FakeHost {
    pub(super) fn new(ip: Option<&'static str>) -> Self {
        Self {
            shared: MemoryShared::default(),
            ip,
            ip_reads: Cell::new(0),
        }
    }
}

impl Host for FakeHost {
    fn now_nanos(&self) -> u128 {
        u128::from(NOW) * 1_000_000_000
    }
    fn client_ip(&self) -> Option<String> {
        self.ip_reads.set(self.ip_reads.get() + 1);
        self.ip.map(str::to_string)
    }
    fn shared(&self) -> &dyn SharedStore {
        &self.shared
    }
}

fn config(remote: bool, kp: &Ed25519KeyPair) -> EdgeConfig {
    let jwk: Value = serde_json::from_str(&kp.public_key().to_jwk()).unwrap();
    let jwks = if remote {
        json!({"remote": {"cluster": "c", "path": "/jwks", "authority": "as"}})
    } else {
        json!({"inline": {"keys": [jwk]}})
    };
    let v = json!({
        "resource": "https://mcp.example/mcp",
        "issuers": ["https://as"],
        "jwks": jwks,
        "gateway_secret": {"inline": SECRET},
        "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write", "mcp:admin"]},
        "tool_scopes": {"list_projects": "mcp:read", "create_project": "mcp:write", "delete_project": "mcp:admin"},
        "allowed_origins": ["http://localhost:6274"],
        "rate_limits": {
            "free": {"requests_per_minute": 60, "burst": 2},
            "pro": {"requests_per_minute": 600, "burst": 5},
            "enterprise": {"requests_per_minute": 6000, "burst": 50}
        },
        "invalid_token_limit": {"requests_per_minute": 60, "burst": 3}
    });
    parse_config(v.to_string().as_bytes(), &|_| None).unwrap()
}

fn jwks_of(kp: &Ed25519KeyPair) -> Vec<u8> {
    let jwk: Value = serde_json::from_str(&kp.public_key().to_jwk()).unwrap();
    json!({"keys": [jwk]}).to_string().into_bytes()
}

fn token(kp: &Ed25519KeyPair, scope: &str) -> String {
    token_of_tier(kp, scope, "pro")
}

/// A bearer token of tenant acme, user u1, with these scopes and tier, valid at [`NOW`].
pub(super) fn token_of_tier(kp: &Ed25519KeyPair, scope: &str, tier: &str) -> String {
    let custom = json!({"tenant_id": "acme", "scope": scope, "rate_limit_tier": tier});
    let custom = custom.as_object().unwrap().clone();
    let mut c = Claims::with_custom_claims(custom, Duration::from_secs(600))
        .with_issuer("https://as")
        .with_audience("https://mcp.example/mcp")
        .with_subject("u1");
    c.issued_at = Some(Duration::from_secs(NOW));
    c.invalid_before = Some(Duration::from_secs(NOW));
    c.expires_at = Some(Duration::from_secs(NOW + 600));
    format!("Bearer {}", kp.sign(c).unwrap())
}

fn key() -> Ed25519KeyPair {
    Ed25519KeyPair::generate().with_key_id("k1")
}

/// The head of a request: method, path, authorization, extra headers.
pub(super) fn head(
    method: &str,
    path: &str,
    auth: Option<&str>,
    extra: &[(&str, &str)],
) -> Vec<(String, Vec<u8>)> {
    let mut hs = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        ("content-type".to_string(), b"application/json".to_vec()),
    ];
    if let Some(a) = auth {
        hs.push(("authorization".into(), a.as_bytes().to_vec()));
    }
    hs.extend(
        extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
    );
    hs
}

fn status(out: &Output) -> u32 {
    match &out.step {
        Step::Respond(r) => r.status,
        _ => 0,
    }
}

fn reply(out: &Output) -> &Reply {
    match &out.step {
        Step::Respond(r) => r,
        other => panic!("{other:?}"),
    }
}

/// A request with `body` through the whole request path; the last output.
fn post(w: &mut WorkerState, host: &FakeHost, auth: Option<&str>, body: &str) -> (Gate, Output) {
    let mut gate = Gate::default();
    let out = gate.on_request_headers(w, host, head("POST", "/mcp", auth, &[]), false);
    if out.step != Step::WaitForBody {
        return (gate, out);
    }
    let cfg = w.config.clone();
    let out = gate.on_request_body(&cfg, body.len(), true);
    assert_eq!(out.step, Step::ReadBody);
    let out = gate.on_body(w, host, body.as_bytes());
    (gate, out)
}

fn call(tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

#[test]
fn metadata_is_public_and_read_with_get() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    for p in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let out =
            Gate::default().on_request_headers(&mut w, &host, head("GET", p, None, &[]), true);
        let doc: Value = serde_json::from_slice(&reply(&out).body).unwrap();
        assert_eq!(doc["resource"], "https://mcp.example/mcp");
        assert_eq!(
            out.counter_names(),
            vec!["mcp_edge.outcome.metadata_served".to_string()]
        );
    }
    let p = "/.well-known/oauth-protected-resource";
    let out = Gate::default().on_request_headers(&mut w, &host, head("POST", p, None, &[]), true);
    assert_eq!(status(&out), 405);
}

#[test]
fn cors_preflight_only_for_allowed_origins() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let preflight = |origin: &str| head("OPTIONS", "/mcp", None, &[("origin", origin)]);
    let out =
        Gate::default().on_request_headers(&mut w, &host, preflight("http://localhost:6274"), true);
    assert_eq!(status(&out), 204);
    assert_eq!(
        reply(&out).header("access-control-allow-origin"),
        Some("http://localhost:6274")
    );
    let out =
        Gate::default().on_request_headers(&mut w, &host, preflight("https://evil.example"), true);
    assert_eq!(status(&out), 405);
    // A refusal to an allowed origin is readable by the browser.
    let h = head("POST", "/mcp", None, &[("origin", "http://localhost:6274")]);
    let out = Gate::default().on_request_headers(&mut w, &host, h, true);
    assert_eq!(status(&out), 401);
    assert!(
        reply(&out)
            .header("access-control-expose-headers")
            .unwrap()
            .contains("www-authenticate")
    );
    let h = head("POST", "/mcp", None, &[("origin", "https://evil.example")]);
    let out = Gate::default().on_request_headers(&mut w, &host, h, true);
    assert_eq!(status(&out), 403);
}

#[test]
fn paths_and_methods() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let auth = token(&kp, "mcp:read");
    let cases = [
        ("POST", "/other", 404),
        ("POST", "/mcp/", 404),
        ("PUT", "/mcp", 405),
        ("POST", "/mcp?x=1", 0),
        // The upstream keeps no sessions: nothing to stream on GET, nothing to DELETE.
        ("GET", "/mcp", 405),
        ("DELETE", "/mcp", 405),
    ];
    for (method, path, expected) in cases {
        let hs = head(method, path, Some(&auth), &[]);
        let out = Gate::default().on_request_headers(&mut w, &host, hs, false);
        assert_eq!(status(&out), expected, "{method} {path}");
    }
    let hs = head("GET", "/mcp", Some(&auth), &[]);
    let out = Gate::default().on_request_headers(&mut w, &host, hs, true);
    assert_eq!(reply(&out).header("allow"), Some("POST"));
    // Without a token, GET is still a 401 first.
    let out =
        Gate::default().on_request_headers(&mut w, &host, head("GET", "/mcp", None, &[]), true);
    assert_eq!(status(&out), 401);
    // A stateful upstream gets them, charged like any request.
    let mut cfg = config(false, &kp);
    cfg.stateful_upstream = true;
    let mut w = WorkerState::new(cfg, SlotSecret([3; 16]));
    for method in ["GET", "DELETE"] {
        let mut gate = Gate::default();
        let hs = head(method, "/mcp", Some(&auth), &[]);
        assert_eq!(
            gate.on_request_headers(&mut w, &host, hs, true).step,
            Step::ReadBody
        );
        let out = gate.on_body(&w, &host, b"");
        assert_eq!(out.step, Step::Continue, "{method}");
        assert_eq!(out.counter_names()[0], "mcp_edge.ratelimit.pro.admitted");
        // MCP 2026-07-28 has neither sessions nor a GET stream, whatever the upstream keeps.
        let hs = head(
            method,
            "/mcp",
            Some(&auth),
            &[("mcp-protocol-version", "2026-07-28")],
        );
        let out = Gate::default().on_request_headers(&mut w, &host, hs, true);
        assert_eq!(status(&out), 405, "{method} at 2026-07-28");
        assert_eq!(reply(&out).header("allow"), Some("POST"));
    }
}

#[test]
fn every_request_that_reaches_the_body_is_charged() {
    let kp = key();
    // The pro tier has a burst of 5 in this configuration.
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let auth = token(&kp, "mcp:read");
    for _ in 0..5 {
        // Refused bodies (not JSON-RPC, a tool the token may not call) cost a token each.
        let (_, out) = post(&mut w, &host, Some(&auth), "not json");
        assert_eq!(status(&out), 400);
    }
    let (_, out) = post(&mut w, &host, Some(&auth), &call("list_projects"));
    assert_eq!(status(&out), 429, "the bucket was spent on refused bodies");
    assert_eq!(out.counter_names()[0], "mcp_edge.ratelimit.pro.limited");
    // A limited tenant's body is not even parsed: still 429, not 400.
    let (_, out) = post(&mut w, &host, Some(&auth), "not json");
    assert_eq!(status(&out), 429);
}

#[test]
fn missing_and_invalid_tokens_get_401_challenges() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let (_, out) = post(&mut w, &host, None, "{}");
    let challenge = reply(&out).header("www-authenticate").unwrap();
    assert!(challenge.contains(
        "resource_metadata=\"https://mcp.example/.well-known/oauth-protected-resource/mcp\""
    ));
    assert!(!challenge.contains("error="));
    assert_eq!(
        out.counter_names(),
        vec!["mcp_edge.outcome.denied.no_token".to_string()]
    );
    let (_, out) = post(&mut w, &host, Some("Bearer nope"), "{}");
    assert!(
        reply(&out)
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(
        out.counter_names(),
        vec!["mcp_edge.outcome.denied.invalid_token.malformed".to_string()]
    );
    // A token in the query string is not a token.
    let h = head("POST", "/mcp?access_token=abc", None, &[]);
    let out = Gate::default().on_request_headers(&mut w, &host, h, true);
    assert_eq!(
        out.counter_names(),
        vec!["mcp_edge.outcome.denied.no_token".to_string()]
    );
}

#[test]
fn an_allowed_call_is_vouched_for_and_its_token_dropped() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(Some("192.0.2.1"));
    let mut gate = Gate::default();
    let mut hs = head("POST", "/mcp", Some(&token(&kp, "mcp:read")), &[]);
    hs.push(("X-MCP-Tenant-Id".into(), b"evil".to_vec()));
    hs.push(("mcp-protocol-version".into(), b"2025-06-18".to_vec()));
    let out = gate.on_request_headers(&mut w, &host, hs, false);
    assert_eq!(out.step, Step::WaitForBody);
    assert_eq!(
        out.remove_request_headers,
        vec!["X-MCP-Tenant-Id".to_string()]
    );
    let body = call("list_projects");
    let cfg = w.config.clone();
    assert_eq!(
        gate.on_request_body(&cfg, body.len() / 2, false).step,
        Step::WaitForBody
    );
    assert_eq!(
        gate.on_request_body(&cfg, body.len(), true).step,
        Step::ReadBody
    );
    let out = gate.on_body(&w, &host, body.as_bytes());
    assert_eq!(out.step, Step::Continue);
    assert_eq!(
        out.remove_request_headers,
        vec!["authorization".to_string()]
    );
    let set = &out.add_request_headers;
    let header = |n: &str| set.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
    assert_eq!(set.len(), 1, "one header: the assertion {set:?}");
    let verifier = AssertionVerifier::new(
        SECRET.as_bytes(),
        mcp_edge_contract::assertion::DEFAULT_ISSUER,
        mcp_edge_contract::assertion::DEFAULT_AUDIENCE,
    )
    .unwrap();
    let vouched = verifier
        .verify(
            header(h::IDENTITY).unwrap(),
            &RequestLine {
                method: "POST",
                path: "/mcp",
                protocol_version: "2025-06-18",
            },
            body.as_bytes(),
            NOW,
        )
        .unwrap();
    assert_eq!(vouched.identity.tenant_id, "acme");
    assert_eq!(vouched.identity.scopes, vec!["mcp:read".to_string()]);
    assert_eq!(vouched.request_id, gate.request_id());
    assert_eq!(vouched.issued_at, NOW);
    assert_eq!(
        out.counter_names(),
        vec![
            "mcp_edge.ratelimit.pro.admitted".to_string(),
            "mcp_edge.outcome.allowed".to_string()
        ]
    );
    assert!(
        out.log_properties
            .contains(&("mcp_edge.tool", "list_projects".to_string()))
    );
    // Later body callbacks change nothing.
    assert_eq!(gate.on_request_trailers(&cfg).step, Step::Continue);
}

#[test]
fn a_refused_call_is_answered_and_described_for_the_access_log() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let (_, out) = post(
        &mut w,
        &host,
        Some(&token(&kp, "mcp:read")),
        &call("delete_project"),
    );
    assert_eq!(status(&out), 403);
    assert!(
        reply(&out)
            .header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    assert!(
        out.log_properties
            .contains(&("mcp_edge.tool", "delete_project".to_string()))
    );
    assert!(
        out.log_properties
            .contains(&("mcp_edge.tenant", "acme".to_string()))
    );
    assert!(out.add_request_headers.is_empty() && out.set_request_headers.is_empty());
}

#[test]
fn access_log_properties_only_when_configured() {
    let kp = key();
    let mut cfg = config(false, &kp);
    cfg.access_log_properties = false;
    let mut w = WorkerState::new(cfg, SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let mut gate = Gate::default();
    let auth = token(&kp, "mcp:read");
    let out = gate.on_request_headers(&mut w, &host, head("POST", "/mcp", Some(&auth), &[]), false);
    assert_eq!(out.step, Step::WaitForBody);
    assert!(out.log_properties.is_empty(), "{:?}", out.log_properties);
    let cfg = w.config.clone();
    let body = call("list_projects");
    gate.on_request_body(&cfg, body.len(), true);
    let out = gate.on_body(&w, &host, body.as_bytes());
    assert_eq!(out.step, Step::Continue);
    assert!(out.log_properties.is_empty(), "{:?}", out.log_properties);
    // Everything else is as it was: the assertion and the counters.
    assert_eq!(out.add_request_headers.len(), 1);
    assert_eq!(out.counter_names().len(), 2);
    let (_, out) = post(&mut w, &host, Some(&auth), &call("delete_project"));
    assert_eq!(status(&out), 403);
    assert!(out.log_properties.is_empty(), "{:?}", out.log_properties);
    assert_eq!(
        out.counter_names().last().map(String::as_str),
        Some("mcp_edge.outcome.denied.insufficient_scope")
    );
    let (_, out) = post(&mut w, &host, None, &call("list_projects"));
    assert_eq!(status(&out), 401);
    assert!(out.log_properties.is_empty());
    // On by default (the access log of envoy.yaml reads them).
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let (gate, out) = post(&mut w, &host, Some(&auth), &call("list_projects"));
    assert_eq!(out.step, Step::Continue);
    assert!(
        out.log_properties
            .contains(&("mcp_edge.tenant", "acme".to_string()))
    );
    assert!(!gate.request_id().is_empty());
}

#[test]
fn body_over_the_cap_is_refused_while_it_arrives() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let mut gate = Gate::default();
    gate.on_request_headers(
        &mut w,
        &host,
        head("POST", "/mcp", Some(&token(&kp, "mcp:read")), &[]),
        false,
    );
    let cfg = w.config.clone();
    let out = gate.on_request_body(&cfg, cfg.max_body_bytes + 1, false);
    assert_eq!(status(&out), 413);
    assert_eq!(
        out.counter_names(),
        vec!["mcp_edge.outcome.denied.body_too_large".to_string()]
    );
    assert_eq!(
        gate.on_request_body(&cfg, cfg.max_body_bytes + 2, true)
            .step,
        Step::Continue
    );
}

#[test]
fn unknown_keys_are_fetched_then_the_request_goes_on() {
    let kp = key();
    let mut w = WorkerState::new(config(true, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let mut gate = Gate::default();
    let hs = head("POST", "/mcp", Some(&token(&kp, "mcp:read")), &[]);
    assert_eq!(
        gate.on_request_headers(&mut w, &host, hs, false).step,
        Step::FetchKeys
    );
    let cfg = w.config.clone();
    // The body completes while the keys are fetched: it waits.
    let body = call("list_projects");
    assert_eq!(
        gate.on_request_body(&cfg, body.len(), true).step,
        Step::WaitForBody
    );
    assert_eq!(
        w.install_keys(Some("200"), &jwks_of(&kp), NOW),
        Installed::Changed(1)
    );
    assert_eq!(gate.on_keys(&mut w, &host).step, Step::ReadBody);
    assert_eq!(
        gate.on_body(&w, &host, body.as_bytes()).step,
        Step::Continue
    );
}

#[test]
fn no_keys_fails_closed() {
    let kp = key();
    let mut w = WorkerState::new(config(true, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let mut gate = Gate::default();
    let hs = head("POST", "/mcp", Some(&token(&kp, "mcp:read")), &[]);
    assert_eq!(
        gate.on_request_headers(&mut w, &host, hs, false).step,
        Step::FetchKeys
    );
    let out = gate.on_keys_unavailable(&mut w, &host);
    assert_eq!(status(&out), 503);
    assert_eq!(reply(&out).header("retry-after"), Some("5"));
    // A malformed token is judged without keys.
    let hs = head("POST", "/mcp", Some("Bearer abc.def"), &[]);
    assert_eq!(
        status(&Gate::default().on_request_headers(&mut w, &host, hs, false)),
        401
    );
}

#[test]
fn verified_tokens_are_cached_and_the_address_read_only_on_a_miss() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(Some("192.0.2.1"));
    let auth = token(&kp, "mcp:read");
    assert_eq!(
        post(&mut w, &host, Some(&auth), &call("list_projects"))
            .1
            .step,
        Step::Continue
    );
    assert_eq!(w.cache.len(), 1);
    let reads = host.ip_reads.get();
    assert!(reads > 0);
    assert_eq!(
        post(&mut w, &host, Some(&auth), &call("list_projects"))
            .1
            .step,
        Step::Continue
    );
    assert_eq!(
        host.ip_reads.get(),
        reads,
        "a cached token needs no address"
    );
}

#[test]
fn bad_tokens_are_limited_per_address_before_verification() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let forged = "Bearer eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.e30.AAAA";
    let host7 = FakeHost::new(Some("192.0.2.7"));
    for _ in 0..3 {
        assert_eq!(status(&post(&mut w, &host7, Some(forged), "{}").1), 401);
    }
    let (_, out) = post(&mut w, &host7, Some(forged), "{}");
    assert_eq!(status(&out), 429);
    assert_eq!(
        out.counter_names(),
        vec!["mcp_edge.outcome.denied.too_many_invalid_tokens".to_string()]
    );
    // Another address (same shared store) is not affected.
    let host8 = FakeHost {
        ip: Some("192.0.2.8"),
        ..host7
    };
    assert_eq!(status(&post(&mut w, &host8, Some(forged), "{}").1), 401);
}

/// A `tools/list` request (id "L") let through for an `mcp:read` token.
fn forwarded_tools_list(w: &mut WorkerState, host: &FakeHost, kp: &Ed25519KeyPair) -> Gate {
    let list = r#"{"jsonrpc":"2.0","id":"L","method":"tools/list"}"#;
    let (gate, out) = post(w, host, Some(&token(kp, "mcp:read")), list);
    assert_eq!(out.step, Step::Continue);
    gate
}

#[test]
fn tools_list_answers_are_filtered_for_the_token() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let mut gate = forwarded_tools_list(&mut w, &host, &kp);
    let cfg = w.config.clone();
    let error = |name: &str| match name {
        ":status" => Some(b"406".to_vec()),
        _ => Some(b"application/json".to_vec()),
    };
    let mut refused = forwarded_tools_list(&mut w, &host, &kp);
    let set = refused.on_response_headers(&cfg, false, error);
    assert!(
        !set.iter().any(|(n, _)| n == "content-length"),
        "an error answer is not rewritten"
    );
    assert_eq!(
        refused.on_response_body(&cfg, true, || b"Not Acceptable".to_vec()),
        ResponseBody::Continue
    );
    let ok = |name: &str| match name {
        ":status" => Some(b"200".to_vec()),
        _ => Some(b"application/json".to_vec()),
    };
    let set = gate.on_response_headers(&cfg, false, ok);
    assert!(gate.holds_response_head(), "the length may change");
    assert!(
        set.iter()
            .any(|(n, v)| n == "ratelimit-policy" && v.contains("\"pro\""))
    );
    assert_eq!(
        gate.on_response_body(&cfg, false, Vec::new),
        ResponseBody::Wait
    );
    let answer = json!({"jsonrpc": "2.0", "id": "L", "result": {"tools": [
        {"name": "list_projects", "inputSchema": {"type": "object"}},
        {"name": "delete_project", "inputSchema": {"type": "object"}}
    ]}});
    let ResponseBody::ReplaceWhole(body) =
        gate.on_response_body(&cfg, true, || answer.to_string().into_bytes())
    else {
        panic!("not rewritten")
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["result"]["tools"].as_array().unwrap().len(), 1);
    assert_eq!(body["result"]["tools"][0]["name"], "list_projects");
}

#[test]
fn a_list_on_the_answer_of_any_request_is_filtered() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let cfg = w.config.clone();
    let json_ok = |name: &str| match name {
        ":status" => Some(b"200".to_vec()),
        "content-type" => Some(b"application/json".to_vec()),
        _ => None,
    };
    // A server that answers a ping with a tool list.
    let ping = r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#;
    let (mut gate, out) = post(&mut w, &host, Some(&token(&kp, "mcp:read")), ping);
    assert_eq!(out.step, Step::Continue);
    gate.on_response_headers(&cfg, false, json_ok);
    assert!(gate.holds_response_head());
    let listed = br#"{"jsonrpc":"2.0","id":"p","result":{"tools":[{"name":"list_projects"},{"name":"delete_project"}]}}"#;
    let ResponseBody::ReplaceWhole(body) = gate.on_response_body(&cfg, true, || listed.to_vec())
    else {
        panic!("not rewritten")
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["result"]["tools"], json!([{"name": "list_projects"}]));
    // An answer without a list passes as it came; a head that ends the response holds nothing.
    let (mut gate, _) = post(
        &mut w,
        &host,
        Some(&token(&kp, "mcp:read")),
        &call("list_projects"),
    );
    gate.on_response_headers(&cfg, false, json_ok);
    let plain = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
    assert_eq!(
        gate.on_response_body(&cfg, true, || plain.to_vec()),
        ResponseBody::Continue
    );
    let (mut gate, _) = post(&mut w, &host, Some(&token(&kp, "mcp:read")), ping);
    gate.on_response_headers(&cfg, true, json_ok);
    assert!(!gate.holds_response_head());
}

#[test]
fn a_whole_answer_ending_with_trailers_is_judged_at_the_trailers() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let cfg = w.config.clone();
    let mut gate = forwarded_tools_list(&mut w, &host, &kp);
    gate.on_response_headers(&cfg, false, |name| match name {
        ":status" => Some(b"200".to_vec()),
        "content-type" => Some(b"application/json".to_vec()),
        _ => None,
    });
    let listed = br#"{"jsonrpc":"2.0","id":"L","result":{"tools":[{"name":"list_projects"},{"name":"delete_project"}]}}"#;
    // The last body chunk does not end the stream: the trailers do.
    assert_eq!(
        gate.on_response_body(&cfg, false, || listed.to_vec()),
        ResponseBody::Wait
    );
    let ResponseBody::ReplaceWhole(body) = gate.on_response_trailers(&cfg, || listed.to_vec())
    else {
        panic!("not judged at the trailers")
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["result"]["tools"], json!([{"name": "list_projects"}]));
    // An event stream's unfinished last event is not sent at the trailers.
    let mut gate = forwarded_tools_list(&mut w, &host, &kp);
    gate.on_response_headers(&cfg, false, |name| match name {
        ":status" => Some(b"200".to_vec()),
        "content-type" => Some(b"text/event-stream".to_vec()),
        _ => None,
    });
    assert_eq!(
        gate.on_response_body(&cfg, false, || b"data: {\"tools\"".to_vec()),
        ResponseBody::Replace(Vec::new())
    );
    assert_eq!(
        gate.on_response_trailers(&cfg, || panic!(
            "an event stream is not read at the trailers"
        )),
        ResponseBody::Continue
    );
}

#[test]
fn a_tools_list_event_stream_is_filtered_chunk_by_chunk() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let mut gate = forwarded_tools_list(&mut w, &host, &kp);
    let cfg = w.config.clone();
    let sse = |name: &str| match name {
        ":status" => Some(b"200".to_vec()),
        _ => Some(b"text/event-stream".to_vec()),
    };
    let set = gate.on_response_headers(&cfg, false, sse);
    assert!(set.contains(&("content-length".to_string(), String::new())));
    assert!(!gate.holds_response_head(), "a stream goes on at once");
    let note =
        b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\ndata: {\"id\":";
    let ResponseBody::Replace(first) = gate.on_response_body(&cfg, false, || note.to_vec()) else {
        panic!("not streamed")
    };
    assert!(
        first.ends_with(b"progress\"}\n\n"),
        "the notification goes on at once"
    );
    let rest = br#""L","jsonrpc":"2.0","result":{"tools":[{"name":"list_projects"},{"name":"delete_project"}]}}

"#;
    let ResponseBody::Replace(second) = gate.on_response_body(&cfg, false, || rest.to_vec()) else {
        panic!("not streamed")
    };
    let second = String::from_utf8(second).unwrap();
    assert!(
        second.contains("list_projects") && !second.contains("delete_project"),
        "{second}"
    );
    // Not JSON and may hold a list: one error event, then nothing more of the stream.
    let ResponseBody::Replace(bad) =
        gate.on_response_body(&cfg, false, || b"data: {\"tools\": x\n\n".to_vec())
    else {
        panic!("not streamed")
    };
    assert!(
        String::from_utf8(bad)
            .unwrap()
            .contains("could not filter the tool list")
    );
    assert_eq!(
        gate.on_response_body(&cfg, true, || b"data: 1\n\n".to_vec()),
        ResponseBody::Replace(Vec::new())
    );
}

#[test]
fn a_refused_configuration_refuses_everything() {
    let mut gate = Gate::default();
    let out = gate.deny(None, Denial::Misconfigured, None);
    assert_eq!(status(&out), 503);
    assert_eq!(
        out.counter_names(),
        vec!["mcp_edge.outcome.denied.internal_error".to_string()]
    );
}

#[test]
fn sessions_are_bound_to_the_tenant_and_user_and_sse_streams_pass_unbuffered() {
    let kp = key();
    let mut cfg = config(false, &kp);
    cfg.stateful_upstream = true;
    let gateway_key = cfg.prepared.gateway_key.clone().unwrap();
    let mut w = WorkerState::new(cfg, SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let auth = token(&kp, "mcp:read");
    let cfg = w.config.clone();
    // The upstream's id goes back to the client bound to acme/u1.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let (mut gate, out) = post(&mut w, &host, Some(&auth), init);
    assert_eq!(out.step, Step::Continue);
    let answer = |name: &str| match name {
        ":status" => Some(b"200".to_vec()),
        "mcp-session-id" => Some(b"s-123".to_vec()),
        _ => Some(b"application/json".to_vec()),
    };
    let set = gate.on_response_headers(&cfg, false, answer);
    let bound = set
        .iter()
        .find(|(n, _)| n == "mcp-session-id")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_ne!(bound, "s-123");
    assert_eq!(
        crate::session::check(&gateway_key, "acme", "u1", &bound),
        Ok("s-123")
    );
    // The bound id opens a GET stream; the upstream sees its own id.
    let mut gate = Gate::default();
    let hs = head("GET", "/mcp", Some(&auth), &[("mcp-session-id", &bound)]);
    assert_eq!(
        gate.on_request_headers(&mut w, &host, hs, true).step,
        Step::ReadBody
    );
    let out = gate.on_body(&w, &host, b"");
    assert_eq!(out.step, Step::Continue);
    assert!(
        out.set_request_headers
            .contains(&("mcp-session-id", "s-123".to_string()))
    );
    // The stream is not buffered; its event ids are bound to acme/u1, and a list on it (the
    // answer of no tools/list of this request) is filtered.
    let sse = |name: &str| match name {
        ":status" => Some(b"200".to_vec()),
        "content-type" => Some(b"text/event-stream".to_vec()),
        _ => None,
    };
    gate.on_response_headers(&cfg, false, sse);
    assert!(!gate.holds_response_head());
    let replayed = br#"id: ev-1
data: {"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"list_projects"},{"name":"delete_project"}]}}

"#;
    let ResponseBody::Replace(out) = gate.on_response_body(&cfg, false, || replayed.to_vec())
    else {
        panic!("not streamed")
    };
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("list_projects") && !out.contains("delete_project"),
        "{out}"
    );
    let bound_event = out
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_string();
    assert_eq!(
        crate::session::check_id(
            &gateway_key,
            crate::session::BoundId::Event,
            "acme",
            "u1",
            &bound_event
        ),
        Ok("ev-1")
    );
    // The bound event id resumes (the upstream sees its own); a bare, another user's, a session
    // id or two of them: 400.
    let resume = |last: &[&str], w: &mut WorkerState| {
        let mut extra = vec![("mcp-session-id", bound.as_str())];
        extra.extend(last.iter().map(|l| ("last-event-id", *l)));
        let hs = head("GET", "/mcp", Some(&auth), &extra);
        let mut gate = Gate::default();
        let out = gate.on_request_headers(w, &host, hs, true);
        if out.step == Step::ReadBody {
            return gate.on_body(w, &host, b"");
        }
        out
    };
    let out = resume(&[&bound_event], &mut w);
    assert_eq!(out.step, Step::Continue);
    assert!(
        out.set_request_headers
            .contains(&("last-event-id", "ev-1".to_string()))
    );
    let other_user = crate::session::bind_id(
        &gateway_key,
        crate::session::BoundId::Event,
        "acme",
        "u2",
        "ev-1",
    );
    for last in [
        vec!["ev-1"],
        vec![other_user.as_str()],
        vec![bound.as_str()],
        vec![bound_event.as_str(), bound_event.as_str()],
    ] {
        let out = resume(&last, &mut w);
        assert_eq!(status(&out), 400, "{last:?}");
        assert_eq!(
            out.counter_names()[0],
            "mcp_edge.outcome.denied.bad_request.last_event_id"
        );
    }
    // Bare, tampered, another tenant's or another user's id: 404, as for an unknown session.
    let (_, tag) = bound.rsplit_once('.').unwrap();
    let refused = [
        "s-123".to_string(),
        format!("s-124.{tag}"),
        crate::session::bind(&gateway_key, "globex", "u1", "s-123"),
        crate::session::bind(&gateway_key, "acme", "u2", "s-123"),
    ];
    for sid in refused {
        for method in ["GET", "DELETE", "POST"] {
            let hs = head(method, "/mcp", Some(&auth), &[("mcp-session-id", &sid)]);
            let out = Gate::default().on_request_headers(&mut w, &host, hs, false);
            assert_eq!(status(&out), 404, "{method} {sid}");
            let body: Value = serde_json::from_slice(&reply(&out).body).unwrap();
            assert_eq!(
                body["error"]["code"],
                mcp_edge_contract::codes::SESSION_NOT_FOUND
            );
            assert_eq!(
                out.counter_names()[0],
                "mcp_edge.outcome.denied.unknown_session"
            );
        }
    }
}

#[test]
fn a_stateless_upstream_leaves_session_headers_alone() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let (mut gate, out) = post(
        &mut w,
        &host,
        Some(&token(&kp, "mcp:read")),
        &call("list_projects"),
    );
    assert_eq!(out.step, Step::Continue);
    assert!(
        !out.set_request_headers
            .iter()
            .any(|(n, _)| *n == "mcp-session-id")
    );
    let cfg = w.config.clone();
    let set = gate.on_response_headers(&cfg, false, |name| match name {
        ":status" => Some(b"200".to_vec()),
        "mcp-session-id" => Some(b"s-1".to_vec()),
        _ => None,
    });
    assert!(!set.iter().any(|(n, _)| n == "mcp-session-id"));
}

/// `config`'s inline-key configuration with `introspection` on, credentials from a fake environment.
fn opaque_config(kp: &Ed25519KeyPair) -> EdgeConfig {
    let jwk: Value = serde_json::from_str(&kp.public_key().to_jwk()).unwrap();
    let v = json!({
        "resource": "https://mcp.example/mcp",
        "issuers": ["https://as"],
        "jwks": {"inline": {"keys": [jwk]}},
        "gateway_secret": {"inline": SECRET},
        "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read"]},
        "challenge_scopes": ["mcp:read"],
        "tool_scopes": {"list_projects": "mcp:read"},
        "invalid_token_limit": {"requests_per_minute": 60, "burst": 3},
        "introspection": {"cluster": "authz", "path": "/token/introspection", "authority": "as",
                          "client_id_env": "EDGE_ID", "client_secret_env": "EDGE_SECRET",
                          "max_cache_seconds": 120}
    });
    let env = |n: &str| match n {
        "EDGE_ID" => Some("mcp-edge".to_string()),
        "EDGE_SECRET" => Some("s3cret".to_string()),
        _ => None,
    };
    parse_config(v.to_string().as_bytes(), &env).unwrap()
}

/// Sends the head of an opaque-token request; returns the gate waiting for introspection.
fn opaque_head(w: &mut WorkerState, host: &FakeHost, seed: u8) -> (Gate, Output) {
    let auth = format!("Bearer {}", crate::introspection::opaque_token(seed));
    let mut gate = Gate::default();
    let out = gate.on_request_headers(w, host, head("POST", "/mcp", Some(&auth), &[]), false);
    (gate, out)
}

#[test]
fn opaque_tokens_are_introspected_once_then_served_from_the_cache() {
    let kp = key();
    let mut w = WorkerState::new(opaque_config(&kp), SlotSecret([3; 16]));
    let host = FakeHost::new(Some("10.0.0.9"));
    let (mut gate, out) = opaque_head(&mut w, &host, 1);
    let Step::Introspect(call) = &out.step else {
        panic!("{:?}", out.step)
    };
    assert_eq!(call.cluster, "authz");
    assert!(gate.awaiting_introspection());
    let answer = json!({"active": true, "tenant_id": "acme", "scope": "mcp:read",
                        "rate_limit_tier": "pro", "client_id": "agent", "exp": NOW + 600,
                        "iss": "https://as", "aud": "https://mcp.example/mcp"});
    let out = gate.on_introspection(&mut w, &host, Some("200"), answer.to_string().as_bytes());
    assert_eq!(out.step, Step::WaitForBody);
    let body = call_body();
    let cfg = w.config.clone();
    assert_eq!(
        gate.on_request_body(&cfg, body.len(), true).step,
        Step::ReadBody
    );
    let out = gate.on_body(&w, &host, body.as_bytes());
    assert_eq!(out.step, Step::Continue);
    let assertion = out
        .add_request_headers
        .iter()
        .find(|(n, _)| *n == h::IDENTITY)
        .and_then(|(_, v)| mcp_edge_contract::assertion::decode_unverified(v));
    assert_eq!(
        assertion.map(|a| a["tenant_id"].clone()),
        Some("acme".into())
    );
    // The same token again: from the cache, no second introspection.
    let auth = format!("Bearer {}", crate::introspection::opaque_token(1));
    let (_, out) = post(&mut w, &host, Some(&auth), &body);
    assert_eq!(out.step, Step::Continue);
    // JWTs are still verified here, never introspected.
    let (_, out) = post(&mut w, &host, Some(&token(&kp, "mcp:read")), &body);
    assert_eq!(out.step, Step::Continue);
}

fn call_body() -> String {
    call("list_projects")
}

#[test]
fn refused_introspection_is_401_uncached_and_charges_the_address() {
    let kp = key();
    let mut w = WorkerState::new(opaque_config(&kp), SlotSecret([3; 16]));
    let host = FakeHost::new(Some("10.0.0.9"));
    let refusals: [(Option<&str>, &[u8], &str); 3] = [
        (Some("200"), br#"{"active":false}"#, "inactive"),
        (None, b"", "introspection_failed"),
        (Some("500"), b"{}", "introspection_failed"),
    ];
    for (code, body, reason) in refusals {
        // The same token each time: a refusal is not cached, so it is asked about again.
        let (mut gate, out) = opaque_head(&mut w, &host, 2);
        assert!(matches!(out.step, Step::Introspect(_)), "{:?}", out.step);
        let out = gate.on_introspection(&mut w, &host, code, body);
        assert_eq!(status(&out), 401);
        let challenge = reply(&out).header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert_eq!(
            out.counter_names(),
            vec![format!("mcp_edge.outcome.denied.invalid_token.{reason}")]
        );
    }
    // Three refusals spent the address's burst: the next opaque token is not even asked about.
    let (_, out) = opaque_head(&mut w, &host, 3);
    assert_eq!(status(&out), 429);
}

#[test]
fn long_lived_streams_are_capped_per_tenant_and_give_their_place_back() {
    let kp = key();
    let mut cfg = config(false, &kp);
    cfg.stateful_upstream = true;
    cfg.stream_limits.insert(crate::tenant::Tier::Pro, 1);
    let mut w = WorkerState::new(cfg, SlotSecret([3; 16]));
    let host = FakeHost::new(None);
    let auth = token(&kp, "mcp:read");
    let get = |w: &mut WorkerState| {
        let mut gate = Gate::default();
        let hs = head("GET", "/mcp", Some(&auth), &[]);
        assert_eq!(
            gate.on_request_headers(w, &host, hs, true).step,
            Step::ReadBody
        );
        let out = gate.on_body(w, &host, b"");
        (gate, out)
    };
    let (mut first, out) = get(&mut w);
    assert_eq!(out.step, Step::Continue);
    let (_, out) = get(&mut w);
    assert_eq!(status(&out), 429);
    assert_eq!(
        out.counter_names()[1],
        "mcp_edge.outcome.denied.too_many_streams"
    );
    let body: Value = serde_json::from_slice(&reply(&out).body).unwrap();
    assert_eq!(
        body["error"]["code"],
        mcp_edge_contract::codes::RATE_LIMITED
    );
    // Other requests of the tenant are served meanwhile.
    let (_, out) = post(&mut w, &host, Some(&auth), &call("list_projects"));
    assert_eq!(out.step, Step::Continue);
    // The stream ends: its place is given back (by the glue, when the request goes away).
    let tenant = first.take_stream_place().expect("a place was taken");
    assert_eq!(first.take_stream_place(), None, "given back once");
    crate::rate_limit::streams::release(
        host.shared(),
        &w.slot_secret,
        &tenant,
        &w.stream_holder,
        0,
    );
    let (_, out) = get(&mut w);
    assert_eq!(out.step, Step::Continue);
    assert!(super::streams::is_long_lived(
        "POST",
        "subscriptions/listen"
    ));
    assert!(!super::streams::is_long_lived("POST", "tools/call"));
}

#[test]
fn a_held_stream_keeps_nothing_of_its_head_but_the_allowed_origin() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let host = FakeHost::new(Some("192.0.2.1"));
    let cfg = w.config.clone();
    let uri = "u".repeat(30_000);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{{"uri":"{uri}"}}}}"#
    );
    let long_path = format!("/mcp?pad={}", "p".repeat(1_000));
    let mut gate = Gate::default();
    let token = token(&kp, "mcp:read");
    let extra = [
        ("mcp-method", "resources/read"),
        ("mcp-name", uri.as_str()),
        ("origin", "http://localhost:6274"),
        ("content-encoding", "identity"),
    ];
    let hs = head("POST", &long_path, Some(&token), &extra);
    let out = gate.on_request_headers(&mut w, &host, hs, false);
    assert_eq!(out.step, Step::WaitForBody);
    // Authenticated: the token and the transport headers are no longer needed.
    assert!(gate.header("authorization").is_none());
    assert!(gate.header("content-type").is_none());
    // and a 30 KB Mcp-Name waits for the body as its digest.
    assert!(gate.header("mcp-name").is_none());
    assert!(
        gate.head_bytes() < 1_200,
        "{} bytes held",
        gate.head_bytes()
    );
    assert_eq!(
        gate.on_request_body(&cfg, body.len(), true).step,
        Step::ReadBody
    );
    let out = gate.on_body(&w, &host, body.as_bytes());
    assert_eq!(out.step, Step::Continue, "{:?}", out.counter_names());
    // Forwarded: the 31 KB of path and headers are gone, the allowed origin stays.
    assert!(gate.head_bytes() < 100, "{} bytes held", gate.head_bytes());
    let set = gate.on_response_headers(&cfg, false, |n| (n == ":status").then(|| b"200".to_vec()));
    assert!(
        set.contains(&(
            "access-control-allow-origin".into(),
            "http://localhost:6274".into()
        )),
        "{set:?}"
    );
    // A refused request lets go of its head as well.
    let mut refused = Gate::default();
    let hs = head("POST", &long_path, None, &[("mcp-name", uri.as_str())]);
    let out = refused.on_request_headers(&mut w, &host, hs, false);
    assert_eq!(status(&out), 401);
    assert!(
        refused.head_bytes() < 100,
        "{} bytes held",
        refused.head_bytes()
    );
}

/// The same shared store seen from another client address.
fn from_address(host: FakeHost, ip: String) -> FakeHost {
    FakeHost {
        ip: Some(Box::leak(ip.into_boxed_str())),
        ..host
    }
}

#[test]
fn a_full_address_table_makes_room_for_a_well_formed_token() {
    let kp = key();
    let mut cfg = config(false, &kp);
    cfg.rate_limit_slots = 16;
    let mut w = WorkerState::new(cfg, SlotSecret([3; 16]));
    let mut host = FakeHost::new(Some("198.51.100.0"));
    // Garbage (not even a JWT's shape) from one address after another, until a new address finds
    // every slot it may use held by another address's live bucket.
    let mut full = false;
    for i in 1..200 {
        host = from_address(host, format!("198.51.100.{i}"));
        match status(&post(&mut w, &host, Some("Bearer garbage"), "{}").1) {
            401 => {}
            429 => {
                full = true;
                break;
            }
            other => panic!("{other}"),
        }
    }
    assert!(full, "the table never filled");
    // From that address garbage is still refused for want of a slot; a valid token is served.
    assert_eq!(
        status(&post(&mut w, &host, Some("Bearer garbage"), "{}").1),
        429
    );
    let (_, out) = post(
        &mut w,
        &host,
        Some(&token(&kp, "mcp:read")),
        &call("list_projects"),
    );
    assert_eq!(out.step, Step::Continue, "{:?}", out.counter_names());
}

#[test]
fn ipv6_clients_are_limited_by_their_prefix() {
    let kp = key();
    let mut w = WorkerState::new(config(false, &kp), SlotSecret([3; 16]));
    let forged = "Bearer eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.e30.AAAA";
    let mut host = FakeHost::new(None);
    // Burst 3: three addresses of one /64, then a fourth of the same /64 is limited.
    for i in 1..=3 {
        host = from_address(host, format!("2001:db8:0:1::{i}"));
        assert_eq!(status(&post(&mut w, &host, Some(forged), "{}").1), 401);
    }
    host = from_address(host, "2001:db8:0:1:ffff::4".into());
    assert_eq!(status(&post(&mut w, &host, Some(forged), "{}").1), 429);
    // Another /64 has its own budget.
    host = from_address(host, "2001:db8:0:2::1".into());
    assert_eq!(status(&post(&mut w, &host, Some(forged), "{}").1), 401);
}
