//! The Envoy configuration a deployment runs, derived from the repository's `envoy.yaml` and
//! deploy/values.yaml, so the filter's plugin configuration, the listener's protections and the
//! clusters' limits are the ones the tests exercise. What changes for a deployment:
//! - the MCP listener binds 0.0.0.0 on `ports.envoy`; admin stays on 127.0.0.1 (`ports.envoy_admin`);
//!   other listeners of envoy.yaml are not carried over;
//! - a second listener on `ports.envoy_ready` answers only `GET /ready`, routed to the admin
//!   (the readiness probe and the ALB health check see Envoy's own readiness, and nothing else
//!   of the admin is reachable from outside the pod/task);
//! - the plugin's `resource`, `issuers`, JWKS `authority`/`path`, `prm.authorization_servers` and
//!   `assertion` come from the values; `allowed_origins` is emptied (envoy.yaml's are the local
//!   Inspector's); the global rate limit is on (replicas share one budget per tenant);
//! - the JWKS cluster reaches the issuer over TLS (SNI and the certificate's DNS name = the host,
//!   the system CA bundle); backend and rate limit service by their Kubernetes Service names, or
//!   on 127.0.0.1 in one ECS task; any other cluster of envoy.yaml is carried over as it is;
//! - the `.wasm`: a file on Kubernetes (the image volume), fetched over https by Envoy and checked
//!   against its sha256 on ECS.

use anyhow::{Context as _, Result};
use serde_json::{Value as Json, json};
use serde_yaml::Value;

use super::values::{Values, url_host};
use crate::docker_envoy::{at, http_filters_of};
use crate::scaled_envoy::global_rate_limit;

/// The system CA bundle in the official Envoy image (Ubuntu) and on Debian.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Where the Kubernetes Deployment mounts the filter image (its layer holds `plugin.wasm`).
pub const WASM_DIR_IN_POD: &str = "/etc/envoy/filter";
/// Where the Kubernetes Deployment mounts the Envoy configuration.
pub const CONFIG_DIR_IN_POD: &str = "/etc/envoy/config";
pub const CONFIG_FILE_NAME: &str = "envoy.yaml";

/// Where a deployment's Envoy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A pod of its own: backend and rate limit service behind their Services.
    Kubernetes,
    /// One ECS task with the backend and the rate limit service beside it.
    Ecs,
}

/// The Service DNS name of `name` in the values' namespace.
pub fn service_host(values: &Values, name: &str) -> String {
    format!("{name}.{}.svc.cluster.local", values.namespace)
}

fn to_yaml(v: Json) -> Result<Value> {
    Ok(serde_yaml::to_value(v)?)
}

fn socket(address: &str, port: u16) -> Json {
    json!({"socket_address": {"address": address, "port_value": port}})
}

fn load_assignment(name: &str, address: &str, port: u16) -> Json {
    json!({
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(address, port)}}]}],
    })
}

/// A TLS client context for `host`: SNI, the certificate must name `host`, the system CAs.
pub fn upstream_tls(host: &str) -> Json {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": host,
            "common_tls_context": {
                "validation_context": {
                    "trusted_ca": {"filename": CA_BUNDLE},
                    "match_typed_subject_alt_names": [
                        {"san_type": "DNS", "matcher": {"exact": host}}
                    ],
                },
            },
        },
    })
}

/// A cluster reaching `host:port` over TLS, by DNS.
fn tls_cluster(name: &str, host: &str, port: u16) -> Json {
    json!({
        "name": name,
        "type": "LOGICAL_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "5s",
        "load_assignment": load_assignment(name, host, port),
        "transport_socket": upstream_tls(host),
    })
}

/// The listener answering `GET /ready` from the admin, and 404 to anything else.
fn ready_listener(values: &Values) -> Json {
    json!({
        "name": "ready",
        "address": socket("0.0.0.0", values.ports.envoy_ready),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "ready",
                "route_config": {"virtual_hosts": [{
                    "name": "ready",
                    "domains": ["*"],
                    "routes": [
                        {"match": {"path": "/ready", "headers": [
                            {"name": ":method", "string_match": {"exact": "GET"}}
                        ]}, "route": {"cluster": "envoy_admin"}},
                        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
                    ],
                }]},
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                }],
            },
        }]}],
    })
}

/// The plugin configuration of envoy.yaml with the deployment's values.
pub fn plugin_config(base: &Json, values: &Values) -> Result<Json> {
    let mut plugin = base.clone();
    plugin["resource"] = json!(values.resource);
    plugin["issuers"] = json!([values.issuer]);
    let remote = plugin["jwks"]
        .get_mut("remote")
        .context("envoy.yaml's filter does not fetch its JWKS remotely")?;
    remote["cluster"] = json!("auth_server");
    remote["authority"] = json!(values.jwks.host);
    remote["path"] = json!(values.jwks.path);
    plugin["prm"]["authorization_servers"] = json!([values.issuer]);
    plugin["assertion"] =
        json!({"issuer": values.assertion.issuer, "audience": values.assertion.audience});
    plugin["allowed_origins"] = json!([]);
    plugin["global_rate_limit"] = global_rate_limit();
    Ok(plugin)
}

/// The Envoy configuration (a YAML value) for `target`.
pub fn deploy_envoy_config(base_yaml: &str, values: &Values, target: Target) -> Result<Value> {
    let mut doc: Value = serde_yaml::from_str(base_yaml)?;
    *at(&mut doc, &["admin", "address"])? = to_yaml(socket("127.0.0.1", values.ports.envoy_admin))?;

    let listeners = at(&mut doc, &["static_resources", "listeners"])?
        .as_sequence_mut()
        .context("listeners is not a list")?;
    let mut mcp = listeners
        .iter()
        .find(|l| l.get("name").and_then(Value::as_str) == Some("mcp"))
        .context("envoy.yaml has no listener named mcp")?
        .clone();
    *at(&mut mcp, &["address"])? = to_yaml(socket("0.0.0.0", values.ports.envoy))?;
    if target == Target::Ecs {
        let hcm = at(
            &mut mcp,
            &["filter_chains", "0", "filters", "0", "typed_config"],
        )?;
        *at(hcm, &["xff_num_trusted_hops"])? = Value::from(values.ecs.xff_num_trusted_hops);
    }
    let wasm = http_filters_of(&mut mcp)?
        .iter_mut()
        .find(|f| f.get("name").and_then(Value::as_str) == Some("envoy.filters.http.wasm"))
        .context("envoy.yaml's listener has no wasm filter")?;
    let config = at(wasm, &["typed_config", "config"])?;
    *at(config, &["vm_config", "code"])? = to_yaml(match target {
        Target::Kubernetes => {
            json!({"local": {"filename": format!("{WASM_DIR_IN_POD}/plugin.wasm")}})
        }
        Target::Ecs => json!({"remote": {
            "http_uri": {"uri": values.filter.wasm_url, "cluster": "wasm_source", "timeout": "30s"},
            "sha256": values.filter.wasm_sha256,
            "retry_policy": {"num_retries": 5},
        }}),
    })?;
    let plugin_value = at(config, &["configuration", "value"])?;
    let base_plugin: Json = serde_json::from_str(
        plugin_value
            .as_str()
            .context("the plugin configuration is not a string")?,
    )?;
    *plugin_value = Value::from(serde_json::to_string_pretty(&plugin_config(
        &base_plugin,
        values,
    )?)?);
    *listeners = vec![mcp, to_yaml(ready_listener(values))?];

    let (backend_host, ratelimit_host, dns) = match target {
        Target::Kubernetes => (
            service_host(values, "mcp-edge-backend"),
            service_host(values, "mcp-edge-ratelimit"),
            "STRICT_DNS",
        ),
        Target::Ecs => ("127.0.0.1".to_string(), "127.0.0.1".to_string(), "STATIC"),
    };
    let clusters = at(&mut doc, &["static_resources", "clusters"])?
        .as_sequence_mut()
        .context("clusters is not a list")?;
    let mut kept = Vec::new();
    for mut cluster in std::mem::take(clusters) {
        let name = cluster
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let (host, port) = match name.as_str() {
            "backend" => (backend_host.clone(), values.ports.backend),
            "mcp_edge_ratelimit" => (ratelimit_host.clone(), values.ports.ratelimit),
            // Replaced below by its TLS form.
            "auth_server" => continue,
            // A cluster this derivation does not know stays as envoy.yaml has it.
            _ => {
                kept.push(cluster);
                continue;
            }
        };
        *at(&mut cluster, &["type"])? = Value::from(dns);
        *at(&mut cluster, &["load_assignment"])? = to_yaml(load_assignment(&name, &host, port))?;
        kept.push(cluster);
    }
    kept.push(to_yaml(tls_cluster(
        "auth_server",
        &values.jwks.host,
        values.jwks.port,
    ))?);
    kept.push(to_yaml(json!({
        "name": "envoy_admin",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": load_assignment("envoy_admin", "127.0.0.1", values.ports.envoy_admin),
    }))?);
    if target == Target::Ecs {
        let host = url_host(&values.filter.wasm_url).context("filter.wasm_url has no host")?;
        kept.push(to_yaml(tls_cluster("wasm_source", host, 443))?);
    }
    *clusters = kept;
    Ok(doc)
}
