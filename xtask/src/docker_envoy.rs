//! docker-compose's Envoy configuration (`docker/envoy.yaml`), derived from the repository's
//! `envoy.yaml` so the two cannot drift: only what must differ in Docker changes (listeners and
//! admin on 0.0.0.0, clusters resolved by compose service name, the mounted `.wasm`). The plugin
//! configuration stays as it is: clients reach the containers through the same 127.0.0.1 URLs.
//! `cargo xtask sync-config` writes it; tests/compose.rs compares the committed file with it.

use anyhow::{Context as _, Result, bail};
use serde_yaml::Value;

/// Where docker-compose.yml mounts the filter in the Envoy container.
pub const WASM_IN_CONTAINER: &str = "/etc/envoy/mcp_edge_filter.wasm";

/// The compose service behind each Envoy cluster.
pub const CLUSTER_SERVICES: &[(&str, &str)] = &[
    ("backend", "backend"),
    ("auth_server", "authz"),
    ("mcp_edge_ratelimit", "ratelimit"),
    ("otel_collector", "otel-collector"),
];

const HEADER: &str = "\
# GENERATED from ../envoy.yaml by xtask/src/docker_envoy.rs: do not edit. docker-compose's Envoy reads it.
# Differences: listeners and admin on 0.0.0.0, clusters by compose service name (STRICT_DNS), the
# .wasm mounted at /etc/envoy/. Regenerate: cargo xtask sync-config
";

/// The value at `path` (map keys, or list indexes written as numbers).
pub fn at<'a>(v: &'a mut Value, path: &[&str]) -> Result<&'a mut Value> {
    let mut cur = v;
    for key in path {
        cur = match key.parse::<usize>() {
            Ok(i) => cur.get_mut(i),
            Err(_) => cur.get_mut(*key),
        }
        .with_context(|| format!("no {}", path.join(".")))?;
    }
    Ok(cur)
}

/// The compose service of Envoy cluster `cluster`.
pub fn service_of(cluster: &str) -> Option<&'static str> {
    CLUSTER_SERVICES
        .iter()
        .find(|(c, _)| *c == cluster)
        .map(|(_, s)| *s)
}

/// docker/envoy.yaml's text for the given envoy.yaml text.
pub fn docker_envoy_config(base_yaml: &str) -> Result<String> {
    let mut doc: Value = serde_yaml::from_str(base_yaml)?;
    *at(&mut doc, &["admin", "address", "socket_address", "address"])? = "0.0.0.0".into();
    let listeners = at(&mut doc, &["static_resources", "listeners"])?
        .as_sequence_mut()
        .context("listeners is not a list")?;
    for listener in listeners {
        for_docker_listener(listener)?;
    }
    let clusters = at(&mut doc, &["static_resources", "clusters"])?
        .as_sequence_mut()
        .context("clusters is not a list")?;
    for cluster in clusters {
        for_docker_cluster(cluster)?;
    }
    Ok(format!("{HEADER}{}", serde_yaml::to_string(&doc)?))
}

/// The HTTP filters of a listener's first filter chain (its connection manager's).
pub fn http_filters_of(listener: &mut Value) -> Result<&mut Vec<Value>> {
    at(
        listener,
        &[
            "filter_chains",
            "0",
            "filters",
            "0",
            "typed_config",
            "http_filters",
        ],
    )?
    .as_sequence_mut()
    .context("http_filters is not a list")
}

/// Changes the mcp-edge plugin configuration (JSON) of `listener`'s wasm filter with `edit`.
pub fn edit_plugin_config(
    listener: &mut Value,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Result<()> {
    let wasm = http_filters_of(listener)?
        .iter_mut()
        .find(|f| f.get("name").and_then(Value::as_str) == Some("envoy.filters.http.wasm"))
        .context("envoy.yaml's listener has no wasm filter")?;
    let plugin_value = at(wasm, &["typed_config", "config", "configuration", "value"])?;
    let mut plugin: serde_json::Value = serde_json::from_str(
        plugin_value
            .as_str()
            .context("the plugin configuration is not a string")?,
    )?;
    edit(&mut plugin);
    *plugin_value = Value::from(serde_json::to_string_pretty(&plugin)?);
    Ok(())
}

/// Listens on 0.0.0.0 and loads the filter from where the container mounts it.
fn for_docker_listener(listener: &mut Value) -> Result<()> {
    *at(listener, &["address", "socket_address", "address"])? = "0.0.0.0".into();
    for filter in http_filters_of(listener)? {
        if filter.get("name").and_then(Value::as_str) == Some("envoy.filters.http.wasm") {
            *at(
                filter,
                &[
                    "typed_config",
                    "config",
                    "vm_config",
                    "code",
                    "local",
                    "filename",
                ],
            )? = WASM_IN_CONTAINER.into();
        }
    }
    Ok(())
}

/// Resolves the cluster's one endpoint by its compose service name.
fn for_docker_cluster(cluster: &mut Value) -> Result<()> {
    let name = cluster
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(service) = service_of(&name) else {
        bail!("envoy.yaml has a cluster docker-compose does not know: {name}");
    };
    *at(cluster, &["type"])? = "STRICT_DNS".into();
    *at(cluster_socket_address(cluster)?, &["address"])? = service.into();
    Ok(())
}

/// The cluster named `name` of an Envoy configuration (`doc`, the whole document).
pub fn cluster_named<'a>(doc: &'a mut Value, name: &str) -> Result<&'a mut Value> {
    at(doc, &["static_resources", "clusters"])?
        .as_sequence_mut()
        .context("clusters is not a list")?
        .iter_mut()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .with_context(|| format!("envoy.yaml has no {name} cluster"))
}

/// The `socket_address` of a cluster's one endpoint.
pub fn cluster_socket_address(cluster: &mut Value) -> Result<&mut Value> {
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
            "socket_address",
        ],
    )
}
