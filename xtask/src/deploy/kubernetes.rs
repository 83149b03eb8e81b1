//! The plain-Envoy Kubernetes manifests: Envoy (ConfigMap, Deployment with the filter's OCI image
//! mounted as an image volume, Service, HorizontalPodAutoscaler, PodDisruptionBudget), the
//! Secret every component reads, the backend (a StatefulSet: each replica's usage outbox on its own
//! volume, so a pod that is replaced delivers what it committed), Redis (a StatefulSet, append-only
//! file fsynced on every write) and the rate limit service (its limits file from
//! ratelimit/limits.yaml). Everything runs as a non-root user with a read-only root filesystem.

use serde_json::{Value as Json, json};

use super::envoy_config::{CONFIG_DIR_IN_POD, CONFIG_FILE_NAME, WASM_DIR_IN_POD, service_host};
use super::values::Values;
use crate::oci_image::sha256_digest;

pub const ENVOY: &str = "mcp-edge-envoy";
pub const BACKEND: &str = "mcp-edge-backend";
pub const RATELIMIT: &str = "mcp-edge-ratelimit";
pub const REDIS: &str = "mcp-edge-redis";
const LIMITS_FILE: &str = "limits.yaml";
const OUTBOX_DIR: &str = "/var/lib/mcp-edge/outbox";
/// The unprivileged user of backend/Dockerfile and ratelimit/Dockerfile.
const NOBODY: u32 = 65534;
/// The `envoy` user of the official Envoy image.
const ENVOY_UID: u32 = 101;
/// The `redis` user of the official Redis image.
const REDIS_UID: u32 = 999;

fn labels(name: &str) -> Json {
    json!({"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "mcp-edge"})
}

fn metadata(values: &Values, name: &str) -> Json {
    json!({"name": name, "namespace": values.namespace, "labels": labels(name)})
}

fn selector(name: &str) -> Json {
    json!({"matchLabels": {"app.kubernetes.io/name": name}})
}

fn secret_env(values: &Values, env: &str, key: &str) -> Json {
    json!({"name": env, "valueFrom": {"secretKeyRef": {"name": values.secret.name, "key": key}}})
}

/// The gateway signing secret's variable, as the filter's `gateway_secret.env` and the backend's
/// `--gateway-secret` read it.
pub fn gateway_secret_env(values: &Values) -> Json {
    secret_env(
        values,
        "MCP_EDGE_GATEWAY_SECRET",
        &values.secret.gateway_key,
    )
}

/// The rate limit service's shared secret, as the filter (`global_rate_limit.secret_env`) reads it.
pub fn ratelimit_secret_env(values: &Values) -> Json {
    secret_env(
        values,
        "MCP_EDGE_RATELIMIT_SECRET",
        &values.secret.ratelimit_key,
    )
}

fn pod_security(uid: u32) -> Json {
    json!({
        "runAsNonRoot": true,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

fn container_security() -> Json {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
    })
}

fn service(values: &Values, name: &str, port_name: &str, port: u16) -> Json {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(values, name),
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
        },
    })
}

/// The Secret the components read. Rendered without values (they never enter a file): fill it as
/// deploy/README.md says; until then the pods that read it do not start.
pub fn secret(values: &Values) -> Json {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(values, &values.secret.name),
        "type": "Opaque",
    })
}

/// Envoy's ConfigMap, Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget.
pub fn envoy(values: &Values, envoy_config: &str) -> Vec<Json> {
    let k = &values.kubernetes;
    let p = values.ports;
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(values, ENVOY),
        "data": {CONFIG_FILE_NAME: envoy_config},
    });
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(values, ENVOY),
        "spec": {
            "selector": selector(ENVOY),
            "template": {
                "metadata": {
                    "labels": labels(ENVOY),
                    // A new configuration rolls the pods.
                    "annotations": {"mcp-edge/config-sha256": sha256_digest(envoy_config.as_bytes())},
                },
                "spec": {
                    "securityContext": pod_security(ENVOY_UID),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "envoy",
                        "image": values.images.envoy,
                        "command": ["envoy"],
                        "args": ["-c", format!("{CONFIG_DIR_IN_POD}/{CONFIG_FILE_NAME}"),
                                 "--disable-hot-restart", "--log-level", "info"],
                        "env": [gateway_secret_env(values), ratelimit_secret_env(values)],
                        "ports": [
                            {"name": "mcp", "containerPort": p.envoy},
                            {"name": "ready", "containerPort": p.envoy_ready},
                        ],
                        "readinessProbe": {
                            "httpGet": {"path": "/ready", "port": "ready"},
                            "periodSeconds": 5,
                            "failureThreshold": 2,
                        },
                        "livenessProbe": {
                            "tcpSocket": {"port": "mcp"},
                            "periodSeconds": 10,
                            "failureThreshold": 3,
                        },
                        // envoy.yaml's overload manager assumes a 1 GiB heap: about 80% of this.
                        "resources": {
                            "requests": {"cpu": "500m", "memory": "512Mi"},
                            "limits": {"memory": "1280Mi"},
                        },
                        "securityContext": container_security(),
                        "volumeMounts": [
                            {"name": "config", "mountPath": CONFIG_DIR_IN_POD, "readOnly": true},
                            {"name": "filter", "mountPath": WASM_DIR_IN_POD, "readOnly": true},
                        ],
                    }],
                    "volumes": [
                        {"name": "config", "configMap": {"name": ENVOY}},
                        // The filter's OCI image by digest; its one layer holds plugin.wasm.
                        {"name": "filter", "image": {"reference": values.filter_image(),
                                                     "pullPolicy": "IfNotPresent"}},
                    ],
                },
            },
        },
    });
    let mut svc = service(values, ENVOY, "mcp", p.envoy);
    // Clients' own addresses reach Envoy (it limits bad tokens per address).
    svc["spec"]["type"] = json!("LoadBalancer");
    svc["spec"]["externalTrafficPolicy"] = json!("Local");
    let hpa = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(values, ENVOY),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": ENVOY},
            "minReplicas": k.envoy_min_replicas,
            "maxReplicas": k.envoy_max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": k.envoy_cpu_target_percent}}}],
        },
    });
    let pdb = json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(values, ENVOY),
        "spec": {"minAvailable": 1, "selector": selector(ENVOY)},
    });
    vec![config_map, deployment, svc, hpa, pdb]
}

fn redis_url(values: &Values, db: u8) -> String {
    format!(
        "redis://{}:{}/{db}",
        service_host(values, REDIS),
        values.ports.redis
    )
}

/// The backend: a StatefulSet (an outbox volume per replica) and its Service.
pub fn backend(values: &Values) -> Vec<Json> {
    let host = values.resource_host().unwrap_or_default();
    let statefulset = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(values, BACKEND),
        "spec": {
            "serviceName": BACKEND,
            "replicas": values.kubernetes.backend_replicas,
            "selector": selector(BACKEND),
            "template": {
                "metadata": {"labels": labels(BACKEND)},
                "spec": {
                    "securityContext": pod_security(NOBODY),
                    "containers": [{
                        "name": "backend",
                        "image": values.images.backend,
                        "args": [
                            "--listen", format!("0.0.0.0:{}", values.ports.backend),
                            "--redis-url", redis_url(values, 0),
                            "--outbox-dir", OUTBOX_DIR,
                            "--allowed-host", host,
                            "--assertion-issuer", values.assertion.issuer,
                            "--assertion-audience", values.assertion.audience,
                            "--log-json",
                        ],
                        "env": [gateway_secret_env(values)],
                        "ports": [{"name": "http", "containerPort": values.ports.backend}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"},
                                           "periodSeconds": 5},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                          "periodSeconds": 10},
                        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                                      "limits": {"memory": "512Mi"}},
                        "securityContext": container_security(),
                        "volumeMounts": [{"name": "outbox", "mountPath": OUTBOX_DIR}],
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "outbox"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    });
    vec![
        statefulset,
        service(values, BACKEND, "http", values.ports.backend),
    ]
}

/// Redis's configuration: what it acknowledged is kept (append-only file, fsync on every write).
/// A file rather than arguments: `yes` as a bare YAML word is a boolean to Kubernetes' YAML 1.1
/// reader (kubernetes-validate refused `args: [..., yes]`).
fn redis_conf(values: &Values) -> String {
    format!(
        "port {}\nappendonly yes\nappendfsync always\ndir /data\n",
        values.ports.redis
    )
}

/// Redis: its configuration, a StatefulSet keeping what it acknowledged, and its Service.
pub fn redis(values: &Values) -> Vec<Json> {
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(values, REDIS),
        "data": {"redis.conf": redis_conf(values)},
    });
    let statefulset = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(values, REDIS),
        "spec": {
            "serviceName": REDIS,
            "replicas": 1,
            "selector": selector(REDIS),
            "template": {
                "metadata": {"labels": labels(REDIS)},
                "spec": {
                    "securityContext": pod_security(REDIS_UID),
                    "containers": [{
                        "name": "redis",
                        "image": values.images.redis,
                        "args": ["redis-server", "/etc/redis/redis.conf"],
                        "ports": [{"name": "redis", "containerPort": values.ports.redis}],
                        "readinessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 5},
                        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                      "limits": {"memory": "1Gi"}},
                        "securityContext": container_security(),
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/data"},
                            {"name": "config", "mountPath": "/etc/redis", "readOnly": true},
                        ],
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": REDIS}}],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": values.kubernetes.redis_storage}}},
            }],
        },
    });
    vec![
        config_map,
        statefulset,
        service(values, REDIS, "redis", values.ports.redis),
    ]
}

/// The rate limit service: its limits file (ratelimit/limits.yaml), Deployment and Service.
pub fn ratelimit(values: &Values, limits_yaml: &str) -> Vec<Json> {
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(values, RATELIMIT),
        "data": {LIMITS_FILE: limits_yaml},
    });
    let env = [secret_env(
        values,
        "RATELIMIT_SHARED_SECRET",
        &values.secret.ratelimit_key,
    )];
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(values, RATELIMIT),
        "spec": {
            "replicas": values.kubernetes.ratelimit_replicas,
            "selector": selector(RATELIMIT),
            "template": {
                "metadata": {
                    "labels": labels(RATELIMIT),
                    "annotations": {"mcp-edge/limits-sha256": sha256_digest(limits_yaml.as_bytes())},
                },
                "spec": {
                    "securityContext": pod_security(NOBODY),
                    "containers": [{
                        "name": "ratelimit",
                        "image": values.images.ratelimit,
                        "args": [
                            "--listen", format!("0.0.0.0:{}", values.ports.ratelimit),
                            "--limits", format!("/etc/mcp-edge/{LIMITS_FILE}"),
                            "--redis-url", redis_url(values, 1),
                            "--log-json",
                        ],
                        "env": env,
                        "ports": [{"name": "grpc", "containerPort": values.ports.ratelimit}],
                        "readinessProbe": {"tcpSocket": {"port": "grpc"}, "periodSeconds": 5},
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                      "limits": {"memory": "256Mi"}},
                        "securityContext": container_security(),
                        "volumeMounts": [{"name": "limits", "mountPath": "/etc/mcp-edge",
                                          "readOnly": true}],
                    }],
                    "volumes": [{"name": "limits", "configMap": {"name": RATELIMIT}}],
                },
            },
        },
    });
    let mut svc = service(values, RATELIMIT, "grpc", values.ports.ratelimit);
    svc["spec"]["ports"][0]["appProtocol"] = json!("kubernetes.io/h2c");
    vec![config_map, deployment, svc]
}
