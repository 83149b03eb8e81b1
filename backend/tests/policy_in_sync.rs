//! `envoy.yaml` and the tool catalogue agree on which scope each tool needs.
//!
//! The filter authorizes tool calls with the `tool_scopes` map of its plugin configuration (the
//! JSON string under `typed_config.config.configuration.value` of the `envoy.filters.http.wasm`
//! filter); the backend derives the same map from its tools' annotations. This test reads the
//! config (`../envoy.yaml`, or the file named by `MCP_EDGE_ENVOY_YAML`) and fails, printing the map
//! to paste, when the two differ.

use std::path::PathBuf;

use mcp_edge_backend::tools::tool_scopes;
use serde_yaml::Value as Yaml;

const WASM_FILTER: &str = "envoy.filters.http.wasm";

fn envoy_yaml_path() -> PathBuf {
    match std::env::var_os("MCP_EDGE_ENVOY_YAML") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../envoy.yaml"),
    }
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

/// The map as it should appear in the plugin configuration JSON.
fn paste_hint() -> String {
    let map = serde_json::to_string_pretty(&tool_scopes()).expect("serialise");
    format!("\"tool_scopes\": {map}")
}

#[test]
fn envoy_tool_scopes_match_the_catalogue() {
    let path = envoy_yaml_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let doc: Yaml =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));

    let mut filters = Vec::new();
    wasm_filters(&doc, &mut filters);
    assert_eq!(
        filters.len(),
        1,
        "{}: expected exactly one {WASM_FILTER} filter, found {}",
        path.display(),
        filters.len()
    );
    let value = filters[0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .unwrap_or_else(|| {
            panic!(
                "{}: the {WASM_FILTER} filter has no string at typed_config.config.configuration.value",
                path.display()
            )
        });
    let config: serde_json::Value = serde_json::from_str(value).unwrap_or_else(|e| {
        panic!(
            "{}: the plugin configuration is not JSON: {e}",
            path.display()
        )
    });

    let expected = serde_json::to_value(tool_scopes()).expect("serialise");
    let actual = config.get("tool_scopes");
    assert!(
        actual == Some(&expected),
        "{}: the plugin configuration's tool_scopes is {} but the backend's tool catalogue needs:\n\n{}\n\n\
         Paste that into the JSON under typed_config.config.configuration.value (or run \
         `mcp-edge-backend --print-tool-scopes`).",
        path.display(),
        actual.map_or_else(|| "missing".to_owned(), ToString::to_string),
        paste_hint()
    );
}
