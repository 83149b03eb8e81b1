//! The configuration files say what the served tools say — the demo catalogue's and those of the
//! OpenAPI sources of the repository's `tool-sources.yaml` (`cargo xtask sync-config` writes these
//! parts; this test reads them the way the filter and the authorization server do).
//!
//! - envoy.yaml and docker/envoy.yaml: the filter authorizes tool calls with the `tool_scopes` map
//!   of its plugin configuration (the JSON string under `typed_config.config.configuration.value`
//!   of the `envoy.filters.http.wasm` filter) and publishes `prm.scopes_supported`; both must be the
//!   catalogue's. `MCP_EDGE_ENVOY_YAML` names one more Envoy configuration to check (never instead).
//! - authz/directory.json: the scopes the authorization server grants (`scopes_supported`) are the
//!   catalogue's, and its demo principals name only those scopes and catalogue tools.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use mcp_edge_backend::metering::Metering;
use mcp_edge_backend::sources::{ToolRegistry, build_registry};
use mcp_edge_backend::store::MemoryStore;
use serde_json::{Value, json};
use serde_yaml::Value as Yaml;

const WASM_FILTER: &str = "envoy.filters.http.wasm";
const SYNC: &str = "run `cargo xtask sync-config`";

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every mapping anywhere in `node` whose `name` is the wasm HTTP filter.
fn wasm_filters<'a>(node: &'a Yaml, found: &mut Vec<&'a Yaml>) {
    match node {
        Yaml::Mapping(map) => {
            if map.get("name").and_then(Yaml::as_str) == Some(WASM_FILTER) {
                found.push(node);
            }
            for value in map.values() {
                wasm_filters(value, found);
            }
        }
        Yaml::Sequence(items) => {
            for item in items {
                wasm_filters(item, found);
            }
        }
        Yaml::Tagged(tagged) => wasm_filters(&tagged.value, found),
        _ => {}
    }
}

/// The filter's plugin configuration in the Envoy configuration at `path`.
fn plugin_config(path: &Path) -> Value {
    let doc: Yaml = serde_yaml::from_str(&read(path))
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let mut filters = Vec::new();
    wasm_filters(&doc, &mut filters);
    let [filter] = filters[..] else {
        panic!(
            "{}: expected exactly one {WASM_FILTER} filter, found {}",
            path.display(),
            filters.len()
        );
    };
    let value = filter["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .unwrap_or_else(|| {
            panic!(
                "{}: the {WASM_FILTER} filter has no string at typed_config.config.configuration.value",
                path.display()
            )
        });
    serde_json::from_str(value).unwrap_or_else(|e| {
        panic!(
            "{}: the plugin configuration is not JSON: {e}",
            path.display()
        )
    })
}

/// The tools the backend serves with the repository's tool-sources.yaml.
fn served() -> ToolRegistry {
    let sources = repo("tool-sources.yaml");
    // The in-memory metering starts its delivery task on the runtime it is made in.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        build_registry(
            Some(&sources),
            Arc::new(MemoryStore::new()),
            Metering::in_memory(),
            &|_, _| {},
        )
        .unwrap_or_else(|e| panic!("{e:#}"))
    })
}

fn check_envoy(path: &Path) {
    let config = plugin_config(path);
    let served = served();
    let expected = json!(served.tool_scopes());
    let actual = config.get("tool_scopes");
    assert!(
        actual == Some(&expected),
        "{}: the plugin configuration's tool_scopes is {} but the tool catalogue needs {expected}: {SYNC}",
        path.display(),
        actual.map_or_else(|| "missing".to_owned(), ToString::to_string),
    );
    assert_eq!(
        config["prm"]["scopes_supported"],
        json!(served.scopes_supported()),
        "{}: prm.scopes_supported: {SYNC}",
        path.display()
    );
}

/// The Envoy configurations to check: the repository's two, always, and `named` (the value of
/// `MCP_EDGE_ENVOY_YAML`), if set: it adds a file, never replaces the defaults.
fn envoy_configs(named: Option<std::ffi::OsString>) -> Vec<PathBuf> {
    let mut configs = vec![repo("envoy.yaml"), repo("docker/envoy.yaml")];
    configs.extend(named.map(PathBuf::from));
    configs
}

#[test]
fn envoy_tool_scopes_match_the_catalogue() {
    for config in envoy_configs(std::env::var_os("MCP_EDGE_ENVOY_YAML")) {
        check_envoy(&config);
    }
}

#[test]
fn a_named_envoy_config_adds_to_the_defaults() {
    let configs = envoy_configs(Some("stray.yaml".into()));
    assert_eq!(
        configs,
        [
            repo("envoy.yaml"),
            repo("docker/envoy.yaml"),
            PathBuf::from("stray.yaml")
        ],
    );
}

/// The strings of the array member `key` of `object` (none when it is absent).
fn strings<'a>(object: &'a Value, key: &str) -> Vec<&'a str> {
    object
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

#[test]
fn directory_scopes_and_tools_match_the_catalogue() {
    let path = repo("authz/directory.json");
    let directory: Value = serde_json::from_str(&read(&path)).expect("directory.json is JSON");
    let served = served();
    let scopes = served.scopes_supported();
    assert_eq!(
        strings(&directory, "scopes_supported"),
        scopes,
        "authz/directory.json: scopes_supported: {SYNC}"
    );
    let tools = served.tool_scopes();
    for section in ["users", "service_clients"] {
        let principals = directory.get(section).and_then(Value::as_object);
        for (name, principal) in principals.into_iter().flatten() {
            for scope in strings(principal, "scopes") {
                assert!(
                    scopes.iter().any(|s| s == scope),
                    "{section}.{name}: unknown scope {scope}"
                );
            }
            for tool in strings(principal, "allowed_tools") {
                assert!(
                    tools.contains_key(tool),
                    "{section}.{name}: unknown tool {tool}"
                );
            }
        }
    }
}
