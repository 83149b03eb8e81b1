//! The OAuth flow end to end, for real: the authorization server (`authz/server.mjs`, oidc-provider
//! in test mode) issues the tokens, Envoy fetches its JWKS through the `auth_server` cluster, and
//! real MCP clients (the TypeScript SDK with its OAuth client provider, the Inspector CLI) go
//! through Envoy to the backend.
//!
//! One stack for the binary (started with `StackOptions { authz: true, .. }`), cases in parallel.

use std::process::Command;

use anyhow::{Context as _, Result, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_edge_tests::client::*;
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{SERVICE_CLIENT, SERVICE_SECRET, Stack, StackOptions};
use serde_json::{Value, json};

/// The decoded header and payload of a JWT.
fn decode(jwt: &str) -> Result<(Value, Value)> {
    let mut parts = jwt.split('.');
    let mut next = || -> Result<Value> {
        let part = parts.next().context("not a JWT")?;
        Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part)?)?)
    };
    Ok((next()?, next()?))
}

fn service_token(s: &Stack, scope: &str, resource: Option<&str>) -> Result<String> {
    let body = s
        .authz()?
        .client_credentials(SERVICE_CLIENT, SERVICE_SECRET, scope, resource)?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .context("no access_token")
}

fn events<'a>(out: &'a Value, pred: impl Fn(&Value) -> bool + 'a) -> Vec<&'a Value> {
    out["http"]
        .as_array()
        .map(|a| a.iter().filter(|e| pred(e)).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------

fn sdk_client_runs_the_oauth_flow_and_steps_up(s: &Stack) -> Result<()> {
    let out = node_script(
        "oauth_client.mjs",
        &[
            ("MCP_URL", &s.mcp_url),
            ("MCP_LOGIN", "alice"),
            (
                "MCP_CALLS",
                &json!([
                    {"name": "create_project", "arguments": {"name": "OAuth launch"}},
                    {"name": "list_projects", "arguments": {"limit": 10}},
                    {"name": "delete_project", "arguments": {"project_id": "no-such-project"}},
                ])
                .to_string(),
            ),
        ],
    )?;
    let authz_url = &s.authz()?.url;

    // Discovery as the spec describes it: 401 with resource_metadata → PRM → AS metadata →
    // registration → authorization (PKCE S256, resource = this MCP endpoint) → token.
    let first = events(&out, |e| {
        e["method"] == "POST" && e["url"] == s.mcp_url.as_str()
    });
    let challenge = first
        .first()
        .filter(|e| e["status"] == 401)
        .and_then(|e| e["challenge"].as_str())
        .context("the first POST /mcp did not get a 401 challenge")?;
    ensure!(challenge.contains("resource_metadata="), "{challenge}");
    let prm = format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        s.envoy_origin
    );
    ensure!(
        !events(&out, |e| e["url"] == prm.as_str() && e["status"] == 200).is_empty(),
        "PRM not fetched: {}",
        out["http"]
    );
    for (method, path) in [
        ("POST", "/reg"),
        ("POST", "/token"),
        ("GET", "/.well-known/oauth-authorization-server"),
    ] {
        let url = format!("{authz_url}{path}");
        ensure!(
            !events(&out, |e| e["method"] == method
                && e["url"] == url.as_str()
                && e["status"].as_u64().is_some_and(|c| c < 300))
            .is_empty(),
            "no successful {method} {url}: {}",
            out["http"]
        );
    }
    let authorizations = events(&out, |e| e["event"] == "authorize");
    ensure!(authorizations.len() == 2, "{}", out["http"]);
    for a in &authorizations {
        ensure!(a["code_challenge_method"] == "S256", "{a}");
        ensure!(a["resource"] == s.mcp_url.as_str(), "{a}");
    }

    // The first token: for this resource, alice's tenant and claims, the challenge's scopes.
    let first_token = &out["tokens"][0];
    ensure!(first_token["aud"] == s.mcp_url.as_str(), "{first_token}");
    ensure!(first_token["iss"] == authz_url.as_str(), "{first_token}");
    ensure!(first_token["sub"] == "alice", "{first_token}");
    ensure!(first_token["tenant_id"] == "acme", "{first_token}");
    ensure!(
        first_token["data_scope"] == "team:engineering",
        "{first_token}"
    );
    ensure!(first_token["rate_limit_tier"] == "pro", "{first_token}");
    ensure!(
        first_token["scope"] == "mcp:read mcp:write",
        "{first_token}"
    );
    ensure!(first_token.get("allowed_tools").is_none(), "{first_token}");
    ensure!(first_token["has_refresh_token"] == true, "{first_token}");

    // Tools listed and called through Envoy with that token.
    let names = tool_names(&out)?;
    ensure!(names.contains(&"create_project"), "{names:?}");
    ensure!(!names.contains(&"delete_project"), "{names:?}");
    let created = &out["results"][0];
    ensure!(
        structured(&created["result"])["project"]["createdBy"] == "alice",
        "{created}"
    );
    ensure!(created["reauthorized"] == false, "{created}");
    ensure!(out["results"][1]["result"]["isError"] == false, "{out}");

    // Step-up: delete_project needs mcp:admin → 403 insufficient_scope → new authorization with
    // the wider scope → the call passes the edge (the backend answers: no such project).
    let stepped = &out["results"][2];
    ensure!(stepped.get("error").is_none(), "step-up failed: {out}");
    ensure!(stepped["reauthorized"] == true, "{stepped}");
    let denied = events(&out, |e| {
        e["status"] == 403
            && e["challenge"]
                .as_str()
                .is_some_and(|c| c.contains("insufficient_scope"))
    });
    ensure!(
        !denied.is_empty(),
        "no 403 insufficient_scope: {}",
        out["http"]
    );
    let last = out["tokens"]
        .as_array()
        .and_then(|t| t.last())
        .context("tokens")?;
    ensure!(
        last["scope"]
            .as_str()
            .is_some_and(|sc| sc.split(' ').any(|x| x == "mcp:admin")),
        "{last}"
    );
    ensure!(last["aud"] == s.mcp_url.as_str(), "{last}");

    // The refresh token grant gives a token for the same resource and scope.
    let refreshed = &out["refreshed"];
    ensure!(refreshed["aud"] == s.mcp_url.as_str(), "{refreshed}");
    ensure!(refreshed["scope"] == last["scope"], "{refreshed} vs {last}");
    ensure!(refreshed["tenant_id"] == "acme", "{refreshed}");
    Ok(())
}

fn oauth_login(s: &Stack, user: &str, calls: Value) -> Result<Value> {
    node_script(
        "oauth_client.mjs",
        &[
            ("MCP_URL", &s.mcp_url),
            ("MCP_LOGIN", user),
            ("MCP_CALLS", &calls.to_string()),
        ],
    )
}

fn users_get_their_directory_claims_and_no_more(s: &Stack) -> Result<()> {
    let delete = json!({"name": "delete_project", "arguments": {"project_id": "no-such-project"}});
    // bob (acme) has a list of allowed tools: his token carries it, and a tool outside it is a
    // 403 without a step-up challenge (another token would not help), so no new authorization.
    let out = oauth_login(
        s,
        "bob",
        json!([{"name": "list_projects", "arguments": {}}, delete]),
    )?;
    let token = &out["tokens"][0];
    ensure!(
        token["sub"] == "bob" && token["tenant_id"] == "acme",
        "{token}"
    );
    ensure!(
        token["allowed_tools"]
            == json!(["list_projects", "get_project", "list_tasks", "create_task"]),
        "{token}"
    );
    ensure!(
        out["tools"].as_array().is_some_and(|t| t.len() == 4),
        "{}",
        out["tools"]
    );
    ensure!(out["results"][0]["result"]["isError"] == false, "{out}");
    let refused = out["results"][1]["error"].as_str().unwrap_or_default();
    ensure!(refused.contains("allowed_tools"), "{}", out["results"][1]);
    ensure!(
        events(&out, |e| e["event"] == "authorize").len() == 1,
        "{}",
        out["http"]
    );

    // carol (globex, tier free) may not have mcp:admin: the step-up is refused by the server.
    let out = oauth_login(s, "carol", json!([delete]))?;
    let token = &out["tokens"][0];
    ensure!(
        token["tenant_id"] == "globex" && token["rate_limit_tier"] == "free",
        "{token}"
    );
    let refused = out["results"][0]["error"].as_str().unwrap_or_default();
    ensure!(refused.contains("access_denied"), "{}", out["results"][0]);
    ensure!(
        out["tokens"].as_array().is_some_and(|t| t.len() == 1),
        "{}",
        out["tokens"]
    );
    Ok(())
}

fn token_for_another_resource_is_refused(s: &Stack) -> Result<()> {
    let other = &s.authz()?.other_resource;
    let token = service_token(s, "mcp:read", Some(other))?;
    let (_, claims) = decode(&token)?;
    ensure!(claims["aud"] == other.as_str(), "{claims}");
    let m = marker("other-aud");
    let resp = post_mcp(&s.recorded_mcp_url, Some(&token), &call_body(&m))?;
    ensure!(resp.status() == 401, "status {}", resp.status());
    let challenge = header(&resp, "www-authenticate");
    ensure!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    ensure!(
        s.recorder.with_marker(&m).is_empty(),
        "the upstream received a request with another resource's token"
    );
    // The same server, the same client, this resource: accepted.
    let token = service_token(s, "mcp:read", Some(&s.mcp_url))?;
    let resp = post_mcp(&s.mcp_url, Some(&token), &call_body(&m))?;
    ensure!(resp.status() == 200, "status {}", resp.status());
    Ok(())
}

fn client_credentials_token_works_through_envoy(s: &Stack) -> Result<()> {
    // No resource parameter: the server's default resource is the first one, this endpoint.
    let token = service_token(s, "mcp:read mcp:write", None)?;
    let (header, claims) = decode(&token)?;
    ensure!(header["alg"] == "RS256", "{header}");
    ensure!(claims["aud"] == s.mcp_url.as_str(), "{claims}");
    ensure!(claims["sub"] == SERVICE_CLIENT, "{claims}");
    ensure!(claims["tenant_id"] == "acme", "{claims}");
    let out = sdk_client(
        &s.mcp_url,
        &token,
        json!([
            {"name": "create_project", "arguments": {"name": "Nightly report"}},
            {"name": "list_projects", "arguments": {}},
        ]),
    )?;
    // tools/list shows only the service client's allowed_tools.
    let names = tool_names(&out)?;
    ensure!(
        names
            == [
                "create_project",
                "get_analytics",
                "get_project",
                "list_projects",
                "list_tasks"
            ],
        "{names:?}"
    );
    let created = structured(&out["results"][0]);
    ensure!(
        created["project"]["createdBy"] == SERVICE_CLIENT,
        "{created}"
    );
    // A scope the client may not have is refused by the server itself.
    let refused = s
        .authz()?
        .client_credentials(SERVICE_CLIENT, SERVICE_SECRET, "mcp:admin", None);
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("invalid_scope")),
        "{refused:?}"
    );
    Ok(())
}

fn rotated_key_is_accepted_on_first_request(s: &Stack) -> Result<()> {
    let before = service_token(s, "mcp:read", None)?;
    let old_kid = decode(&before)?.0["kid"].clone();
    let kid = s.authz()?.rotate_keys()?;
    // The filter refetches on an unknown kid at most every min_refetch_seconds (1 s in the tests)
    // after its last fetch, which may be the one at Envoy's start a moment ago.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ensure!(old_kid != kid.as_str(), "rotation kept the kid {kid}");
    let token = service_token(s, "mcp:read", None)?;
    ensure!(
        decode(&token)?.0["kid"] == kid.as_str(),
        "not signed by {kid}"
    );
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let resp = post_mcp(&s.mcp_url, Some(&token), &body)?;
    ensure!(
        resp.status() == 200,
        "first request with the new kid: {} {}",
        resp.status(),
        resp.text()?
    );
    // The old key is still published: its tokens keep working until they expire.
    let resp = post_mcp(&s.mcp_url, Some(&before), &body)?;
    ensure!(resp.status() == 200, "old kid: {}", resp.status());
    Ok(())
}

fn authorization_server_metadata(s: &Stack) -> Result<()> {
    let url = &s.authz()?.url;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc: Value = http().get(format!("{url}{path}")).send()?.json()?;
        ensure!(doc["issuer"] == url.as_str(), "{path}: {doc}");
        ensure!(
            doc["code_challenge_methods_supported"] == json!(["S256"]),
            "{doc}"
        );
        ensure!(doc["response_types_supported"] == json!(["code"]), "{doc}");
        ensure!(doc["registration_endpoint"].is_string(), "{doc}");
        ensure!(
            doc["client_id_metadata_document_supported"] == true,
            "{doc}"
        );
        for grant in ["authorization_code", "refresh_token", "client_credentials"] {
            ensure!(
                doc["grant_types_supported"]
                    .as_array()
                    .is_some_and(|g| g.contains(&json!(grant))),
                "{grant}: {doc}"
            );
        }
    }
    // The filter's metadata points at this server.
    let prm: Value = http()
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            s.envoy_origin
        ))
        .send()?
        .json()?;
    ensure!(prm["authorization_servers"] == json!([url]), "{prm}");
    Ok(())
}

/// Runs the Inspector CLI (`mcp-inspector --cli`, Node ≥ 22) with a bearer token.
fn inspector(s: &Stack, token: &str, args: &[&str]) -> Result<Value> {
    let root = mcp_edge_tests::repo_root();
    let home = s.dir().join("inspector-home");
    std::fs::create_dir_all(&home)?;
    let out = Command::new(mcp_edge_tests::procs::node_bin())
        .arg(root.join(
            "tests/node/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js",
        ))
        .args([
            "--cli",
            &s.mcp_url,
            "--transport",
            "http",
            "--format",
            "json",
        ])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(args)
        .env("HOME", &home)
        .output()
        .context("running the inspector")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "inspector {args:?} exited with {}: {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).with_context(|| format!("inspector printed {stdout}"))
}

fn inspector_cli_lists_and_calls_tools(s: &Stack) -> Result<()> {
    let token = service_token(s, "mcp:read mcp:write", None)?;
    let listed = inspector(s, &token, &["--method", "tools/list"])?;
    let names = tool_names(&listed["result"])?;
    ensure!(names.contains(&"list_projects"), "{names:?}");
    ensure!(!names.contains(&"delete_project"), "{names:?}");
    let called = inspector(
        s,
        &token,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "list_projects",
            "--tool-args-json",
            "{}",
        ],
    )?;
    let result = &called["result"];
    ensure!(result["isError"] == false, "{called}");
    ensure!(
        result["structuredContent"]["projects"].is_array(),
        "{called}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------

const CASES: &[Case] = mcp_edge_tests::cases![
    sdk_client_runs_the_oauth_flow_and_steps_up,
    users_get_their_directory_claims_and_no_more,
    token_for_another_resource_is_refused,
    client_credentials_token_works_through_envoy,
    rotated_key_is_accepted_on_first_request,
    authorization_server_metadata,
    inspector_cli_lists_and_calls_tools,
];

fn main() {
    let options = StackOptions {
        authz: true,
        ..StackOptions::default()
    };
    mcp_edge_tests::runner::run_with_options(&options, CASES);
}
