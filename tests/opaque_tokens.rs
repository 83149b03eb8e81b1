//! Opaque access tokens end to end (RFC 7662): the authorization server (`authz/server.mjs`,
//! oidc-provider in test mode) issues opaque tokens for this stack's MCP resource, and Envoy's
//! filter, configured with `introspection`, asks its introspection endpoint through the
//! `auth_server` cluster with the credentials of the VM's environment.
//!
//! One stack for the binary; every case uses its own tokens. The cases that count the server's
//! introspections run alone, so no other case's introspection moves the count.

use anyhow::{Context as _, Result, ensure};
use mcp_edge_tests::client::*;
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{SERVICE_CLIENT, SERVICE_SECRET, Stack, StackOptions};
use serde_json::{Value, json};

/// A fresh opaque token of the service client for this stack's MCP resource.
fn opaque_token(s: &Stack, scope: &str) -> Result<String> {
    let body =
        s.authz()?
            .client_credentials(SERVICE_CLIENT, SERVICE_SECRET, scope, Some(&s.mcp_url))?;
    let token = body["access_token"].as_str().context("no access_token")?;
    ensure!(
        token.split('.').count() == 1,
        "not an opaque token: {token}"
    );
    Ok(token.to_string())
}

/// `recorded_mcp_url` is the same filter in front of the recording upstream, on the same resource
/// path; the recorded request shows the identity headers the edge signed.
fn recorded_tenant(s: &Stack, token: &str, name: &str) -> Result<(u16, Option<String>)> {
    let m = marker(name);
    let resp = post_mcp(&s.recorded_mcp_url, Some(token), &call_body(&m))?;
    let status = resp.status().as_u16();
    let tenant = match s.recorder.with_marker(&m).first() {
        Some(r) => Some(r.vouched(&s.secret)?.identity.tenant_id),
        None => None,
    };
    Ok((status, tenant))
}

// ---------------------------------------------------------------------------------------------

fn opaque_token_reaches_the_backend_as_its_tenant(s: &Stack) -> Result<()> {
    let token = opaque_token(s, "mcp:read mcp:write")?;
    let calls = json!([{"name": "create_project", "arguments": {"name": "Opaque report"}}]);
    let out = sdk_client(&s.mcp_url, &token, calls)?;
    // The allowed_tools of the introspection answer filter tools/list, as a JWT's would.
    let names = tool_names(&out)?;
    ensure!(
        names.len() == 5 && names.contains(&"get_analytics") && !names.contains(&"delete_project"),
        "{names:?}"
    );
    // The user is the introspection answer's client_id (a client-credentials token has no sub).
    let creator = &structured(&out["results"][0])["project"]["createdBy"];
    ensure!(creator == SERVICE_CLIENT, "{out}");
    let (status, tenant) = recorded_tenant(s, &token, "opaque-tenant")?;
    ensure!(status == 200, "status {status}");
    ensure!(tenant.as_deref() == Some("acme"), "tenant {tenant:?}");
    Ok(())
}

/// Runs alone (no other case introspects meanwhile) and on one connection (one worker's cache):
/// the first request is introspected exactly once, the five after it not at all.
fn second_request_is_served_from_the_cache(s: &Stack) -> Result<()> {
    let token = opaque_token(s, "mcp:read")?;
    let client = http();
    let introspections = s.authz()?.introspections()?;
    for i in 0..6 {
        let m = marker(&format!("opaque-cache-{i}"));
        let resp = client
            .post(&s.recorded_mcp_url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(&token)
            .body(call_body(&m))
            .send()?;
        ensure!(
            resp.status() == 200,
            "request {i}: status {}",
            resp.status()
        );
        let made = s.authz()?.introspections()? - introspections;
        ensure!(
            made == 1,
            "after request {i} the edge has introspected {made} times (want exactly 1)"
        );
    }
    Ok(())
}

fn revoked_and_unknown_opaque_tokens_get_401(s: &Stack) -> Result<()> {
    let token = opaque_token(s, "mcp:read")?;
    // Revoked before its first use: the introspection endpoint answers active: false.
    let resp = http()
        .post(format!("{}/token/revocation", s.authz()?.url))
        .basic_auth(SERVICE_CLIENT, Some(SERVICE_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_encode(&[("token", &token)]))
        .send()?;
    ensure!(
        resp.status() == 200,
        "revocation answered {}",
        resp.status()
    );
    for (name, t) in [
        ("revoked", token.as_str()),
        ("unknown", "cvRiSc1R1skgG4wNvd1JdOGgXYVsB4XTI0psVB99ThX"),
    ] {
        let m = marker(name);
        let resp = post_mcp(&s.recorded_mcp_url, Some(t), &call_body(&m))?;
        ensure!(resp.status() == 401, "{name}: status {}", resp.status());
        let challenge = header(&resp, "www-authenticate");
        ensure!(
            challenge.contains("error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        let body: Value = resp.json()?;
        ensure!(body["error"]["code"].is_i64(), "{name}: {body}");
        ensure!(
            s.recorder.with_marker(&m).is_empty(),
            "{name}: reached the upstream"
        );
    }
    Ok(())
}

fn jwts_are_verified_not_introspected(s: &Stack) -> Result<()> {
    // The other resource of the server still gets JWTs.
    let body = s.authz()?.client_credentials(
        SERVICE_CLIENT,
        SERVICE_SECRET,
        "mcp:read",
        Some(&s.authz()?.other_resource),
    )?;
    let jwt = body["access_token"].as_str().context("no access_token")?;
    ensure!(jwt.split('.').count() == 3, "not a JWT: {jwt}");
    // A JWT goes through signature verification, not introspection: this one (for another
    // resource) is refused for its audience, which only the JWT checks can tell.
    let introspections = s.authz()?.introspections()?;
    let m = marker("jwt-other-aud");
    let resp = post_mcp(&s.recorded_mcp_url, Some(jwt), &call_body(&m))?;
    let made = s.authz()?.introspections()? - introspections;
    ensure!(made == 0, "a JWT was introspected ({made} requests)");
    ensure!(resp.status() == 401, "status {}", resp.status());
    let challenge = header(&resp, "www-authenticate");
    let text = resp.text()?;
    ensure!(
        format!("{challenge} {text}").contains("not issued for this resource"),
        "{challenge} {text}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------

const CASES: &[Case] = mcp_edge_tests::cases![
    opaque_token_reaches_the_backend_as_its_tenant,
    revoked_and_unknown_opaque_tokens_get_401;
    alone: second_request_is_served_from_the_cache,
    jwts_are_verified_not_introspected,
];

fn main() {
    let options = StackOptions {
        authz: true,
        opaque_tokens: true,
        plugin_overrides: json!({
            "introspection": {
                "cluster": "auth_server",
                "path": "/token/introspection",
                "authority": "127.0.0.1",
                "client_id_env": "MCP_EDGE_INTROSPECTION_CLIENT_ID",
                "client_secret_env": "MCP_EDGE_INTROSPECTION_CLIENT_SECRET",
                "timeout_ms": 2000,
                "max_cache_seconds": 60
            }
        }),
        ..StackOptions::default()
    };
    mcp_edge_tests::runner::run_with_options(&options, CASES);
}
