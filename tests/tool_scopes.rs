//! `cargo xtask tool-scopes` (the real binary) against third-party MCP servers, then Envoy loading
//! the configuration it wrote, then the servers' tools called through the edge.
//!
//! - The MCP project's reference "everything" server (`@modelcontextprotocol/server-everything`
//!   from npm, `tests/node/everything_server.mjs`; stateful, answers as SSE, lists some tools only
//!   to clients that declare sampling, elicitation or roots) is this stack's upstream. With the
//!   shipped `tool_scopes` the edge refuses its tools ("This edge has no policy for the tool");
//!   with the generated ones the official TypeScript client calls them, and a read-only token is
//!   refused the writing ones.
//! - The official Python SDK's server (`tests/python/py_server.py`, JSON answers, accepts only
//!   requests the edge vouched for): the command signs its requests with the gateway secret; tools
//!   without annotations need `mcp:admin`.
//! - A server that lists its tools one per page (`tests/node/paged_server.mjs`).
//! - `--check`: passes on the written file, names each drifting tool otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use mcp_edge_tests::client::{header, post_mcp, sdk_client, tool_names};
use mcp_edge_tests::envoy::EnvoyPorts;
use mcp_edge_tests::procs::{Proc, cargo_bin, filter_wasm, free_port, node_bin, python_bin};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{Stack, StackOptions, Upstream, spawn_envoy};
use serde_json::{Value, json};
use xtask::json_member::replace_value;
use xtask::tool_scopes::plugin_config;

const READ: &str = "mcp:read";
const WRITE: &str = "mcp:write";
const ADMIN: &str = "mcp:admin";
const EVERY_SCOPE: &str = "mcp:read mcp:write mcp:admin";

/// What the rule makes of server-everything 2026.8.31's tools: their annotations say read-only
/// or not destructive; the last six are listed only to a client that declares sampling,
/// elicitation, roots or tasks (`registerConditionalTools`).
const EVERYTHING_SCOPES: &[(&str, &str)] = &[
    ("echo", READ),
    ("get-annotated-message", READ),
    ("get-env", READ),
    ("get-resource-links", READ),
    ("get-resource-reference", READ),
    ("get-structured-content", READ),
    ("get-sum", READ),
    ("get-tiny-image", READ),
    ("gzip-file-as-resource", WRITE),
    ("toggle-simulated-logging", WRITE),
    ("toggle-subscriber-updates", WRITE),
    ("trigger-long-running-operation", READ),
    ("simulate-research-query", WRITE),
    ("get-roots-list", READ),
    ("trigger-elicitation-request", WRITE),
    ("trigger-elicitation-request-async", WRITE),
    ("trigger-sampling-request", WRITE),
    ("trigger-sampling-request-async", WRITE),
    ("trigger-url-elicitation", WRITE),
];
/// How many of [`EVERYTHING_SCOPES`] every client sees.
const EVERYTHING_UNCONDITIONAL: usize = 13;

/// What the rule makes of tests/python/edge_tools.py's tools (`hidden` has no annotations).
const PYTHON_SCOPES: &[(&str, &str)] = &[
    ("echo", READ),
    ("hidden", ADMIN),
    ("purge", ADMIN),
    ("shout", WRITE),
    ("whoami", READ),
];

fn scope_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(tool, scope)| (tool.to_string(), scope.to_string()))
        .collect()
}

/// `cargo xtask tool-scopes <args>` (the built binary), with the stack's gateway secret in
/// `MCP_EDGE_GATEWAY_SECRET`.
fn tool_scopes(s: &Stack, args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(cargo_bin("xtask")?);
    cmd.arg("tool-scopes")
        .args(args)
        .env("MCP_EDGE_GATEWAY_SECRET", &s.secret);
    cmd.output().context("running xtask tool-scopes")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A copy of the repository's envoy.yaml in the stack's directory, named `name`.
fn envoy_copy(s: &Stack, name: &str) -> Result<PathBuf> {
    let path = s.dir().join(name);
    std::fs::copy(mcp_edge_tests::repo_root().join("envoy.yaml"), &path)?;
    Ok(path)
}

/// Runs the command to write `envoy`'s tool_scopes from `url`; fails unless it succeeds.
fn write_tool_scopes(s: &Stack, url: &str, envoy: &Path, more: &[&str]) -> Result<String> {
    let envoy = envoy.to_string_lossy();
    let mut args = vec![url, "--envoy", &envoy];
    args.extend_from_slice(more);
    let out = tool_scopes(s, &args)?;
    ensure!(
        out.status.success(),
        "tool-scopes {args:?}: {}\n{}",
        out.status,
        stderr(&out)
    );
    Ok(stdout(&out))
}

/// The plugin configuration's tool_scopes in the Envoy configuration at `path`.
fn written_tool_scopes(path: &Path) -> Result<Value> {
    let plugin = plugin_config(&std::fs::read_to_string(path)?)?;
    Ok(plugin["tool_scopes"].clone())
}

/// An Envoy (the stack's issuer, the tree's `.wasm`) whose configuration is derived from the file
/// at `yaml`, with its MCP cluster pointing at `upstream_port`. Returns it (stopped when dropped)
/// and its MCP URL.
fn envoy_from(
    s: &Stack,
    name: &str,
    yaml: &Path,
    upstream_port: u16,
    overrides: Value,
) -> Result<(Proc, String)> {
    let mut ports: EnvoyPorts = s.upstream_ports().clone();
    ports.listener = free_port()?;
    ports.recorded_listener = free_port()?;
    ports.baseline_listener = free_port()?;
    ports.admin = free_port()?;
    ports.backend = upstream_port;
    let mut overrides = overrides;
    overrides["resource"] = json!(s.mcp_url);
    let envoy = spawn_envoy(
        name,
        s.dir(),
        yaml,
        &ports,
        &filter_wasm()?,
        &overrides,
        &s.secret,
        &Ok,
    )?;
    Ok((envoy, format!("http://127.0.0.1:{}/mcp", ports.listener)))
}

/// A server of tests/node or tests/python started with `--listen 127.0.0.1:0`; returns it and
/// its MCP URL.
fn start_server(s: &Stack, name: &str, mut cmd: Command) -> Result<(Proc, String)> {
    cmd.args(["--listen", "127.0.0.1:0"])
        .env("MCP_EDGE_GATEWAY_SECRET", &s.secret);
    let mut server = Proc::spawn(name, cmd, s.dir())?;
    let addr = server.wait_for_listening_addr(Duration::from_secs(60))?;
    Ok((server, format!("http://{addr}/mcp")))
}

fn python_server(s: &Stack) -> Result<(Proc, String)> {
    let mut cmd = Command::new(python_bin()?);
    cmd.arg(mcp_edge_tests::repo_root().join("tests/python/py_server.py"));
    start_server(s, "py-server", cmd)
}

/// A raw `tools/call` of `tool` through `url`: the status, `WWW-Authenticate` and the body.
fn raw_call(url: &str, token: &str, tool: &str) -> Result<(u16, String, Value)> {
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                      "params": {"name": tool, "arguments": {}}});
    let resp = post_mcp(url, Some(token), &body.to_string())?;
    let status = resp.status().as_u16();
    let challenge = header(&resp, "www-authenticate");
    let text = resp.text()?;
    let body = serde_json::from_str(&text).with_context(|| format!("{status}: {text}"))?;
    Ok((status, challenge, body))
}

/// The edge refuses `tool` at `url` as a tool it has no policy for.
fn ensure_no_policy(url: &str, token: &str, tool: &str) -> Result<()> {
    let (status, _, body) = raw_call(url, token, tool)?;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        status == 403
            && message.starts_with(&format!("This edge has no policy for the tool \"{tool}\"")),
        "{tool}: {status} {body}"
    );
    Ok(())
}

/// The edge refuses `tool` at `url` for want of `scope` (a step-up challenge).
fn ensure_needs_scope(url: &str, token: &str, tool: &str, scope: &str) -> Result<()> {
    let (status, challenge, body) = raw_call(url, token, tool)?;
    ensure!(
        status == 403
            && challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains(scope),
        "{tool}: {status} {challenge} {body}"
    );
    Ok(())
}

/// The results of `sdk_client`'s calls, each a successful tool result.
fn ensure_results_ok(listed: &Value, calls: usize) -> Result<()> {
    let results = listed["results"].as_array().context("no results")?;
    ensure!(results.len() == calls, "{listed}");
    for (i, result) in results.iter().enumerate() {
        ensure!(
            result["isError"] != json!(true) && result["content"].is_array(),
            "call {i}: {result}"
        );
    }
    Ok(())
}

fn everything_url(s: &Stack) -> String {
    format!("http://127.0.0.1:{}/mcp", s.backend_addr.port())
}

fn shipped_policy_refuses_the_everything_servers_tools(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-ev", EVERY_SCOPE, None)?;
    for tool in ["echo", "get-sum", "toggle-simulated-logging"] {
        ensure_no_policy(&s.mcp_url, &token, tool)?;
    }
    let listed = sdk_client(&s.mcp_url, &token, json!([]))?;
    ensure!(tool_names(&listed)?.is_empty(), "{listed}");
    Ok(())
}

fn everything_servers_tools_pass_with_the_generated_policy(s: &Stack) -> Result<()> {
    let envoy = envoy_copy(s, "everything-envoy.yaml")?;
    let printed = write_tool_scopes(s, &everything_url(s), &envoy, &[])?;
    ensure!(
        printed.starts_with("wrote the tool_scopes of the 19 tools of"),
        "{printed}"
    );
    let expected = scope_map(EVERYTHING_SCOPES);
    ensure!(
        written_tool_scopes(&envoy)? == json!(expected),
        "written: {}",
        written_tool_scopes(&envoy)?
    );
    let (_envoy, url) = envoy_from(
        s,
        "envoy-everything",
        &envoy,
        s.backend_addr.port(),
        json!({"stateful_upstream": true}),
    )?;
    let every = s.token_with("tenant-ev", EVERY_SCOPE, None)?;
    let calls = json!([
        {"name": "echo", "arguments": {"message": "through the edge"}},
        {"name": "get-sum", "arguments": {"a": 2, "b": 3}},
        {"name": "get-annotated-message", "arguments": {"messageType": "success"}},
        {"name": "get-tiny-image", "arguments": {}},
        {"name": "get-structured-content", "arguments": {"location": "Chicago"}},
        {"name": "get-resource-links", "arguments": {"count": 2}},
        {"name": "get-resource-reference", "arguments": {"resourceType": "Text", "resourceId": 1}},
        {"name": "gzip-file-as-resource", "arguments": {
            "name": "hello.gz", "data": "data:text/plain;base64,aGVsbG8=", "outputType": "resource"}},
        {"name": "toggle-simulated-logging", "arguments": {}},
        {"name": "toggle-subscriber-updates", "arguments": {}},
        {"name": "trigger-long-running-operation", "arguments": {"duration": 0.2, "steps": 2}},
    ]);
    let listed = sdk_client(&url, &every, calls.clone())?;
    // The TypeScript client declares no capability: the server lists it the unconditional tools.
    let unconditional: Vec<&str> = EVERYTHING_SCOPES[..EVERYTHING_UNCONDITIONAL]
        .iter()
        .map(|(tool, _)| *tool)
        .collect();
    let mut sorted = unconditional.clone();
    sorted.sort_unstable();
    ensure!(tool_names(&listed)? == sorted, "listed: {listed}");
    let results_count = calls.as_array().map_or(0, Vec::len);
    ensure_results_ok(&listed, results_count)?;
    ensure!(
        listed["results"][0]["content"][0]["text"] == "Echo: through the edge",
        "{}",
        listed["results"][0]
    );
    ensure!(
        listed["results"][1]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains('5')),
        "{}",
        listed["results"][1]
    );

    // A read-only token: the read tools are listed and called, the writing ones refused.
    let read = s.token_with("tenant-ev", READ, None)?;
    let listed = sdk_client(
        &url,
        &read,
        json!([{"name": "echo", "arguments": {"message": "read only"}}]),
    )?;
    let mut readable: Vec<&str> = EVERYTHING_SCOPES[..EVERYTHING_UNCONDITIONAL]
        .iter()
        .filter(|(_, scope)| *scope == READ)
        .map(|(tool, _)| *tool)
        .collect();
    readable.sort_unstable();
    ensure!(tool_names(&listed)? == readable, "read only: {listed}");
    ensure_results_ok(&listed, 1)?;
    for tool in [
        "toggle-simulated-logging",
        "gzip-file-as-resource",
        "trigger-sampling-request",
    ] {
        ensure_needs_scope(&url, &read, tool, WRITE)?;
    }
    Ok(())
}

fn python_servers_tools_pass_with_the_generated_policy(s: &Stack) -> Result<()> {
    let (_server, server_url) = python_server(s)?;
    let port = mcp_edge_tests::client::authority(&server_url)?.port();
    let every = s.token_with("tenant-py", EVERY_SCOPE, None)?;

    let shipped = envoy_copy(s, "python-shipped-envoy.yaml")?;
    let (_shipped_envoy, shipped_url) =
        envoy_from(s, "envoy-py-shipped", &shipped, port, json!({}))?;
    ensure_no_policy(&shipped_url, &every, "echo")?;

    // The server refuses requests the edge did not vouch for: so does the command without the
    // gateway secret, and it says why.
    let envoy = envoy_copy(s, "python-envoy.yaml")?;
    let envoy_arg = envoy.to_string_lossy().into_owned();
    let refused = tool_scopes(s, &[&server_url, "--envoy", &envoy_arg])?;
    let said = stderr(&refused);
    ensure!(
        !refused.status.success() && said.contains("401") && said.contains("--gateway-secret-env"),
        "{said}"
    );
    write_tool_scopes(
        s,
        &server_url,
        &envoy,
        &["--gateway-secret-env", "MCP_EDGE_GATEWAY_SECRET"],
    )?;
    ensure!(
        written_tool_scopes(&envoy)? == json!(scope_map(PYTHON_SCOPES)),
        "written: {}",
        written_tool_scopes(&envoy)?
    );

    let (_envoy, url) = envoy_from(s, "envoy-py-generated", &envoy, port, json!({}))?;
    let listed = sdk_client(
        &url,
        &every,
        json!([
            {"name": "echo", "arguments": {"text": "through the edge"}},
            {"name": "shout", "arguments": {"text": "loud"}},
            {"name": "purge", "arguments": {}},
            {"name": "hidden", "arguments": {}},
            {"name": "whoami", "arguments": {}}
        ]),
    )?;
    ensure!(
        tool_names(&listed)? == ["echo", "hidden", "purge", "shout", "whoami"],
        "{listed}"
    );
    ensure_results_ok(&listed, 5)?;
    let texts: Vec<&str> = listed["results"]
        .as_array()
        .context("results")?
        .iter()
        .map(|r| r["content"][0]["text"].as_str().unwrap_or_default())
        .collect();
    ensure!(
        texts
            == [
                "through the edge",
                "LOUD",
                "purged",
                "hidden",
                "tenant=tenant-py user=user-of-tenant-py"
            ],
        "{texts:?}"
    );
    // Without mcp:admin, the destructive tool and the one that says nothing are refused.
    let no_admin = s.token_with("tenant-py", "mcp:read mcp:write", None)?;
    for tool in ["purge", "hidden"] {
        ensure_needs_scope(&url, &no_admin, tool, ADMIN)?;
    }
    let listed = sdk_client(
        &url,
        &no_admin,
        json!([{"name": "shout", "arguments": {"text": "w"}}]),
    )?;
    ensure!(
        tool_names(&listed)? == ["echo", "shout", "whoami"],
        "{listed}"
    );
    ensure_results_ok(&listed, 1)
}

fn every_page_of_a_paged_list_is_read(s: &Stack) -> Result<()> {
    let mut cmd = Command::new(node_bin());
    cmd.arg(mcp_edge_tests::repo_root().join("tests/node/paged_server.mjs"));
    let (_server, url) = start_server(s, "paged-server", cmd)?;
    let out = tool_scopes(s, &[&url, "--print"])?;
    ensure!(out.status.success(), "{}", stderr(&out));
    let printed: Value = serde_json::from_str(&stdout(&out))
        .with_context(|| format!("--print printed {}", stdout(&out)))?;
    // Four pages of one tool; none has annotations, so each needs mcp:admin.
    let expected = scope_map(&[
        ("echo", ADMIN),
        ("hidden", ADMIN),
        ("purge", ADMIN),
        ("shout", ADMIN),
    ]);
    ensure!(printed == json!(expected), "printed {printed}");
    Ok(())
}

fn check_names_each_drifting_tool(s: &Stack) -> Result<()> {
    let url = everything_url(s);
    let envoy = envoy_copy(s, "check-envoy.yaml")?;
    let envoy_arg = envoy.to_string_lossy().into_owned();
    let check = || tool_scopes(s, &[&url, "--envoy", &envoy_arg, "--check"]);

    // The shipped configuration names the demo backend's tools, not this server's.
    let shipped = check()?;
    let said = stderr(&shipped);
    ensure!(
        !shipped.status.success()
            && said.contains("missing: echo (mcp:read)")
            && said.contains("extra: list_projects (mcp:read)"),
        "{said}"
    );
    write_tool_scopes(s, &url, &envoy, &[])?;
    let written = std::fs::read_to_string(&envoy)?;
    let matching = check()?;
    ensure!(
        matching.status.success() && stdout(&matching).contains("tool_scopes match the 19 tools"),
        "{}{}",
        stdout(&matching),
        stderr(&matching)
    );
    ensure!(
        std::fs::read_to_string(&envoy)? == written,
        "--check changed the file"
    );

    // The server gained `echo`, lost `retired_tool`, and `get-sum` became read-only.
    let mut drifted = scope_map(EVERYTHING_SCOPES);
    drifted.remove("echo");
    drifted.insert("retired_tool".into(), WRITE.into());
    drifted.insert("get-sum".into(), ADMIN.into());
    std::fs::write(
        &envoy,
        replace_value(&written, "tool_scopes", &json!(drifted))?,
    )?;
    let out = check()?;
    let said = stderr(&out);
    ensure!(out.status.code() == Some(1), "{}: {said}", out.status);
    for line in [
        "missing: echo (mcp:read): the server lists it, the configuration does not",
        "extra: retired_tool (mcp:write): the configuration names it, the server does not list it",
        "scope: get-sum is mcp:admin in the configuration, its annotations say mcp:read",
    ] {
        ensure!(said.contains(line), "no {line:?} in {said}");
    }
    ensure!(
        said.lines().count() == 5,
        "only the three tools drift: {said}"
    );
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    shipped_policy_refuses_the_everything_servers_tools,
    everything_servers_tools_pass_with_the_generated_policy,
    python_servers_tools_pass_with_the_generated_policy,
    every_page_of_a_paged_list_is_read,
    check_names_each_drifting_tool,
];

fn main() {
    mcp_edge_tests::runner::run_with_options(
        &StackOptions {
            plugin_overrides: json!({"stateful_upstream": true}),
            upstream: Upstream::NodeOnPort("everything_server.mjs"),
            ..StackOptions::default()
        },
        CASES,
    );
}
