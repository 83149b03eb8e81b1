//! `cargo xtask sync-config`: writes what the configuration files say about the tools from the
//! tools the backend serves with the repository's `tool-sources.yaml`: the demo's catalogue (one
//! record per tool, see `backend/src/tools/catalogue.rs`) and the selected operations of each
//! OpenAPI document the file names. Adding a tool or a scope is one change (in Rust or in the
//! file) and one command:
//! - envoy.yaml: the filter's `tool_scopes` and the resource metadata's `scopes_supported`;
//! - docker/envoy.yaml: all of it, derived from envoy.yaml ([`crate::docker_envoy`]);
//! - envoy.tls.yaml: all of it, envoy.yaml with TLS on every hop ([`crate::tls_envoy`]);
//! - authz/directory.json: `scopes_supported`, the scopes the authorization server grants;
//! - deploy/rendered/: the deployment manifests, derived from envoy.yaml and deploy/values.yaml
//!   ([`crate::deploy`]).
//!
//! Everything else in those files is hand-written and stays as it is ([`crate::json_member`]).
//! backend/tests/policy_in_sync.rs checks that the files say what the catalogue says.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use mcp_edge_backend::metering::Metering;
use mcp_edge_backend::sources::{ToolRegistry, build_registry};
use mcp_edge_backend::store::MemoryStore;
use serde_json::json;

use crate::docker_envoy::docker_envoy_config;
use crate::json_member::replace_value;
use crate::tls_envoy::{DEV_TLS_DIR, TlsLayout, tls_envoy_config};

pub const ENVOY_YAML: &str = "envoy.yaml";
pub const DOCKER_ENVOY_YAML: &str = "docker/envoy.yaml";
pub const TLS_ENVOY_YAML: &str = "envoy.tls.yaml";
pub const DIRECTORY_JSON: &str = "authz/directory.json";
/// The backend's tool sources file whose tools the configuration names (`--tool-sources`).
pub const TOOL_SOURCES_YAML: &str = "tool-sources.yaml";

/// One generated file: its path from the repository root and the text it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub path: &'static str,
    pub text: String,
}

/// The repository this xtask belongs to.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every generated file as it must be, built from the files under `root` and the catalogue.
pub fn render(root: &Path) -> Result<Vec<Generated>> {
    let tools = served_tools(root)?;
    let envoy = envoy_yaml(&read(root, ENVOY_YAML)?, &tools).context(ENVOY_YAML)?;
    let docker = docker_envoy_config(&envoy).context(DOCKER_ENVOY_YAML)?;
    let tls = tls_envoy_config(
        &envoy,
        &TlsLayout {
            dir: DEV_TLS_DIR.to_string(),
        },
    )
    .context(TLS_ENVOY_YAML)?;
    let directory = directory_json(&read(root, DIRECTORY_JSON)?, &tools).context(DIRECTORY_JSON)?;
    let deploy = crate::deploy::render_with(root, &envoy).context("deploy/rendered")?;
    let mut files = vec![
        Generated {
            path: ENVOY_YAML,
            text: envoy,
        },
        Generated {
            path: DOCKER_ENVOY_YAML,
            text: docker,
        },
        Generated {
            path: TLS_ENVOY_YAML,
            text: tls,
        },
        Generated {
            path: DIRECTORY_JSON,
            text: directory,
        },
    ];
    files.extend(deploy);
    Ok(files)
}

/// Those of `files` whose text under `root` is not theirs: the [`render`]ed configuration, or
/// docs/assertion-vectors.json ([`crate::assertion_vectors`]).
pub fn stale_files(root: &Path, files: &[Generated]) -> Vec<&'static str> {
    files
        .iter()
        .filter(|file| {
            std::fs::read_to_string(root.join(file.path)).ok().as_ref() != Some(&file.text)
        })
        .map(|file| file.path)
        .collect()
}

/// Writes those of `files` that are stale under `root`; returns their paths.
pub fn write_files(root: &Path, files: &[Generated]) -> Result<Vec<&'static str>> {
    let stale = stale_files(root, files);
    for file in files.iter().filter(|f| stale.contains(&f.path)) {
        let path = root.join(file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, &file.text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(stale)
}

fn read(root: &Path, path: &str) -> Result<String> {
    std::fs::read_to_string(root.join(path)).with_context(|| format!("reading {path}"))
}

/// The tools the backend serves with `root`'s tool-sources.yaml (the demo alone without it). Call
/// it within a Tokio runtime: the in-memory metering the demo is given starts a task there.
pub fn served_tools(root: &Path) -> Result<ToolRegistry> {
    let path = root.join(TOOL_SOURCES_YAML);
    let path = path.exists().then_some(path);
    build_registry(
        path.as_deref(),
        std::sync::Arc::new(MemoryStore::new()),
        Metering::in_memory(),
        &|source, warning| {
            eprintln!(
                "{TOOL_SOURCES_YAML}: {source}: {} is not served: {}",
                warning.operation, warning.reason
            );
        },
    )
}

/// envoy.yaml's text with the served tools' `tool_scopes` and `scopes_supported`.
pub fn envoy_yaml(text: &str, tools: &ToolRegistry) -> Result<String> {
    let text = replace_value(text, "tool_scopes", &json!(tools.tool_scopes()))?;
    replace_value(&text, "scopes_supported", &json!(tools.scopes_supported()))
}

/// authz/directory.json's text with the served tools' `scopes_supported`.
pub fn directory_json(text: &str, tools: &ToolRegistry) -> Result<String> {
    replace_value(text, "scopes_supported", &json!(tools.scopes_supported()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const DIRECTORY: &str = r#"{
  "scopes_supported": [],
  "users": {"u": {"scopes": ["mcp:read"], "allowed_tools": ["list_projects"]}}
}
"#;

    #[tokio::test]
    async fn directory_gets_the_catalogue_scopes() {
        let tools = ToolRegistry::demo(
            std::sync::Arc::new(MemoryStore::new()),
            Metering::in_memory(),
        );
        let out = directory_json(DIRECTORY, &tools).expect("ok");
        let doc: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            doc["scopes_supported"],
            json!(mcp_edge_backend::tools::scopes_supported())
        );
        assert!(out.ends_with("\"list_projects\"]}}\n}\n"), "{out}");
    }
}
