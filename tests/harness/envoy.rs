//! The Envoy configuration of a test run, derived from the repository's `envoy.yaml`.
//!
//! Only what must differ on a test machine changes: ports, the `.wasm` path, the issuer's address
//! and a shorter JWKS refetch interval; tracing stays on only for a stack with an OTLP receiver
//! (`EnvoyPorts::otel_collector`), which then gets every request's span (100% sampled) as it ends. A second listener with the same filter forwards to the
//! recording upstream, so tests can see exactly what the filter lets through (its connections are
//! balanced exactly over the worker threads); a third forwards to it with no filter at all, the
//! baseline of the overhead benchmark.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::Value as Json;
use serde_yaml::Value;
use xtask::dev_certs::DEV_TLS_HOST;
use xtask::docker_envoy::at;

/// The recorder cluster's HTTP/1 options: read trailers (Envoy drops them otherwise).
const RECORDER_PROTOCOL_OPTIONS: &str = r#"
envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
  "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
  explicit_http_config:
    http_protocol_options:
      enable_trailers: true
"#;

#[derive(Debug, Clone)]
pub struct EnvoyPorts {
    pub listener: u16,
    pub recorded_listener: u16,
    /// The same recording upstream without the mcp-edge filter (benchmark baseline).
    pub baseline_listener: u16,
    pub admin: u16,
    pub backend: u16,
    pub recorder: u16,
    pub issuer: u16,
    /// The global rate limit service (`mcp_edge_ratelimit` cluster; asked only when the plugin's
    /// `global_rate_limit` is set).
    pub ratelimit: u16,
    /// An OTLP/gRPC receiver for Envoy's spans (`otel_collector` cluster). `None`: the tracing
    /// blocks and that cluster are left out, so a stack that reads no spans sends none.
    pub otel_collector: Option<u16>,
}

/// Envoy's OpenTelemetry tracer sends its spans once 5 of them are buffered or every 5 s: with a
/// receiver, each span is sent when it ends, so a test waits for a request's spans, not a timer.
const TRACING_RUNTIME: &str = r#"
layers:
- name: tracing_test
  static_layer:
    tracing.opentelemetry.min_flush_spans: 1
"#;

fn set_port(socket_address_parent: &mut Value, port: u16) -> Result<()> {
    *at(socket_address_parent, &["socket_address", "port_value"])? = Value::from(port);
    Ok(())
}

fn cluster_endpoint(cluster: &mut Value) -> Result<&mut Value> {
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
    )
}

/// The derived configuration as YAML text. `plugin_overrides` (a JSON object, or null) replaces
/// top-level fields of the filter's plugin configuration, e.g. smaller rate limits for a test; a
/// field overridden with null is removed (the filter's default applies).
pub fn derive_config(
    base_yaml: &str,
    ports: &EnvoyPorts,
    wasm: &Path,
    plugin_overrides: &Json,
) -> Result<String> {
    let mut doc: Value = serde_yaml::from_str(base_yaml)?;
    set_port(at(&mut doc, &["admin", "address"])?, ports.admin)?;

    let listener = at(&mut doc, &["static_resources", "listeners", "0"])?;
    set_port(at(listener, &["address"])?, ports.listener)?;
    let hcm = at(
        listener,
        &["filter_chains", "0", "filters", "0", "typed_config"],
    )?;
    match ports.otel_collector {
        None => {
            hcm.as_mapping_mut()
                .context("the connection manager is not a mapping")?
                .remove("tracing");
        }
        // Every request traced (envoy.yaml samples 1%), so a test sees the span of each.
        Some(_) => {
            *at(hcm, &["tracing", "random_sampling", "value"])? = Value::from(100);
        }
    }
    let wasm_config = at(hcm, &["http_filters", "0", "typed_config", "config"])?;
    *at(wasm_config, &["vm_config", "code", "local", "filename"])? =
        Value::from(wasm.to_string_lossy().into_owned());
    let plugin_value = at(wasm_config, &["configuration", "value"])?;
    let mut plugin: Json = serde_json::from_str(
        plugin_value
            .as_str()
            .context("plugin configuration is not a string")?,
    )?;
    // envoy.tls.yaml's URLs are https and name the dev certificates' host; envoy.yaml's are http.
    let (scheme, host) = match plugin["resource"].as_str() {
        Some(r) if r.starts_with("https://") => ("https", DEV_TLS_HOST),
        _ => ("http", "127.0.0.1"),
    };
    let issuer = format!("{scheme}://{host}:{}", ports.issuer);
    plugin["resource"] = Json::from(format!("{scheme}://{host}:{}/mcp", ports.listener));
    plugin["issuers"] = serde_json::json!([issuer]);
    plugin["prm"]["authorization_servers"] = serde_json::json!([issuer]);
    let remote = plugin["jwks"]
        .get_mut("remote")
        .context("envoy.yaml's filter does not fetch its JWKS remotely")?;
    remote["authority"] = Json::from(format!("{host}:{}", ports.issuer));
    remote["min_refetch_seconds"] = Json::from(1);
    // Tests read counters right after their requests: counts reach Envoy as they happen, unless
    // an override says otherwise (null: the filter's default, as the benchmarks run it).
    plugin["stats_flush_ms"] = Json::from(0);
    if let (Some(overrides), Some(fields)) = (plugin_overrides.as_object(), plugin.as_object_mut())
    {
        for (k, v) in overrides {
            if v.is_null() {
                fields.remove(k);
            } else {
                fields.insert(k.clone(), v.clone());
            }
        }
    }
    *plugin_value = Value::from(serde_json::to_string_pretty(&plugin)?);

    // A second listener, same filter, forwarding to the recording upstream.
    let mut recorded = listener.clone();
    *at(&mut recorded, &["name"])? = Value::from("mcp_recorded");
    set_port(at(&mut recorded, &["address"])?, ports.recorded_listener)?;
    let routes = at(
        &mut recorded,
        &[
            "filter_chains",
            "0",
            "filters",
            "0",
            "typed_config",
            "route_config",
            "virtual_hosts",
            "0",
            "routes",
        ],
    )?;
    for route in routes.as_sequence_mut().context("routes is not a list")? {
        *at(route, &["route", "cluster"])? = Value::from("recorder");
    }
    // Connections spread evenly over the worker threads (the kernel's reuse_port hashing may put
    // a handful on one), so a test can show that both workers served it.
    recorded
        .as_mapping_mut()
        .context("a listener is not a mapping")?
        .insert(
            Value::from("connection_balance_config"),
            serde_yaml::from_str("exact_balance: {}")?,
        );
    // A third: the recorded listener without the wasm filter.
    let mut baseline = recorded.clone();
    *at(&mut baseline, &["name"])? = Value::from("baseline_no_filter");
    set_port(at(&mut baseline, &["address"])?, ports.baseline_listener)?;
    at(
        &mut baseline,
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
    .context("http_filters is not a list")?
    .retain(|f| f.get("name").and_then(Value::as_str) != Some("envoy.filters.http.wasm"));
    at(&mut doc, &["static_resources", "listeners"])?
        .as_sequence_mut()
        .context("listeners is not a list")?
        .push(baseline);
    at(&mut doc, &["static_resources", "listeners"])?
        .as_sequence_mut()
        .context("listeners is not a list")?
        .push(recorded);

    if ports.otel_collector.is_some() {
        doc.as_mapping_mut()
            .context("envoy.yaml is not a mapping")?
            .insert(
                Value::from("layered_runtime"),
                serde_yaml::from_str(TRACING_RUNTIME)?,
            );
    }
    let clusters = at(&mut doc, &["static_resources", "clusters"])?
        .as_sequence_mut()
        .context("clusters is not a list")?;
    clusters.retain(|c| {
        ports.otel_collector.is_some()
            || c.get("name").and_then(Value::as_str) != Some("otel_collector")
    });
    let mut recorder = None;
    for cluster in clusters.iter_mut() {
        let name = cluster
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match name.as_str() {
            "backend" => {
                set_port(cluster_endpoint(cluster)?, ports.backend)?;
                let mut r = cluster.clone();
                *at(&mut r, &["name"])? = Value::from("recorder");
                *at(&mut r, &["load_assignment", "cluster_name"])? = Value::from("recorder");
                set_port(cluster_endpoint(&mut r)?, ports.recorder)?;
                // The recording upstream may end an answer with trailers (HTTP/1 chunked). It
                // speaks plain HTTP, whatever the backend cluster's TLS.
                let r_map = r.as_mapping_mut().context("a cluster is not a mapping")?;
                r_map.remove("transport_socket");
                r_map.insert(
                    Value::from("typed_extension_protocol_options"),
                    serde_yaml::from_str(RECORDER_PROTOCOL_OPTIONS)?,
                );
                recorder = Some(r);
            }
            "auth_server" => set_port(cluster_endpoint(cluster)?, ports.issuer)?,
            "mcp_edge_ratelimit" => set_port(cluster_endpoint(cluster)?, ports.ratelimit)?,
            "otel_collector" => {
                let port = ports
                    .otel_collector
                    .context("otel_collector kept without a receiver")?;
                set_port(cluster_endpoint(cluster)?, port)?
            }
            other => bail!("envoy.yaml has a cluster the tests do not know: {other}"),
        }
    }
    clusters.push(recorder.context("envoy.yaml has no backend cluster")?);
    Ok(serde_yaml::to_string(&doc)?)
}

/// `config` (derived YAML) with Envoy's own span batching (the runtime layer that sends each span
/// as it ends removed).
pub fn with_batched_spans(config: &str) -> Result<String> {
    let mut doc: Value = serde_yaml::from_str(config)?;
    doc.as_mapping_mut()
        .context("the configuration is not a mapping")?
        .remove("layered_runtime");
    Ok(serde_yaml::to_string(&doc)?)
}

/// `config` (derived YAML) with every route timeout that is not `0s` (no timeout) set to
/// `timeout`, on every listener: a test can show which requests a route timeout cuts without
/// waiting for the real 60 s.
pub fn with_route_timeout(config: &str, timeout: &str) -> Result<String> {
    let mut doc: Value = serde_yaml::from_str(config)?;
    let listeners = at(&mut doc, &["static_resources", "listeners"])?
        .as_sequence_mut()
        .context("listeners is not a list")?;
    for listener in listeners {
        let hcm = at(
            listener,
            &["filter_chains", "0", "filters", "0", "typed_config"],
        )?;
        let routes = at(hcm, &["route_config", "virtual_hosts", "0", "routes"])?
            .as_sequence_mut()
            .context("routes is not a list")?;
        for route in routes {
            let route_timeout = at(route, &["route", "timeout"])?;
            if route_timeout.as_str() != Some("0s") {
                *route_timeout = Value::from(timeout);
            }
        }
    }
    Ok(serde_yaml::to_string(&doc)?)
}
