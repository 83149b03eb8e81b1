//! A browser client, in a real browser: the MCP Inspector's web UI (the version tests/node pins)
//! driven by Debian's headless Chromium through playwright-core (tests/node/browser_inspector.mjs)
//! against the whole stack: Envoy with the real `.wasm`, the backend, Redis and the OAuth
//! authorization server (`authz/`, its demo login page and consent, not the test-mode shortcut).
//!
//! The Inspector 2.x web UI talks to MCP servers through its own Node server (`/api/mcp/*`,
//! `/api/fetch`), so the edge sees its MCP requests without an `Origin`; the browser itself meets
//! the authorization server's pages. The edge's CORS answers are driven from the same browser
//! page the way a browser-based MCP client meets them: `fetch` from the Inspector's origin
//! (listed in the stack's `allowed_origins`) and from an origin that is not listed.
//!
//! The screenshots the script takes are written to `$BROWSER_SCREENSHOTS` when set (how
//! docs/connect/ was made), else to the stack's temporary directory.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use mcp_edge_tests::client::{header, node_script, post_mcp};
use mcp_edge_tests::procs::{Proc, cargo_bin, free_port, node_bin};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{SERVICE_CLIENT, SERVICE_SECRET, Stack, StackOptions};
use serde_json::{Value, json};

/// The demo user the browser logs in as: acme, team:engineering (the service client's data scope,
/// so the project it creates is hers to see), granted `mcp:admin` too, though the Inspector asks
/// only for the challenge's scopes: `delete_project` must not be listed.
const LOGIN: &str = "alice";

/// The ports the Inspector's web server binds (chosen before the stack starts, since the edge's
/// `allowed_origins` must name the UI's origin).
struct InspectorPorts {
    ui: u16,
    sandbox: u16,
    app_origin: u16,
}

static PORTS: OnceLock<InspectorPorts> = OnceLock::new();

fn ports() -> Result<&'static InspectorPorts> {
    PORTS.get().context("the Inspector's ports were not chosen")
}

fn ui_origin(ports: &InspectorPorts) -> String {
    format!("http://127.0.0.1:{}", ports.ui)
}

/// Starts the Inspector's web UI (`mcp-inspector --web`) on 127.0.0.1 with a known session token,
/// no browser of its own and secrets in memory, preconfigured with the edge's MCP URL.
fn start_inspector(s: &Stack, ports: &InspectorPorts, api_token: &str) -> Result<Proc> {
    let home = s.dir().join("inspector-web-home");
    std::fs::create_dir_all(&home)?;
    let mut cmd = Command::new(node_bin());
    cmd.arg(mcp_edge_tests::repo_root().join(
        "tests/node/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js",
    ))
    .args(["--web", "--transport", "http", "--server-url", &s.mcp_url])
    .env("HOME", &home)
    .env("MCP_STORAGE_DIR", home.join("storage"))
    .env("HOST", "127.0.0.1")
    .env("CLIENT_PORT", ports.ui.to_string())
    .env("MCP_SANDBOX_PORT", ports.sandbox.to_string())
    .env("MCP_APP_ORIGIN_PORT", ports.app_origin.to_string())
    .env("MCP_INSPECTOR_API_TOKEN", api_token)
    .env("MCP_INSPECTOR_SECRET_STORE", "memory")
    .env("MCP_AUTO_OPEN_ENABLED", "false");
    let mut inspector = Proc::spawn("inspector-web", cmd, s.dir())?;
    let line = inspector.wait_for_log(
        &format!("{}?MCP_INSPECTOR_API_TOKEN=", ui_origin(ports)),
        Duration::from_secs(60),
    )?;
    ensure!(line.contains(api_token), "{line}");
    Ok(inspector)
}

fn service_token(s: &Stack) -> Result<String> {
    let body = s.authz()?.client_credentials(
        SERVICE_CLIENT,
        SERVICE_SECRET,
        "mcp:read mcp:write",
        None,
    )?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .context("no access_token")
}

/// Creates a project in tenant acme (the service client's), whose name the browser must then see
/// in the result of bob's `list_projects` (same tenant).
fn create_project(s: &Stack, token: &str, name: &str) -> Result<()> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "create_project", "arguments": {"name": name}}});
    let resp = post_mcp(&s.mcp_url, Some(token), &body.to_string())?;
    let status = resp.status();
    let text = resp.text()?;
    ensure!(status == 200 && text.contains(name), "{status} {text}");
    Ok(())
}

/// The tools a token holding `granted` scopes (and `allowed_tools`, when set) may call, by the
/// backend's tool catalogue (`mcp-edge-backend --print-tool-scopes`, what envoy.yaml's
/// `tool_scopes` is written from).
fn tools_allowed(granted: &[&str], allowed_tools: Option<&[Value]>) -> Result<Vec<String>> {
    let out = Command::new(cargo_bin("mcp-edge-backend")?)
        .arg("--print-tool-scopes")
        .output()?;
    ensure!(out.status.success(), "--print-tool-scopes: {}", out.status);
    let scopes: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout)?;
    let mut tools: Vec<String> = scopes
        .iter()
        .filter(|(_, scope)| scope.as_str().is_some_and(|s| granted.contains(&s)))
        .filter(|(tool, _)| {
            allowed_tools.is_none_or(|list| list.iter().any(|t| t.as_str() == Some(tool.as_str())))
        })
        .map(|(tool, _)| tool.clone())
        .collect();
    tools.sort();
    Ok(tools)
}

fn screenshot_dir(s: &Stack) -> PathBuf {
    std::env::var_os("BROWSER_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| s.dir().join("screenshots"))
}

// ---------------------------------------------------------------------------------------------

fn inspector_web_ui_logs_in_lists_and_calls_tools(s: &Stack) -> Result<()> {
    let ports = ports()?;
    let api_token = format!("browser-test-{}", std::process::id());
    let _inspector = start_inspector(s, ports, &api_token)?;
    let token = service_token(s)?;
    let project = format!("Browser launch {}", std::process::id());
    create_project(s, &token, &project)?;
    let shots = screenshot_dir(s);
    std::fs::create_dir_all(&shots)?;
    let authz = s.authz()?;

    let before = s.stats("mcp_edge")?;
    let out = node_script(
        "browser_inspector.mjs",
        &[
            (
                "INSPECTOR_URL",
                &format!("{}/?MCP_INSPECTOR_API_TOKEN={api_token}", ui_origin(ports)),
            ),
            ("MCP_URL", &s.mcp_url),
            ("AUTHZ_URL", &authz.url),
            ("LOGIN", LOGIN),
            ("CALL_TOOL", "list_projects"),
            ("EXPECT_TEXT", &project),
            ("SERVICE_TOKEN", &token),
            (
                "OTHER_ORIGIN_URL",
                &format!("{}/.well-known/openid-configuration", authz.url),
            ),
            ("SCREENSHOTS", &shots.to_string_lossy()),
        ],
    )?;

    // The browser went through the authorization server's pages: the authorization request
    // (PKCE S256, this resource), the demo login page, then back to the Inspector.
    let authorize = &out["authorize"];
    ensure!(authorize["code_challenge_method"] == "S256", "{out}");
    ensure!(authorize["resource"] == s.mcp_url.as_str(), "{out}");
    ensure!(
        out["login_page"]
            .as_str()
            .is_some_and(|t| t.contains("mcp-edge demo login")),
        "{out}"
    );

    // The tools the UI lists are exactly those the token's scopes and bob's allowed_tools permit.
    let requested: Vec<&str> = authorize["scope"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .collect();
    let directory: Value = serde_json::from_str(&std::fs::read_to_string(
        mcp_edge_tests::repo_root().join("authz/directory.json"),
    )?)?;
    let user = &directory["users"][LOGIN];
    let granted: Vec<&str> = requested
        .iter()
        .copied()
        .filter(|scope| {
            user["scopes"]
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s == scope))
        })
        .collect();
    let expected = tools_allowed(
        &granted,
        user["allowed_tools"].as_array().map(Vec::as_slice),
    )?;
    let mut shown: Vec<String> = out["tools"]
        .as_array()
        .context("no tools in the script's output")?
        .iter()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    shown.sort();
    let catalogue = tools_allowed(&["mcp:read", "mcp:write", "mcp:admin"], None)?;
    ensure!(
        !expected.is_empty() && expected.len() < catalogue.len(),
        "the token should allow some tools, not all: {expected:?}"
    );
    ensure!(
        shown == expected,
        "the UI lists {shown:?}, the token allows {expected:?}"
    );

    // The call's result text is shown, with the project made for this run.
    ensure!(
        out["result_text"]
            .as_str()
            .is_some_and(|t| t.contains(&project)),
        "{out}"
    );

    // CORS from the browser: the allowed origin's requests carried Origin and were answered
    // with the edge's CORS headers (readable from JavaScript); another origin is refused.
    let cors = &out["cors"];
    ensure!(cors["origin_sent"] == ui_origin(ports).as_str(), "{out}");
    ensure!(cors["allowed"]["status"] == 200, "{out}");
    ensure!(
        cors["allowed"]["ratelimit_policy"]
            .as_str()
            .is_some_and(|p| p.contains("pro")),
        "{out}"
    );
    ensure!(cors["unauthenticated"]["status"] == 401, "{out}");
    ensure!(
        cors["unauthenticated"]["www_authenticate"]
            .as_str()
            .is_some_and(|c| c.contains("resource_metadata=")),
        "{out}"
    );
    ensure!(cors["other_origin"]["blocked"] == true, "{out}");

    // The browser's preflights were answered by the edge (Chromium may cache one for the next).
    let preflights = s
        .stats("mcp_edge")?
        .filter_since(&before, "outcome.cors_preflight");
    ensure!(preflights >= 1, "the edge answered no preflight: {out}");

    // The edge itself: the same preflight from a listed and an unlisted origin.
    let preflight = |origin: &str| {
        mcp_edge_tests::client::http()
            .request(reqwest::Method::OPTIONS, &s.mcp_url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight(&ui_origin(ports))?;
    ensure!(
        allowed.status() == 204
            && header(&allowed, "access-control-allow-origin") == ui_origin(ports),
        "{} {:?}",
        allowed.status(),
        allowed.headers()
    );
    // Another origin's preflight is not served (OPTIONS is then a method the endpoint refuses).
    let other = preflight(&authz.url)?;
    ensure!(
        other.status() == 405 && header(&other, "access-control-allow-origin").is_empty(),
        "{} {:?}",
        other.status(),
        other.headers()
    );

    for name in [
        "1-inspector.png",
        "2-login.png",
        "3-connected.png",
        "4-tools.png",
        "5-result.png",
    ] {
        let png = std::fs::read(shots.join(name)).with_context(|| format!("no {name}"))?;
        ensure!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

// Alone: it reads the edge's counters.
const CASES: &[Case] =
    mcp_edge_tests::cases![; alone: inspector_web_ui_logs_in_lists_and_calls_tools];

fn main() {
    let chosen = (|| -> Result<InspectorPorts> {
        Ok(InspectorPorts {
            ui: free_port()?,
            sandbox: free_port()?,
            app_origin: free_port()?,
        })
    })();
    let ports = match chosen {
        Ok(p) => PORTS.get_or_init(|| p),
        Err(e) => {
            eprintln!("could not choose the Inspector's ports: {e:#}");
            std::process::exit(1);
        }
    };
    let options = StackOptions {
        authz: true,
        plugin_overrides: json!({"allowed_origins": [ui_origin(ports)]}),
        ..StackOptions::default()
    };
    mcp_edge_tests::runner::run_with_options(&options, CASES)
}
