//! The commands the README and docs/connect.md show, run as written against a running stack
//! (Envoy with the real `.wasm`, the backend, Redis, the OAuth authorization server).
//!
//! A fenced block opened with ```` ```sh tested ```` is a command to run here; the blocks of one
//! document run in order in one bash (`set -euo pipefail`, from the repository root), so a later
//! block uses what an earlier one set (`TOKEN`). The only changes: `127.0.0.1:8080` (the port
//! `scripts/run.sh` gives Envoy) becomes this stack's Envoy address, and `scripts/token.sh` is
//! pointed at this stack's authorization server through its own `AUTHZ_URL` and `RESOURCE`
//! variables (the command text stays as written). Commands that start long-running servers
//! (`scripts/run.sh`, the Inspector's web UI) or need what this machine has not (a Docker engine,
//! Claude Code) are not marked; the web UI is driven by `tests/browser_client.rs`.
//! The ```` ```json ```` blocks of docs/connect.md (client configurations) must parse and name the
//! edge's MCP URL.

use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{SERVICE_CLIENT, Stack, StackOptions};
use serde_json::Value;

/// The address the documents use for Envoy's MCP listener (`scripts/run.sh`'s).
const DOC_ADDRESS: &str = "127.0.0.1:8080";

/// The fenced blocks of `markdown` whose info string is exactly `info`, in order.
fn fenced_blocks(markdown: &str, info: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_end() == format!("```{info}") => current = Some(Vec::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => {
                blocks.push(current.take().unwrap_or_default().join("\n"));
            }
            Some(lines) => lines.push(line),
        }
    }
    blocks
}

fn read_doc(path: &str) -> Result<String> {
    std::fs::read_to_string(mcp_edge_tests::repo_root().join(path))
        .with_context(|| format!("reading {path}"))
}

/// Runs the tested blocks of the document at `path` and returns each block's output (stdout and
/// stderr together), in order; fails when a command fails.
fn run_blocks(s: &Stack, path: &str) -> Result<Vec<String>> {
    let blocks = fenced_blocks(&read_doc(path)?, "sh tested");
    ensure!(!blocks.is_empty(), "{path} has no tested blocks");
    let address = mcp_edge_tests::client::authority(&s.mcp_url)?.to_string();
    let mut script = String::from("set -euo pipefail\n");
    for (i, block) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '@@block {i}@@'\n"));
        script.push_str(&block.replace(DOC_ADDRESS, &address));
        script.push('\n');
    }
    script.push_str("echo '@@end@@'\n");
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(mcp_edge_tests::repo_root())
        .env("AUTHZ_URL", &s.authz()?.url)
        .env("RESOURCE", &s.mcp_url)
        .stdin(std::process::Stdio::null())
        .output()
        .context("running bash")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !text.contains("@@end@@") {
        bail!("{path}'s commands failed ({}):\n{text}", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut outputs: Vec<String> = stdout
        .split("@@block ")
        .skip(1)
        .map(|part| part.split_once("@@\n").map(|(_, o)| o).unwrap_or_default())
        .map(|o| o.replace("@@end@@\n", ""))
        .collect();
    ensure!(outputs.len() == blocks.len(), "{text}");
    outputs.iter_mut().for_each(|o| *o = o.trim().to_string());
    Ok(outputs)
}

/// The tool names a `tools/list` answer in the Inspector CLI's output names.
fn listed_tools(output: &str) -> Result<Vec<String>> {
    let start = output.find('{').context("no JSON in the output")?;
    let answer: Value = serde_json::from_str(&output[start..])
        .with_context(|| format!("not one JSON object: {output}"))?;
    let tools = answer["tools"]
        .as_array()
        .or_else(|| answer["result"]["tools"].as_array())
        .with_context(|| format!("no tools in {answer}"))?;
    Ok(tools
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect())
}

/// The `allowed_tools` of `scripts/token.sh`'s client in authz/directory.json, sorted.
fn service_client_tools() -> Result<Vec<String>> {
    let directory: Value = serde_json::from_str(&read_doc("authz/directory.json")?)?;
    let mut tools: Vec<String> = directory["service_clients"][SERVICE_CLIENT]["allowed_tools"]
        .as_array()
        .context("the service client has no allowed_tools")?
        .iter()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    tools.sort();
    Ok(tools)
}

// ---------------------------------------------------------------------------------------------

fn readme_commands_run_as_written(s: &Stack) -> Result<()> {
    let out = run_blocks(s, "README.md")?;
    ensure!(
        out.len() == 3,
        "the README's tested blocks changed: {out:?}"
    );
    // The curl tools/call: one JSON-RPC answer with the tool's result.
    let answer: Value = serde_json::from_str(&out[1]).with_context(|| out[1].clone())?;
    ensure!(answer["result"]["isError"] == false, "{answer}");
    ensure!(
        answer["result"]["structuredContent"]["projects"].is_array(),
        "{answer}"
    );
    // The Inspector CLI: tools/list shows the service client's 5 tools (as the README says),
    // then create_project answers with the project.
    let inspector = &out[2];
    let list_end = inspector
        .find("\n}\n")
        .map(|i| i + 3)
        .with_context(|| inspector.clone())?;
    let mut tools = listed_tools(&inspector[..list_end])?;
    tools.sort();
    let expected = service_client_tools()?;
    ensure!(
        tools == expected && tools.len() == 5,
        "the README says the token.sh client sees 5 tools, its allowed_tools {expected:?}: {tools:?}"
    );
    ensure!(inspector[list_end..].contains("Launch plan"), "{inspector}");
    Ok(())
}

fn connect_guide_commands_run_as_written(s: &Stack) -> Result<()> {
    let out = run_blocks(s, "docs/connect.md")?;
    ensure!(
        out.len() == 3,
        "docs/connect.md's tested blocks changed: {out:?}"
    );
    // The Inspector CLI with --format json: the service client's 5 tools.
    let mut tools = listed_tools(&out[0])?;
    tools.sort();
    ensure!(tools == service_client_tools()?, "{tools:?}");
    // The first step by hand: the 401 challenge and the metadata it names.
    let first = &out[1];
    ensure!(first.starts_with("HTTP/1.1 401"), "{first}");
    ensure!(
        first.contains("resource_metadata=") && first.contains("\"authorization_servers\""),
        "{first}"
    );
    ensure!(first.contains(&s.authz()?.url), "{first}");
    // The two errors the guide shows.
    let errors = &out[2];
    ensure!(errors.contains("-32041"), "{errors}");
    ensure!(
        errors.contains("-32042")
            && errors.contains("error=\"insufficient_scope\", scope=\"mcp:write\""),
        "{errors}"
    );
    Ok(())
}

fn connect_guide_configurations_name_the_edge(_s: &Stack) -> Result<()> {
    let doc = read_doc("docs/connect.md")?;
    let blocks = fenced_blocks(&doc, "json");
    ensure!(blocks.len() >= 3, "{} json blocks", blocks.len());
    for block in blocks {
        let config: Value =
            serde_json::from_str(&block).with_context(|| format!("not JSON:\n{block}"))?;
        let text = config.to_string();
        ensure!(
            text.contains(&format!("http://{DOC_ADDRESS}/mcp"))
                || text.contains("https://mcp.example.com/mcp"),
            "names no MCP URL of the edge: {block}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

// The command cases run one at a time: both may be the first `npx` of the Inspector on this
// machine, and two installs into npx's cache at once could collide.
const CASES: &[Case] = mcp_edge_tests::cases![
    connect_guide_configurations_name_the_edge;
    alone: readme_commands_run_as_written, connect_guide_commands_run_as_written,
];

fn main() {
    let options = StackOptions {
        authz: true,
        ..StackOptions::default()
    };
    mcp_edge_tests::runner::run_with_options(&options, CASES)
}
