//! `cargo xtask tool-scopes`: the edge's `tool_scopes` for a third-party MCP server, generated
//! from the server's own `tools/list` ([`crate::mcp_lister`]) by the annotation rule
//! ([`crate::scope_rule`]), instead of a hand-written list that the edge enforces as "unknown tool"
//! for every tool it forgot.
//!
//! The result goes into an Envoy configuration's mcp-edge plugin configuration (`tool_scopes`, and
//! `prm.scopes_supported` gains any scope it lacks), printed as JSON, or (`--check`) compared with
//! what the configuration has. The plugin configuration is edited in the text
//! ([`crate::json_member`], comments and layout kept) when it is written out as JSON there, as in
//! envoy.yaml; otherwise through the parsed YAML ([`crate::docker_envoy::edit_plugin_config`]).
//! Either way the result is read back and must hold exactly the new values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value as Json, json};
use serde_yaml::Value;

use crate::docker_envoy::{at, edit_plugin_config};
use crate::json_member::replace_value;
use crate::mcp_lister::{ServerAccess, Vouch, list_tools};
use crate::scope_rule::{Drift, ToolHints, drift, scopes_supported_with, tool_scopes};

/// What `cargo xtask tool-scopes` was asked to do.
#[derive(Debug)]
pub struct Request {
    pub server: ServerAccess,
    /// The gateway secret's environment variable, when requests must carry the edge's assertion.
    pub gateway_secret_env: Option<String>,
    pub envoy: PathBuf,
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Write the map into the Envoy configuration.
    Write,
    /// Print the map as JSON.
    Print,
    /// Compare the Envoy configuration with the server.
    Check,
}

/// Runs `request`, printing what it did; `Ok(false)` when `--check` found drift.
pub async fn run(mut request: Request) -> Result<bool> {
    let envoy_text = if request.mode == Mode::Print && request.gateway_secret_env.is_none() {
        None
    } else {
        Some(
            std::fs::read_to_string(&request.envoy)
                .with_context(|| format!("reading {}", request.envoy.display()))?,
        )
    };
    if let Some(var) = &request.gateway_secret_env {
        let secret = std::env::var(var).with_context(|| format!("{var} is not set"))?;
        let plugin = plugin_config(envoy_text.as_deref().unwrap_or_default())?;
        let (issuer, audience) = assertion_names(&plugin);
        request.server.vouch = Some(Vouch::new(secret.as_bytes(), &issuer, &audience)?);
    }
    let listed = list_tools(&request.server).await?;
    let generated = generated_tool_scopes(&listed)?;
    let (url, envoy) = (&request.server.url, request.envoy.display());
    let Some(envoy_text) = envoy_text.filter(|_| request.mode != Mode::Print) else {
        println!("{}", serde_json::to_string_pretty(&generated)?);
        return Ok(true);
    };
    if request.mode == Mode::Check {
        let drift = check(&envoy_text, &generated)?;
        if drift.is_empty() {
            println!(
                "{envoy}: tool_scopes match the {} tools of {url}",
                generated.len()
            );
            return Ok(true);
        }
        eprintln!("{envoy}: tool_scopes do not match the tools of {url}:");
        for line in drift.lines() {
            eprintln!("  {line}");
        }
        eprintln!("run `cargo xtask tool-scopes {url} --envoy {envoy}` to write them");
        return Ok(false);
    }
    let changes = check(&envoy_text, &generated)?;
    let edited = with_tool_scopes(&envoy_text, &generated)?;
    if edited.text == envoy_text {
        println!(
            "{envoy} already has the tool_scopes of the {} tools of {url}",
            generated.len()
        );
        return Ok(true);
    }
    std::fs::write(&request.envoy, &edited.text).with_context(|| format!("writing {envoy}"))?;
    println!(
        "wrote the tool_scopes of the {} tools of {url} to {envoy}:",
        generated.len()
    );
    for line in changes.change_lines() {
        println!("  {line}");
    }
    if !edited.scopes_added.is_empty() {
        println!(
            "  prm.scopes_supported: added {}",
            edited.scopes_added.join(", ")
        );
    }
    if edited.reformatted {
        println!("  (the file was rewritten from its parsed YAML: its comments are gone)");
    }
    println!(
        "review them: the scopes follow the tools' own annotations (docs/third-party-servers.md)"
    );
    Ok(true)
}

/// The generated map for the tools a server listed.
pub fn generated_tool_scopes(listed: &[Json]) -> Result<BTreeMap<String, String>> {
    let hints = listed
        .iter()
        .map(ToolHints::from_listed)
        .collect::<Result<Vec<_>>>()?;
    tool_scopes(&hints)
}

/// The mcp-edge plugin configuration of an Envoy configuration's text: the JSON under
/// `typed_config.config.configuration.value` of the one listener's wasm filter.
pub fn plugin_config(envoy_text: &str) -> Result<Json> {
    let mut doc: Value = serde_yaml::from_str(envoy_text)?;
    let (_, plugin) = the_plugin_listener(&mut doc)?;
    Ok(plugin)
}

/// The plugin configuration's `tool_scopes` (absent: none).
pub fn configured_tool_scopes(plugin: &Json) -> Result<BTreeMap<String, String>> {
    match plugin.get("tool_scopes") {
        None => Ok(BTreeMap::new()),
        Some(map) => serde_json::from_value(map.clone())
            .context("the plugin configuration's tool_scopes is not an object of strings"),
    }
}

/// How the configuration in `envoy_text` differs from `generated`.
pub fn check(envoy_text: &str, generated: &BTreeMap<String, String>) -> Result<Drift> {
    let plugin = plugin_config(envoy_text)?;
    Ok(drift(&configured_tool_scopes(&plugin)?, generated))
}

/// What [`with_tool_scopes`] made.
#[derive(Debug)]
pub struct Edited {
    /// The whole Envoy configuration.
    pub text: String,
    /// The scopes added to `prm.scopes_supported`.
    pub scopes_added: Vec<String>,
    /// Whether the text was rewritten from the parsed YAML (its comments and layout lost).
    pub reformatted: bool,
}

/// `envoy_text` with the plugin configuration's `tool_scopes` replaced by `generated` and every
/// scope it names in `prm.scopes_supported`; nothing else of the plugin configuration changes.
pub fn with_tool_scopes(envoy_text: &str, generated: &BTreeMap<String, String>) -> Result<Edited> {
    let before = plugin_config(envoy_text)?;
    let supported: Vec<String> = before
        .pointer("/prm/scopes_supported")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .context("prm.scopes_supported is not a list of strings")?
        .unwrap_or_default();
    let wanted_supported = scopes_supported_with(&supported, generated.values());
    let scopes_added = wanted_supported[supported.len()..].to_vec();
    let mut expected = before.clone();
    expected["tool_scopes"] = json!(generated);
    expected["prm"]["scopes_supported"] = json!(wanted_supported);

    let in_text = replace_value(envoy_text, "tool_scopes", &json!(generated)).and_then(|text| {
        if scopes_added.is_empty() {
            Ok(text)
        } else {
            replace_value(&text, "scopes_supported", &json!(wanted_supported))
        }
    });
    if let Ok(text) = in_text
        && plugin_config(&text).ok().as_ref() == Some(&expected)
    {
        return Ok(Edited {
            text,
            scopes_added,
            reformatted: false,
        });
    }
    let mut doc: Value = serde_yaml::from_str(envoy_text)?;
    let (index, _) = the_plugin_listener(&mut doc)?;
    let listener = at(
        &mut doc,
        &["static_resources", "listeners", &index.to_string()],
    )?;
    edit_plugin_config(listener, |plugin| *plugin = expected.clone())?;
    let text = serde_yaml::to_string(&doc)?;
    ensure!(
        plugin_config(&text)? == expected,
        "the rewritten configuration does not read back as written"
    );
    Ok(Edited {
        text,
        scopes_added,
        reformatted: true,
    })
}

/// The index and plugin configuration of the one listener with an mcp-edge (wasm) filter.
fn the_plugin_listener(doc: &mut Value) -> Result<(usize, Json)> {
    let listeners = at(doc, &["static_resources", "listeners"])?
        .as_sequence_mut()
        .context("listeners is not a list")?;
    let mut found = Vec::new();
    for (index, listener) in listeners.iter().enumerate() {
        let mut plugin = None;
        let mut copy = listener.clone();
        if edit_plugin_config(&mut copy, |p| plugin = Some(p.clone())).is_ok()
            && let Some(plugin) = plugin
        {
            found.push((index, plugin));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => bail!("expected one listener with the mcp-edge wasm filter, found {n}"),
    }
}

/// The assertion names (`iss`, `aud`) of a plugin configuration, or the contract's defaults.
pub fn assertion_names(plugin: &Json) -> (String, String) {
    use mcp_edge_contract::assertion::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};
    let name = |key: &str, default: &str| {
        plugin
            .pointer(&format!("/assertion/{key}"))
            .and_then(Json::as_str)
            .unwrap_or(default)
            .to_string()
    };
    (
        name("issuer", DEFAULT_ISSUER),
        name("audience", DEFAULT_AUDIENCE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope_rule::tests::map as generated;

    fn repo_envoy() -> String {
        std::fs::read_to_string(crate::sync_config::repo_root().join("envoy.yaml"))
            .expect("envoy.yaml")
    }

    #[test]
    fn envoy_yaml_is_edited_in_place_and_keeps_its_comments() {
        let base = repo_envoy();
        let map = generated(&[("echo", "mcp:read"), ("purge", "mcp:admin")]);
        let edited = with_tool_scopes(&base, &map).expect("edited");
        assert!(!edited.reformatted && edited.scopes_added.is_empty());
        assert!(edited.text.contains("# Never FAIL_OPEN."));
        let mut expected = plugin_config(&base).expect("plugin");
        expected["tool_scopes"] = json!(map);
        assert_eq!(plugin_config(&edited.text).expect("plugin"), expected);
        assert!(check(&edited.text, &map).expect("check").is_empty());
        let other = generated(&[("echo", "mcp:write")]);
        assert_eq!(
            check(&edited.text, &other).expect("check").lines(),
            [
                "extra: purge (mcp:admin): the configuration names it, the server does not list it",
                "scope: echo is mcp:read in the configuration, its annotations say mcp:write",
            ]
        );
    }

    #[test]
    fn a_missing_scope_is_added_and_a_quoted_configuration_is_rewritten() {
        let mut doc: Value = serde_yaml::from_str(&repo_envoy()).expect("yaml");
        let listener = at(&mut doc, &["static_resources", "listeners", "0"]).expect("listener");
        edit_plugin_config(listener, |plugin| {
            plugin["prm"]["scopes_supported"] = json!(["mcp:read"]);
            plugin["challenge_scopes"] = json!(["mcp:read"]);
            plugin
                .as_object_mut()
                .expect("object")
                .remove("tool_scopes");
        })
        .expect("edited");
        let quoted = serde_yaml::to_string(&doc).expect("yaml");
        let map = generated(&[("a", "mcp:admin"), ("b", "mcp:read")]);
        let edited = with_tool_scopes(&quoted, &map).expect("edited");
        assert!(edited.reformatted);
        assert_eq!(edited.scopes_added, ["mcp:admin"]);
        let plugin = plugin_config(&edited.text).expect("plugin");
        assert_eq!(plugin["tool_scopes"], json!(map));
        assert_eq!(
            plugin["prm"]["scopes_supported"],
            json!(["mcp:read", "mcp:admin"])
        );
    }

    #[test]
    fn the_assertion_names_come_from_the_plugin_configuration() {
        let plugin = plugin_config(&repo_envoy()).expect("plugin");
        assert_eq!(
            assertion_names(&plugin),
            ("mcp-edge".to_string(), "mcp-edge-backend".to_string())
        );
        assert_eq!(
            assertion_names(&json!({"assertion": {"issuer": "i", "audience": "a"}})),
            ("i".to_string(), "a".to_string())
        );
    }
}
