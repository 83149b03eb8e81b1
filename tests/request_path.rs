//! The whole request path, for real: MCP clients → Envoy (real .wasm) → backend → Redis.
//!
//! One stack is started for this test binary (Envoy once), the cases run against it in parallel,
//! and the stack is stopped by pid before the process exits. Every denial is sent through the
//! listener whose upstream records requests, so each one also proves that nothing got through.

use std::process::Command;

use anyhow::{Context as _, Result, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::*;
use mcp_edge_contract::assertion::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use mcp_edge_contract::{
    AssertionSigner, Binding, GatewayKey, Identity, IdentityClaims, Tier, body_digest, headers as h,
};
use mcp_edge_tests::client::*;
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::Stack;
use reqwest::blocking::Response;
use serde_json::{Map, Value, json};
use xtask::{DevKeys, claims_for};

// ---------------------------------------------------------------------------------------------

fn sdk_client_lists_and_calls_tools(s: &Stack) -> Result<()> {
    let token = s.token("tenant-sdk")?;
    let out = sdk_client(
        &s.mcp_url,
        &token,
        json!([
            {"name": "create_project", "arguments": {"name": "Launch plan", "description": "Q3 launch"}},
            {"name": "list_projects", "arguments": {"limit": 10}},
        ]),
    )?;
    let names = tool_names(&out)?;
    for tool in ["list_projects", "create_project", "get_project"] {
        ensure!(names.contains(&tool), "tools/list lacks {tool}: {names:?}");
    }
    let created = structured(&out["results"][0]);
    let id = created["project"]["id"]
        .as_str()
        .context("created project id")?
        .to_string();
    ensure!(created["project"]["name"] == "Launch plan", "{created}");
    let listed = structured(&out["results"][1])["projects"]
        .as_array()
        .context("projects")?
        .clone();
    ensure!(
        listed.iter().any(|p| p["id"] == id.as_str()),
        "created project not listed: {listed:?}"
    );

    let out = sdk_client(
        &s.mcp_url,
        &token,
        json!([{"name": "get_project", "arguments": {"project_id": id}}]),
    )?;
    ensure!(
        structured(&out["results"][0])["project"]["createdBy"] == "user-of-tenant-sdk",
        "{out}"
    );
    Ok(())
}

fn no_token_gets_challenge_pointing_at_served_metadata(s: &Stack) -> Result<()> {
    // This case runs alone: the outcome counters move for its requests only.
    let before = s.stats("mcp_edge.outcome")?;
    let m = marker("no-token");
    let resp = post_mcp(&s.recorded_mcp_url, None, &call_body(&m))?;
    ensure!(resp.status() == 401, "status {}", resp.status());
    let challenge = header(&resp, "www-authenticate");
    ensure!(challenge.starts_with("Bearer "), "{challenge}");
    ensure!(
        !challenge.contains("error="),
        "no token must not carry error=: {challenge}"
    );
    let body: Value = resp.json()?;
    ensure!(
        body["jsonrpc"] == "2.0" && body["id"].is_null() && body["error"]["code"].is_i64(),
        "{body}"
    );
    ensure!(
        s.recorder.with_marker(&m).is_empty(),
        "the upstream received a denied request"
    );

    // The same on the real listener, then follow resource_metadata.
    let resp = post_mcp(&s.mcp_url, None, &call_body(&m))?;
    let challenge = header(&resp, "www-authenticate");
    let url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context("no resource_metadata in the challenge")?;
    ensure!(
        url == format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            s.envoy_origin
        ),
        "{url}"
    );
    for doc_url in [
        url.to_string(),
        format!("{}/.well-known/oauth-protected-resource", s.envoy_origin),
    ] {
        let resp = http().get(&doc_url).send()?;
        ensure!(resp.status() == 200, "{doc_url}: {}", resp.status());
        let doc: Value = resp.json()?;
        ensure!(doc["resource"] == s.mcp_url.as_str(), "{doc}");
        ensure!(
            doc["authorization_servers"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{doc}"
        );
        ensure!(
            doc["bearer_methods_supported"] == json!(["header"]),
            "{doc}"
        );
        ensure!(
            doc["scopes_supported"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("mcp:read"))),
            "{doc}"
        );
    }
    let after = s.stats("mcp_edge.outcome")?;
    let counted = after.filter_since(&before, "outcome.denied.no_token");
    ensure!(
        counted == 2,
        "outcome.denied.no_token grew by {counted} for the two requests without a token"
    );
    Ok(())
}

/// Claims for the stack's issuer/audience with the given adjustments.
fn claims(s: &Stack, tenant: &str) -> JWTClaims<Map<String, Value>> {
    claims_for(&s.spec(tenant))
}

fn at(
    mut c: JWTClaims<Map<String, Value>>,
    iat: u64,
    exp: Option<u64>,
    nbf: Option<u64>,
) -> JWTClaims<Map<String, Value>> {
    c.issued_at = Some(Duration::from_secs(iat));
    c.expires_at = exp.map(Duration::from_secs);
    c.invalid_before = nbf.map(Duration::from_secs);
    c
}

fn forge(header: Value, payload: Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn refused_tokens_get_401_invalid_token(s: &Stack) -> Result<()> {
    let t = now();
    let tenant = "tenant-refused";
    let mut cases: Vec<(&str, String)> = vec![
        (
            "expired 10 minutes ago",
            s.sign(
                "RS256",
                at(claims(s, tenant), t - 1200, Some(t - 600), Some(t - 1200)),
            )?,
        ),
        (
            "no exp",
            s.sign("RS256", at(claims(s, tenant), t, None, Some(t)))?,
        ),
        (
            "not yet valid",
            s.sign(
                "RS256",
                at(claims(s, tenant), t, Some(t + 900), Some(t + 300)),
            )?,
        ),
        (
            "wrong iss",
            s.sign(
                "RS256",
                claims(s, tenant).with_issuer("http://127.0.0.1:1/evil"),
            )?,
        ),
        (
            "wrong aud",
            s.sign(
                "RS256",
                claims(s, tenant).with_audience("http://127.0.0.1:1/other-mcp"),
            )?,
        ),
    ];
    let mut numeric = claims(s, tenant);
    numeric.custom.insert("tenant_id".into(), json!(42));
    cases.push(("numeric tenant_id", s.sign("ES256", numeric)?));
    let mut null_tools = claims(s, tenant);
    null_tools
        .custom
        .insert("allowed_tools".into(), Value::Null);
    cases.push(("allowed_tools null", s.sign("EdDSA", null_tools)?));
    // Same kid as the issuer's key, other key material.
    let impostor = DevKeys::generate("1")?;
    cases.push(("bad signature", impostor.sign("RS256", claims(s, tenant))?));
    let stranger = DevKeys::generate("stranger")?;
    cases.push(("unknown kid", stranger.sign("EdDSA", claims(s, tenant))?));
    let payload = json!({"iss": s.issuer, "aud": s.mcp_url, "sub": "u", "tenant_id": tenant, "exp": t + 600, "iat": t});
    cases.push((
        "alg none",
        forge(json!({"alg": "none", "typ": "JWT"}), payload.clone(), b""),
    ));
    // HS256 keyed with the issuer's public key, the classic algorithm confusion.
    let jwks: Value = http().get(format!("{}/jwks", s.issuer)).send()?.json()?;
    let rsa_jwk = jwks["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kty"] == "RSA"))
        .context("rsa jwk")?
        .clone();
    let kid = rsa_jwk["kid"].as_str().unwrap_or_default();
    let hs = HS256Key::from_bytes(rsa_jwk.to_string().as_bytes()).with_key_id(kid);
    cases.push((
        "HS256 keyed with the public key",
        hs.authenticate(claims(s, tenant))?,
    ));
    cases.push(("garbage", "not.a.jwt".into()));

    for (name, token) in cases {
        let m = marker(&name.replace(' ', "-"));
        let resp = post_mcp(&s.recorded_mcp_url, Some(&token), &call_body(&m))?;
        ensure!(resp.status() == 401, "{name}: status {}", resp.status());
        let challenge = header(&resp, "www-authenticate");
        ensure!(
            challenge.contains("error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        ensure!(
            challenge.contains("resource_metadata=\""),
            "{name}: {challenge}"
        );
        let body: Value = resp.json()?;
        ensure!(
            body["error"]["code"].is_i64() && body["id"].is_null(),
            "{name}: {body}"
        );
        ensure!(
            s.recorder.with_marker(&m).is_empty(),
            "{name}: the upstream received it"
        );
    }

    // A token in the query string is not a token.
    let good = s.token(tenant)?;
    let m = marker("query-token");
    let resp = http()
        .post(format!("{}?access_token={good}", s.recorded_mcp_url))
        .header("content-type", "application/json")
        .body(call_body(&m))
        .send()?;
    ensure!(resp.status() == 401, "query token: {}", resp.status());
    ensure!(
        !header(&resp, "www-authenticate").contains("error="),
        "query token counts as no token"
    );
    ensure!(
        s.recorder.with_marker(&m).is_empty(),
        "query token: the upstream received it"
    );
    Ok(())
}

fn every_algorithm_verifies_in_wasm(s: &Stack) -> Result<()> {
    for alg in ["RS256", "ES256", "EdDSA"] {
        let token = s.sign(alg, claims(s, "tenant-algs"))?;
        let m = marker(&format!("alg-{alg}"));
        let resp = post_mcp(&s.recorded_mcp_url, Some(&token), &call_body(&m))?;
        ensure!(resp.status() == 200, "{alg}: {}", resp.status());
        ensure!(
            s.recorder.with_marker(&m).len() == 1,
            "{alg}: not forwarded once"
        );
    }
    Ok(())
}

fn upstream_gets_signed_identity_and_never_the_token(s: &Stack) -> Result<()> {
    let token = s.token("tenant-real")?;
    let m = marker("spoof");
    let body = call_body(&m);
    let resp = http()
        .post(format!("{}?trace=1", s.recorded_mcp_url))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .header("X-MCP-Tenant-Id", "tenant-victim")
        .header("x-mcp-tenant-id", "tenant-victim-2")
        .header("X-Mcp-Scopes", "mcp:admin")
        .header("x-mcp-gateway-signature", "forged")
        .header("x-mcp-gateway-time", "1")
        .body(body.clone())
        .send()?;
    ensure!(resp.status() == 200, "status {}", resp.status());
    let got = s.recorder.with_marker(&m);
    ensure!(
        got.len() == 1,
        "expected one forwarded request, got {}",
        got.len()
    );
    let r = &got[0];
    ensure!(
        r.header_values("authorization").is_empty(),
        "the client's Authorization header reached the upstream"
    );
    // Contract v3: of the trusted namespace only the one assertion arrives, none of the
    // client's x-mcp-* headers.
    let trusted: Vec<&String> = r
        .headers
        .iter()
        .map(|(n, _)| n)
        .filter(|n| h::is_trusted(n))
        .collect();
    ensure!(
        trusted == vec![h::IDENTITY],
        "x-mcp-* headers upstream: {trusted:?}"
    );
    ensure!(r.body == body.as_bytes(), "the body changed on the way");
    ensure!(r.path == "/mcp?trace=1", "path {}", r.path);
    let vouched = r.vouched(&s.secret)?;
    let id = &vouched.identity;
    ensure!(
        id.tenant_id == "tenant-real"
            && id.scopes == ["mcp:read", "mcp:write"]
            && id.user_id == "user-of-tenant-real"
            && id.tier == Tier::Pro,
        "{id:?}"
    );
    ensure!(
        vouched.request_id.starts_with("mcpe-"),
        "jti {}",
        vouched.request_id
    );
    Ok(())
}

fn spoofed_tenant_header_does_not_reach_backend_decisions(s: &Stack) -> Result<()> {
    let name = marker("spoofed-project");
    let token = s.token("tenant-honest")?;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "create_project", "arguments": {"name": name}}});
    let resp = http()
        .post(&s.mcp_url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .header("X-MCP-TENANT-ID", "tenant-target")
        .header("x-mcp-tenant-id", "tenant-target")
        .body(init.to_string())
        .send()?;
    ensure!(resp.status() == 200, "create: {}", resp.status());
    let created: Value = resp.json()?;
    ensure!(created["result"]["isError"] == false, "{created}");
    let list = json!([{"name": "list_projects", "arguments": {"limit": 100}}]);
    let target = sdk_client(&s.mcp_url, &s.token("tenant-target")?, list.clone())?;
    ensure!(
        !target.to_string().contains(&name),
        "the spoofed tenant sees the project"
    );
    let honest = sdk_client(&s.mcp_url, &token, list)?;
    ensure!(
        honest.to_string().contains(&name),
        "the real tenant does not see its project"
    );
    Ok(())
}

fn tenants_are_isolated_in_redis(s: &Stack) -> Result<()> {
    let a = s.token("tenant-a")?;
    let b = s.token("tenant-b")?;
    let out = sdk_client(
        &s.mcp_url,
        &a,
        json!([{"name": "create_project", "arguments": {"name": "A secret"}}]),
    )?;
    let id = structured(&out["results"][0])["project"]["id"]
        .as_str()
        .context("id")?
        .to_string();
    let out = sdk_client(
        &s.mcp_url,
        &b,
        json!([{"name": "list_projects", "arguments": {}}, {"name": "get_project", "arguments": {"project_id": id}}]),
    )?;
    let listed = structured(&out["results"][0])["projects"]
        .as_array()
        .context("projects")?;
    ensure!(
        listed.iter().all(|p| p["id"] != id.as_str()),
        "tenant B lists A's project"
    );
    ensure!(
        out["results"][1]["isError"] == json!(true),
        "tenant B can get A's project: {}",
        out["results"][1]
    );
    let out = sdk_client(
        &s.mcp_url,
        &a,
        json!([{"name": "get_project", "arguments": {"project_id": id}}]),
    )?;
    ensure!(
        structured(&out["results"][0])["project"]["name"] == "A secret",
        "{out}"
    );
    // The data really is in Redis, under the tenant's key.
    let port = s.redis_url.rsplit(':').next().unwrap_or_default();
    let keys = Command::new("redis-cli")
        .args(["-p", port, "--scan", "--pattern", "*tenant-a*"])
        .output()?;
    let keys = String::from_utf8_lossy(&keys.stdout);
    ensure!(
        keys.contains("tenant-a"),
        "no tenant-a keys in Redis: {keys:?}"
    );
    Ok(())
}

/// The identity assertion for `tenant` as mallory would send it, signed over `signed_body` with the
/// stack's secret, or carrying `signature` instead.
fn gateway_headers(
    s: &Stack,
    tenant: &str,
    signed_body: &[u8],
    signature: Option<String>,
) -> Result<Vec<(&'static str, String)>> {
    let identity = Identity {
        tenant_id: tenant.to_string(),
        user_id: "mallory".into(),
        scopes: vec!["mcp:read".into(), "mcp:write".into(), "mcp:admin".into()],
        data_scope: String::new(),
        tier: Tier::Enterprise,
    };
    let digest = body_digest(signed_body);
    let binding = Binding {
        method: "POST",
        path: "/mcp",
        protocol_version: "",
        request_id: "r",
        issued_at: now(),
        body_digest: &digest,
    };
    let key = GatewayKey::new(s.secret.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut assertion = AssertionSigner::new(&key, DEFAULT_ISSUER, DEFAULT_AUDIENCE)
        .sign(
            &IdentityClaims::new(&identity).map_err(|e| anyhow::anyhow!("{e}"))?,
            &binding,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(forged) = signature
        && let Some((signed, _)) = assertion.rsplit_once('.')
    {
        assertion = format!("{signed}.{forged}");
    }
    Ok(vec![(h::IDENTITY, assertion)])
}

fn backend_refuses_requests_without_a_valid_gateway_signature(s: &Stack) -> Result<()> {
    // Straight to the backend, bypassing Envoy: writes for a tenant no other case uses.
    let tenant = "tenant-forged";
    let url = format!("http://{}/mcp", s.backend_addr);
    let create = |name: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "create_project", "arguments": {"name": name}}})
        .to_string()
    };
    let send = |body: &str, extra: &[(&str, String)]| -> Result<Response> {
        let mut req = http()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        for (n, v) in extra {
            req = req.header(*n, v);
        }
        Ok(req.send()?)
    };
    let forged_name = marker("forged-write");
    let body = create(&forged_name);
    let resp = send(&body, &[])?;
    ensure!(resp.status() == 401, "unsigned: {}", resp.status());
    let v: Value = resp.json()?;
    ensure!(v["error"]["code"].is_i64(), "{v}");
    let zero = URL_SAFE_NO_PAD.encode([0u8; 32]);
    let forged = gateway_headers(s, tenant, body.as_bytes(), Some(zero))?;
    ensure!(
        send(&body, &forged)?.status() == 401,
        "forged signature accepted"
    );
    // Signed with the right secret but for another body: still refused.
    let other_body = gateway_headers(s, tenant, b"{}", None)?;
    ensure!(
        send(&body, &other_body)?.status() == 401,
        "a signature over another body was accepted"
    );

    // The control: signed for its body as the gateway signs, a write is stored and listed.
    let signed_name = marker("signed-write");
    let signed_body = create(&signed_name);
    let resp = send(
        &signed_body,
        &gateway_headers(s, tenant, signed_body.as_bytes(), None)?,
    )?;
    ensure!(resp.status() == 200, "signed write: {}", resp.status());
    let v: Value = resp.json()?;
    ensure!(v["result"]["isError"] == false, "signed write: {v}");

    // The tenant's own listing, through Envoy with its real token.
    let out = sdk_client(
        &s.mcp_url,
        &s.token(tenant)?,
        json!([{"name": "list_projects", "arguments": {"limit": 100}}]),
    )?;
    let names: Vec<&str> = structured(&out["results"][0])["projects"]
        .as_array()
        .context("projects")?
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    ensure!(
        names.contains(&signed_name.as_str()),
        "the signed write is not listed: {names:?}"
    );
    ensure!(
        !names.contains(&forged_name.as_str()),
        "a write without a valid signature was stored: {names:?}"
    );
    Ok(())
}

fn key_rotation_is_picked_up_on_first_unknown_kid(s: &Stack) -> Result<()> {
    let fresh = s.rotate_keys("rotated")?;
    let token = fresh.sign("ES256", claims(s, "tenant-rotation"))?;
    // Each worker refetches on an unknown kid at most once per `min_refetch_seconds` (1 s in the
    // tests) after its last fetch, which may be its start or another case's unknown kid a moment
    // ago: wait that long, then the new kid must be accepted within a few more attempts (another
    // case may still start a fetch in between; the key must arrive all the same).
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let since = std::time::Instant::now();
    loop {
        let m = marker("rotation");
        let resp = post_mcp(&s.recorded_mcp_url, Some(&token), &call_body(&m))?;
        let status = resp.status();
        if status == 200 {
            break;
        }
        let challenge = header(&resp, "www-authenticate");
        ensure!(
            status == 401 && challenge.contains("invalid_token"),
            "token with the new kid: {status} {challenge}"
        );
        ensure!(
            since.elapsed() < std::time::Duration::from_secs(4),
            "the new kid is still refused after {:?}: {challenge}",
            since.elapsed()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    // Tokens signed by the previous keys stay valid while they are published.
    let resp = post_mcp(
        &s.recorded_mcp_url,
        Some(&s.token("tenant-rotation")?),
        &call_body(&marker("rotation-old")),
    )?;
    ensure!(
        resp.status() == 200,
        "token with the old kid: {}",
        resp.status()
    );
    Ok(())
}

fn only_the_mcp_endpoint_is_served(s: &Stack) -> Result<()> {
    let token = s.token("tenant-paths")?;
    let resp = http()
        .get(format!("{}/admin", s.envoy_origin))
        .bearer_auth(&token)
        .send()?;
    ensure!(resp.status() == 404, "/admin: {}", resp.status());
    let v: Value = resp.json()?;
    ensure!(v["error"]["code"].is_i64(), "{v}");
    let resp = http()
        .put(&s.mcp_url)
        .bearer_auth(&token)
        .body("{}")
        .send()?;
    ensure!(resp.status() == 405, "PUT: {}", resp.status());
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// Issue 9, finding 1: the backend keeps no sessions, so GET (an SSE stream) and DELETE (a
/// session's end) are answered by the edge after authentication — no body is buffered for them
/// and nothing reaches the upstream.
fn get_and_delete_are_answered_at_the_edge(s: &Stack) -> Result<()> {
    let token = s.token("tenant-sessions")?;
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let m = marker(&format!("session-{method}"));
        let url = format!("{}?m={m}", s.recorded_mcp_url);
        let resp = http()
            .request(method.clone(), &url)
            .bearer_auth(&token)
            .send()?;
        let (status, allow) = (resp.status().as_u16(), header(&resp, "allow"));
        let body: Value = resp.json()?;
        ensure!(
            status == 405 && allow == "POST",
            "{method}: {status} allow={allow:?}"
        );
        ensure!(body["error"]["code"] == -32046, "{method}: {body}");
        ensure!(
            s.recorder.with_marker(&m).is_empty(),
            "{method} reached the upstream"
        );
    }
    Ok(())
}

/// Issue 9, finding 7: an error answer to `tools/list` (here the backend's 406 for an `Accept`
/// it cannot serve) reaches the client as the backend gave it, not as a vague edge error.
fn tools_list_errors_pass_unchanged(s: &Stack) -> Result<()> {
    let token = s.token("tenant-list-error")?;
    let resp = http()
        .post(&s.mcp_url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("accept", "text/plain")
        .header("mcp-protocol-version", "2025-06-18")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .send()?;
    let status = resp.status().as_u16();
    let text = resp.text()?;
    ensure!(
        status == 406,
        "expected the backend's 406, got {status}: {text}"
    );
    ensure!(
        !text.contains("could not filter the tool list"),
        "the edge replaced the backend's answer: {text}"
    );
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    get_and_delete_are_answered_at_the_edge,
    tools_list_errors_pass_unchanged,
    sdk_client_lists_and_calls_tools,
    refused_tokens_get_401_invalid_token,
    every_algorithm_verifies_in_wasm,
    upstream_gets_signed_identity_and_never_the_token,
    spoofed_tenant_header_does_not_reach_backend_decisions,
    tenants_are_isolated_in_redis,
    backend_refuses_requests_without_a_valid_gateway_signature,
    key_rotation_is_picked_up_on_first_unknown_kid,
    only_the_mcp_endpoint_is_served;
    alone: no_token_gets_challenge_pointing_at_served_metadata,
];

fn main() {
    mcp_edge_tests::runner::run(CASES);
}
