//! The Envoy configurations of the side-by-side benchmark (`scripts/bench.sh`), derived from the
//! repository's `envoy.yaml` so every setup runs the listener users run (the same connection
//! manager settings, timeouts, access log and overload manager); only the HTTP filter chain and
//! the addresses differ between setups:
//! - passthrough: no filter before the router;
//! - noop: a wasm filter that only buffers the body (`bench/noop-filter`), the floor for any wasm
//!   filter that reads the body;
//! - native: Envoy's own filters as a user would chain them (`bench/native-chain.yaml`);
//! - mcp-edge: envoy.yaml's filter with its JWKS inline and rate limits that never throttle, in
//!   front of the fixed-200 upstream or the real backend;
//! - mcp-edge global: the same, also asking the global rate limit service (`ratelimit/`) on every
//!   request, as `scripts/run.sh --scaled` does (`crate::scaled_envoy::global_rate_limit`).
//!
//! Tokens are for envoy.yaml's issuer and resource whatever ports a run picks.
//!
//! The upstream is a second Envoy answering every request with a fixed 200.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::Value as Json;
use serde_yaml::Value;

use crate::docker_envoy::{at, http_filters_of};

/// The ports of one benchmark run.
#[derive(Debug, Clone, Copy)]
pub struct BenchPorts {
    pub edge: u16,
    pub edge_admin: u16,
    pub upstream: u16,
    pub upstream_admin: u16,
    pub backend: u16,
    /// The global rate limit service (`mcp-edge-ratelimit`), for the global setup.
    pub ratelimit: u16,
}

/// The edge setups that are an Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeSetup {
    Passthrough,
    Noop,
    Native,
    McpEdge,
    /// mcp-edge in front of the real backend instead of the fixed-200 upstream.
    McpEdgeBackend,
    /// mcp-edge asking the global rate limit service on every request (`global_rate_limit`).
    McpEdgeGlobal,
}

impl EdgeSetup {
    pub const ALL: [EdgeSetup; 6] = [
        Self::Passthrough,
        Self::Noop,
        Self::Native,
        Self::McpEdge,
        Self::McpEdgeBackend,
        Self::McpEdgeGlobal,
    ];

    /// The file name stem of its configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Passthrough => "passthrough",
            Self::Noop => "noop",
            Self::Native => "native",
            Self::McpEdge => "edge",
            Self::McpEdgeBackend => "edge-backend",
            Self::McpEdgeGlobal => "edge-global",
        }
    }
}

/// What the configurations are made from.
pub struct BenchInputs<'a> {
    /// envoy.yaml's text.
    pub base_yaml: &'a str,
    /// bench/native-chain.yaml's text: a mapping with the `http_filters` of the native chain.
    pub native_chain_yaml: &'a str,
    pub filter_wasm: &'a Path,
    pub noop_wasm: &'a Path,
    /// The JWKS both mcp-edge (inline) and the native chain (`local_jwks` file) trust.
    pub jwks: &'a Json,
    pub jwks_file: &'a Path,
}

/// The global setup's wait for the rate limit service: the scaled-out stack's 20 ms is missed now
/// and then on a loaded 2-core machine, and a check that fails open measures nothing; the bench
/// marks any that still do.
pub const GLOBAL_TIMEOUT_MS: u64 = 100;

/// A rate far above anything the machine can send, so no setup is throttled.
pub const UNTHROTTLED_PER_MINUTE: u64 = 1_000_000_000;

/// The issuer and the audience (mcp-edge's `resource`) of the benchmark's tokens: envoy.yaml's
/// first issuer and its resource, whatever ports the run listens on (so token files stay valid
/// from one run to the next).
pub fn issuer_and_audience(base_yaml: &str) -> Result<(String, String)> {
    let mut doc: Value = serde_yaml::from_str(base_yaml)?;
    let plugin = plugin_json(wasm_filter(http_filters(&mut doc)?)?)?;
    let text = |v: &Json, what: &str| {
        v.as_str()
            .map(str::to_string)
            .with_context(|| format!("envoy.yaml's filter names no {what}"))
    };
    Ok((
        text(&plugin["issuers"][0], "issuer")?,
        text(&plugin["resource"], "resource")?,
    ))
}

fn http_filters(doc: &mut Value) -> Result<&mut Vec<Value>> {
    http_filters_of(at(doc, &["static_resources", "listeners", "0"])?)
}

fn named<'a>(filters: &'a mut [Value], name: &str) -> Result<&'a mut Value> {
    filters
        .iter_mut()
        .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
        .with_context(|| format!("no {name} filter"))
}

fn wasm_filter(filters: &mut [Value]) -> Result<&mut Value> {
    at(
        named(filters, "envoy.filters.http.wasm")?,
        &["typed_config", "config"],
    )
}

fn plugin_json(wasm_config: &mut Value) -> Result<Json> {
    let text = at(wasm_config, &["configuration", "value"])?
        .as_str()
        .context("plugin configuration is not a string")?;
    Ok(serde_json::from_str(text)?)
}

fn set_port(parent: &mut Value, port: u16) -> Result<()> {
    *at(parent, &["socket_address", "port_value"])? = Value::from(port);
    Ok(())
}

/// The edge Envoy's configuration for `setup`.
pub fn edge_config(
    setup: EdgeSetup,
    inputs: &BenchInputs<'_>,
    ports: &BenchPorts,
) -> Result<String> {
    let mut doc: Value = serde_yaml::from_str(inputs.base_yaml)?;
    set_port(at(&mut doc, &["admin", "address"])?, ports.edge_admin)?;
    set_port(
        at(&mut doc, &["static_resources", "listeners", "0", "address"])?,
        ports.edge,
    )?;
    let filters = http_filters(&mut doc)?;
    match setup {
        EdgeSetup::Passthrough => {
            filters.retain(|f| f.get("name").and_then(Value::as_str) == Some(ROUTER));
        }
        EdgeSetup::Noop => noop_filter(wasm_filter(filters)?, inputs.noop_wasm)?,
        EdgeSetup::Native => *filters = native_chain(inputs)?,
        EdgeSetup::McpEdge | EdgeSetup::McpEdgeBackend => {
            mcp_edge_filter(wasm_filter(filters)?, inputs, false)?;
        }
        EdgeSetup::McpEdgeGlobal => mcp_edge_filter(wasm_filter(filters)?, inputs, true)?,
    }
    let upstream = match setup {
        EdgeSetup::McpEdgeBackend => ports.backend,
        _ => ports.upstream,
    };
    let clusters = at(&mut doc, &["static_resources", "clusters"])?
        .as_sequence_mut()
        .context("clusters is not a list")?;
    for cluster in clusters {
        // auth_server is never called (the keys are inline); it points at the upstream too.
        let port = match cluster.get("name").and_then(Value::as_str) {
            Some(RATELIMIT_CLUSTER) => ports.ratelimit,
            _ => upstream,
        };
        set_port(
            at(
                cluster,
                &[
                    "load_assignment",
                    "endpoints",
                    "0",
                    "lb_endpoints",
                    "0",
                    "endpoint",
                    "address",
                ],
            )?,
            port,
        )?;
    }
    Ok(serde_yaml::to_string(&doc)?)
}

const ROUTER: &str = "envoy.filters.http.router";
/// envoy.yaml's cluster of the global rate limit service.
const RATELIMIT_CLUSTER: &str = "mcp_edge_ratelimit";

/// The noop filter in place of mcp-edge, with the same VM settings and no plugin configuration.
fn noop_filter(wasm_config: &mut Value, wasm: &Path) -> Result<()> {
    *at(wasm_config, &["name"])? = Value::from("noop");
    *at(wasm_config, &["root_id"])? = Value::from("noop");
    *at(wasm_config, &["vm_config", "vm_id"])? = Value::from("noop");
    *at(wasm_config, &["vm_config", "code", "local", "filename"])? =
        Value::from(wasm.to_string_lossy().into_owned());
    let config = wasm_config
        .as_mapping_mut()
        .context("the wasm config is not a mapping")?;
    config.remove("configuration");
    Ok(())
}

/// envoy.yaml's plugin configuration with the bench's keys (inline) and rate limits, and with
/// `global_rate_limit` on when `global` (a service limits file that never throttles either:
/// `scripts/bench.sh` writes it).
fn mcp_edge_filter(wasm_config: &mut Value, inputs: &BenchInputs<'_>, global: bool) -> Result<()> {
    *at(wasm_config, &["vm_config", "code", "local", "filename"])? =
        Value::from(inputs.filter_wasm.to_string_lossy().into_owned());
    let mut plugin = plugin_json(wasm_config)?;
    plugin["jwks"] = serde_json::json!({ "inline": inputs.jwks });
    let unthrottled = serde_json::json!({"requests_per_minute": UNTHROTTLED_PER_MINUTE, "burst": UNTHROTTLED_PER_MINUTE});
    let tiers = plugin["rate_limits"]
        .as_object_mut()
        .context("envoy.yaml's filter has no rate_limits")?;
    for limit in tiers.values_mut() {
        *limit = unthrottled.clone();
    }
    if global {
        let mut ask = crate::scaled_envoy::global_rate_limit();
        ask["timeout_ms"] = GLOBAL_TIMEOUT_MS.into();
        plugin["global_rate_limit"] = ask;
    }
    *at(wasm_config, &["configuration", "value"])? =
        Value::from(serde_json::to_string_pretty(&plugin)?);
    Ok(())
}

/// bench/native-chain.yaml's filters, trusting the bench's JWKS file for envoy.yaml's resource.
fn native_chain(inputs: &BenchInputs<'_>) -> Result<Vec<Value>> {
    let (_, audience) = issuer_and_audience(inputs.base_yaml)?;
    let mut chain: Value = serde_yaml::from_str(inputs.native_chain_yaml)?;
    let filters = at(&mut chain, &["http_filters"])?
        .as_sequence_mut()
        .context("native-chain.yaml: http_filters is not a list")?;
    let providers = at(
        named(filters, "envoy.filters.http.jwt_authn")?,
        &["typed_config", "providers"],
    )?
    .as_mapping_mut()
    .context("native-chain.yaml: providers is not a mapping")?;
    for (_, provider) in providers.iter_mut() {
        *at(provider, &["local_jwks", "filename"])? =
            Value::from(inputs.jwks_file.to_string_lossy().into_owned());
        *at(provider, &["audiences"])? = Value::Sequence(vec![Value::from(audience.as_str())]);
    }
    if filters
        .last()
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        != Some(ROUTER)
    {
        bail!("native-chain.yaml: the router must be the last filter");
    }
    Ok(filters.clone())
}

/// The upstream: an Envoy answering every request with the same 200 and a small JSON-RPC result.
///
/// The buffer filter reads the whole request before the direct response: an HTTP/1.1 answer sent
/// before the request's body is in makes Envoy close the connection, and every request through the
/// edge would then pay a new upstream connection (it did, until this filter: one connection per
/// request, ~100 µs of the edge's CPU each).
pub fn upstream_config(ports: &BenchPorts) -> String {
    format!(
        r#"# GENERATED by `cargo xtask bench-setup` (xtask/src/bench_envoy.rs): the benchmark's upstream.
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin} }}
static_resources:
  listeners:
  - name: fixed_200
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: upstream
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response:
                  status: 200
                  body:
                    inline_string: '{{"jsonrpc":"2.0","id":1,"result":{{"content":[{{"type":"text","text":"{{\"projects\":[]}}"}}],"structuredContent":{{"projects":[]}},"isError":false}}}}'
                response_headers_to_add:
                - header: {{ key: content-type, value: application/json }}
          http_filters:
          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 1048576
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
        admin = ports.upstream_admin,
        port = ports.upstream,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync_config::repo_root;

    const PORTS: BenchPorts = BenchPorts {
        edge: 1001,
        edge_admin: 1002,
        upstream: 1003,
        upstream_admin: 1004,
        backend: 1005,
        ratelimit: 1006,
    };

    fn read(path: &str) -> String {
        std::fs::read_to_string(repo_root().join(path)).expect("a repository file")
    }

    fn derived(setup: EdgeSetup) -> Value {
        let (base, native) = (read("envoy.yaml"), read("bench/native-chain.yaml"));
        let jwks = serde_json::json!({"keys": []});
        let inputs = BenchInputs {
            base_yaml: &base,
            native_chain_yaml: &native,
            filter_wasm: Path::new("/f.wasm"),
            noop_wasm: Path::new("/noop.wasm"),
            jwks: &jwks,
            jwks_file: Path::new("/jwks.json"),
        };
        serde_yaml::from_str(&edge_config(setup, &inputs, &PORTS).expect("derived")).expect("YAML")
    }

    fn filter_names(doc: &mut Value) -> Vec<String> {
        http_filters(doc)
            .expect("filters")
            .iter()
            .filter_map(|f| f.get("name")?.as_str().map(str::to_string))
            .collect()
    }

    fn port(v: &mut Value, path: &[&str]) -> u64 {
        at(v, path).expect("an address").as_u64().expect("a port")
    }

    #[test]
    fn only_the_filters_and_addresses_differ() {
        let listener_port = [
            "static_resources",
            "listeners",
            "0",
            "address",
            "socket_address",
            "port_value",
        ];
        let cluster_port = [
            "static_resources",
            "clusters",
            "0",
            "load_assignment",
            "endpoints",
            "0",
            "lb_endpoints",
            "0",
            "endpoint",
            "address",
            "socket_address",
            "port_value",
        ];
        let base: Value = serde_yaml::from_str(&read("envoy.yaml")).expect("envoy.yaml");
        for (setup, filters, upstream) in [
            (EdgeSetup::Passthrough, vec![ROUTER], PORTS.upstream),
            (
                EdgeSetup::Noop,
                vec!["envoy.filters.http.wasm", ROUTER],
                PORTS.upstream,
            ),
            (
                EdgeSetup::Native,
                vec![
                    "envoy.filters.http.jwt_authn",
                    "envoy.filters.http.mcp",
                    "envoy.filters.http.rbac",
                    "envoy.filters.http.local_ratelimit",
                    ROUTER,
                ],
                PORTS.upstream,
            ),
            (
                EdgeSetup::McpEdge,
                vec!["envoy.filters.http.wasm", ROUTER],
                PORTS.upstream,
            ),
            (
                EdgeSetup::McpEdgeBackend,
                vec!["envoy.filters.http.wasm", ROUTER],
                PORTS.backend,
            ),
            (
                EdgeSetup::McpEdgeGlobal,
                vec!["envoy.filters.http.wasm", ROUTER],
                PORTS.upstream,
            ),
        ] {
            let mut doc = derived(setup);
            assert_eq!(filter_names(&mut doc), filters, "{setup:?}");
            assert_eq!(port(&mut doc, &listener_port), u64::from(PORTS.edge));
            assert_eq!(port(&mut doc, &cluster_port), u64::from(upstream));
            let hcm = [
                "static_resources",
                "listeners",
                "0",
                "filter_chains",
                "0",
                "filters",
                "0",
                "typed_config",
            ];
            for setting in [
                "access_log",
                "request_timeout",
                "http2_protocol_options",
                "normalize_path",
            ] {
                let mut expected = base.clone();
                assert_eq!(
                    at(&mut doc, &hcm).expect("hcm").get(setting),
                    at(&mut expected, &hcm).expect("hcm").get(setting),
                    "{setup:?} keeps envoy.yaml's {setting}"
                );
            }
        }
    }

    #[test]
    fn mcp_edge_runs_envoy_yaml_s_plugin_with_inline_keys_and_no_throttling() {
        let mut doc = derived(EdgeSetup::McpEdge);
        let wasm = wasm_filter(http_filters(&mut doc).expect("filters")).expect("wasm");
        let filename = at(wasm, &["vm_config", "code", "local", "filename"]).expect("code");
        assert_eq!(filename.as_str(), Some("/f.wasm"));
        let plugin = plugin_json(wasm).expect("plugin");
        assert_eq!(plugin["jwks"], serde_json::json!({"inline": {"keys": []}}));
        assert_eq!(
            plugin["resource"], "http://127.0.0.1:8080/mcp",
            "envoy.yaml's"
        );
        for tier in ["free", "pro", "enterprise"] {
            assert_eq!(
                plugin["rate_limits"][tier]["requests_per_minute"],
                UNTHROTTLED_PER_MINUTE
            );
        }
        assert_eq!(
            plugin["algorithms"],
            serde_json::json!(["RS256", "ES256", "EdDSA"])
        );
        assert!(
            plugin.get("global_rate_limit").is_none(),
            "off, as in envoy.yaml"
        );
    }

    /// The global setup is the same plugin asking the service as the scaled-out stack does (with
    /// the bench's timeout), on the service's port; every other setup leaves the global limit off.
    #[test]
    fn the_global_setup_asks_the_rate_limit_service_on_its_port() {
        let mut doc = derived(EdgeSetup::McpEdgeGlobal);
        let plugin =
            plugin_json(wasm_filter(http_filters(&mut doc).expect("filters")).expect("wasm"))
                .expect("plugin");
        let mut expected = crate::scaled_envoy::global_rate_limit();
        expected["timeout_ms"] = GLOBAL_TIMEOUT_MS.into();
        assert_eq!(plugin["global_rate_limit"], expected);
        assert_eq!(
            plugin["rate_limits"]["pro"]["requests_per_minute"],
            UNTHROTTLED_PER_MINUTE
        );
        let clusters = at(&mut doc, &["static_resources", "clusters"])
            .expect("clusters")
            .as_sequence_mut()
            .expect("a list");
        let service = clusters
            .iter_mut()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(RATELIMIT_CLUSTER))
            .expect("envoy.yaml's rate limit cluster");
        let address = crate::docker_envoy::cluster_socket_address(service).expect("address");
        assert_eq!(port(address, &["port_value"]), u64::from(PORTS.ratelimit));
        for setup in [EdgeSetup::McpEdge, EdgeSetup::McpEdgeBackend] {
            let mut doc = derived(setup);
            let plugin =
                plugin_json(wasm_filter(http_filters(&mut doc).expect("filters")).expect("wasm"))
                    .expect("plugin");
            assert!(plugin.get("global_rate_limit").is_none(), "{setup:?}");
        }
    }

    /// The native chain's RBAC has one policy per tool of envoy.yaml's tool_scopes, with its scope.
    #[test]
    fn the_native_chain_authorizes_every_tool_of_envoy_yaml_by_its_scope() {
        let mut doc = derived(EdgeSetup::Native);
        let mut base: Value = serde_yaml::from_str(&read("envoy.yaml")).expect("envoy.yaml");
        let plugin =
            plugin_json(wasm_filter(http_filters(&mut base).expect("filters")).expect("wasm"))
                .expect("plugin");
        let tool_scopes = plugin["tool_scopes"].as_object().expect("tool_scopes");
        let filters = http_filters(&mut doc).expect("filters");
        let policies = at(
            named(filters, "envoy.filters.http.rbac").expect("rbac"),
            &["typed_config", "rules", "policies"],
        )
        .expect("policies")
        .as_mapping_mut()
        .expect("a mapping");
        let matched = |policy: &mut Value, path: &[&str]| {
            at(policy, path)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
        };
        let mut tools = Vec::new();
        for (name, policy) in policies.iter_mut() {
            let name = name.as_str().expect("a policy name").to_string();
            if name == "token-only" {
                continue;
            }
            let tool = matched(
                policy,
                &[
                    "permissions",
                    "0",
                    "and_rules",
                    "rules",
                    "1",
                    "sourced_metadata",
                    "metadata_matcher",
                    "value",
                    "string_match",
                    "exact",
                ],
            );
            let scope = matched(
                policy,
                &[
                    "principals",
                    "0",
                    "and_ids",
                    "ids",
                    "1",
                    "sourced_metadata",
                    "metadata_matcher",
                    "value",
                    "list_match",
                    "one_of",
                    "string_match",
                    "exact",
                ],
            );
            let allowed = matched(
                policy,
                &[
                    "principals",
                    "0",
                    "and_ids",
                    "ids",
                    "2",
                    "or_ids",
                    "ids",
                    "0",
                    "sourced_metadata",
                    "metadata_matcher",
                    "value",
                    "list_match",
                    "one_of",
                    "string_match",
                    "exact",
                ],
            );
            assert_eq!(
                tool.as_deref(),
                Some(name.as_str()),
                "policy {name} names its tool"
            );
            assert_eq!(
                allowed.as_deref(),
                Some(name.as_str()),
                "policy {name} checks allowed_tools"
            );
            assert_eq!(
                scope.as_deref(),
                tool_scopes.get(&name).and_then(|s| s.as_str()),
                "policy {name} requires envoy.yaml's scope"
            );
            tools.push(name);
        }
        let mut expected: Vec<_> = tool_scopes.keys().cloned().collect();
        expected.sort();
        tools.sort();
        assert_eq!(tools, expected);
    }
}
