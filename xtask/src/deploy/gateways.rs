//! The filter on a managed Envoy: Envoy Gateway (`EnvoyExtensionPolicy` on the MCP HTTPRoute) and
//! Istio (`WasmPlugin` on the ingress gateway), both pulling the filter's OCI image by digest and
//! failing closed, with the same plugin configuration as the plain Envoy (only the clusters the
//! filter calls are named the way each control plane names them).
//!
//! - Envoy Gateway: its xDS has no `auth_server` or `mcp_edge_ratelimit` cluster, so an
//!   `EnvoyPatchPolicy` adds both (the same cluster definitions as the plain Envoy's; Envoy
//!   Gateway must run with `extensionApis.enableEnvoyPatchPolicy: true`), and an `EnvoyProxy`
//!   gives the proxy pods the secrets the filter reads from its environment (`env.hostKeys`).
//! - Istio: the issuer is a `ServiceEntry` with TLS originated by a `DestinationRule`, so the
//!   JWKS cluster is Istio's `outbound|<port>||<host>`, and the rate limit service's
//!   `outbound|<port>||<service host>`; the gateway's pods need the two secret variables.
//!   `failStrategy: FAIL_CLOSE` (Istio's spelling): a module that cannot be fetched or started
//!   refuses requests.

use serde_json::{Value as Json, json};

use super::envoy_config::service_host;
use super::kubernetes::{BACKEND, RATELIMIT, gateway_secret_env, ratelimit_secret_env};
use super::values::Values;

const NAME: &str = "mcp-edge";
/// The secrets the filter reads from the VM's environment.
pub const HOST_ENV_KEYS: [&str; 2] = ["MCP_EDGE_GATEWAY_SECRET", "MCP_EDGE_RATELIMIT_SECRET"];

fn metadata(values: &Values, name: &str) -> Json {
    json!({"name": name, "namespace": values.namespace,
           "labels": {"app.kubernetes.io/part-of": "mcp-edge"}})
}

/// The plugin configuration with the filter's clusters renamed.
fn plugin_with_clusters(plugin: &Json, jwks_cluster: &str, ratelimit_cluster: &str) -> Json {
    let mut plugin = plugin.clone();
    plugin["jwks"]["remote"]["cluster"] = json!(jwks_cluster);
    plugin["global_rate_limit"]["cluster"] = json!(ratelimit_cluster);
    plugin
}

/// The HTTPRoute of the MCP endpoint and its metadata, to the backend Service.
fn http_route(values: &Values) -> Json {
    let prefix = |path: &str| json!({"path": {"type": "PathPrefix", "value": path}});
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata(values, NAME),
        "spec": {
            "parentRefs": [{"name": values.envoy_gateway.gateway,
                            "namespace": values.envoy_gateway.gateway_namespace}],
            "hostnames": [values.resource_host().unwrap_or_default()],
            "rules": [{
                "matches": [prefix("/mcp"), prefix("/.well-known/oauth-protected-resource")],
                "backendRefs": [{"name": BACKEND, "port": values.ports.backend}],
            }],
        },
    })
}

/// Envoy Gateway: HTTPRoute, EnvoyExtensionPolicy, EnvoyPatchPolicy, EnvoyProxy.
pub fn envoy_gateway(values: &Values, plugin: &Json, clusters: &[Json]) -> Vec<Json> {
    let policy = json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyExtensionPolicy",
        "metadata": metadata(values, NAME),
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": NAME}],
            "wasm": [{
                "name": "mcp_edge",
                "rootID": "mcp_edge",
                "code": {"type": "Image", "image": {
                    "url": values.filter_image(),
                    "sha256": values.filter_digest_hex(),
                }},
                "config": plugin_with_clusters(plugin, "auth_server", "mcp_edge_ratelimit"),
                "env": {"hostKeys": HOST_ENV_KEYS},
                "failOpen": false,
            }],
        },
    });
    let patches: Vec<Json> = clusters
        .iter()
        .map(|cluster| {
            json!({
                "type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                "name": cluster["name"],
                "operation": {"op": "add", "path": "", "value": cluster},
            })
        })
        .collect();
    let patch = json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyPatchPolicy",
        "metadata": metadata(values, NAME),
        "spec": {
            "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                          "name": values.envoy_gateway.gateway},
            "type": "JSONPatch",
            "jsonPatches": patches,
        },
    });
    let proxy = json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyProxy",
        "metadata": metadata(values, NAME),
        "spec": {"provider": {"type": "Kubernetes", "kubernetes": {"envoyDeployment": {
            "container": {"env": [gateway_secret_env(values), ratelimit_secret_env(values)]},
        }}}},
    });
    vec![http_route(values), policy, patch, proxy]
}

/// Istio: ServiceEntry and DestinationRule for the issuer, the VirtualService of the MCP endpoint,
/// and the WasmPlugin (in the gateway's namespace, selecting its pods).
pub fn istio(values: &Values, plugin: &Json) -> Vec<Json> {
    let jwks = &values.jwks;
    let jwks_cluster = format!("outbound|{}||{}", jwks.port, jwks.host);
    let ratelimit_cluster = format!(
        "outbound|{}||{}",
        values.ports.ratelimit,
        service_host(values, RATELIMIT)
    );
    let service_entry = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": metadata(values, "mcp-edge-issuer"),
        "spec": {
            "hosts": [jwks.host],
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",
            "ports": [{"number": jwks.port, "name": "http-jwks", "protocol": "HTTP",
                       "targetPort": jwks.port}],
        },
    });
    // Istio originates TLS to the issuer: SNI and the certificate's name = the host.
    let destination_rule = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": metadata(values, "mcp-edge-issuer"),
        "spec": {
            "host": jwks.host,
            "trafficPolicy": {"tls": {"mode": "SIMPLE", "sni": jwks.host,
                                      "subjectAltNames": [jwks.host]}},
        },
    });
    let prefix = |path: &str| json!({"uri": {"prefix": path}});
    let virtual_service = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": metadata(values, NAME),
        "spec": {
            "hosts": [values.resource_host().unwrap_or_default()],
            "gateways": [values.istio.gateway],
            "http": [{
                "match": [prefix("/mcp"), prefix("/.well-known/oauth-protected-resource")],
                "route": [{"destination": {
                    "host": service_host(values, BACKEND),
                    "port": {"number": values.ports.backend},
                }}],
            }],
        },
    });
    let mut wasm_metadata = metadata(values, NAME);
    wasm_metadata["namespace"] = json!(values.istio.gateway_namespace);
    let wasm_plugin = json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": wasm_metadata,
        "spec": {
            "selector": {"matchLabels": values.istio.gateway_labels},
            "url": format!("oci://{}", values.filter_image()),
            "sha256": values.filter_digest_hex(),
            "imagePullPolicy": "IfNotPresent",
            "pluginName": "mcp_edge",
            "phase": "AUTHN",
            "type": "HTTP",
            "failStrategy": "FAIL_CLOSE",
            "pluginConfig": plugin_with_clusters(plugin, &jwks_cluster, &ratelimit_cluster),
            "vmConfig": {"env": HOST_ENV_KEYS.iter()
                .map(|k| json!({"name": k, "valueFrom": "HOST"}))
                .collect::<Vec<_>>()},
        },
    });
    vec![
        service_entry,
        destination_rule,
        virtual_service,
        wasm_plugin,
    ]
}
