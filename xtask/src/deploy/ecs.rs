//! The AWS ECS (Fargate) task definition: one task runs Envoy with the filter, the backend and
//! the rate limit service, talking over 127.0.0.1 (awsvpc networking). Written as the input of
//! ECS's `RegisterTaskDefinition` (`aws ecs register-task-definition --cli-input-json file://…`);
//! the test validates it with botocore's service model. Envoy reads its configuration from
//! `--config-yaml` (JSON, which is YAML) and fetches the `.wasm` itself over https, checked against
//! `filter.wasm_sha256`. Secrets come from Secrets Manager (the keys of `secret`). Health checks use
//! bash's /dev/tcp, since neither image ships curl. deploy/README.md lists what the ALB and
//! ElastiCache must be.

use serde_json::{Value as Json, json};

use super::values::Values;

const OUTBOX_DIR: &str = "/var/lib/mcp-edge/outbox";
/// Where ratelimit/Dockerfile puts ratelimit/limits.yaml.
const LIMITS_IN_IMAGE: &str = "/etc/mcp-edge/limits.yaml";

fn secret_from(values: &Values, env: &str, key: &str) -> Json {
    json!({"name": env, "valueFrom": format!("{}:{key}::", values.ecs.secret_arn)})
}

fn logs(values: &Values, prefix: &str) -> Json {
    json!({"logDriver": "awslogs", "options": {
        "awslogs-group": values.ecs.log_group,
        "awslogs-region": values.ecs.region,
        "awslogs-stream-prefix": prefix,
    }})
}

/// A health check that sends `GET <path>` to 127.0.0.1:`port` and wants `expect` in the answer.
fn http_check(port: u16, path: &str, expect: &str) -> Json {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '{expect}' <&3"
    );
    json!({"command": ["CMD", "bash", "-c", script],
           "interval": 10, "timeout": 5, "retries": 3, "startPeriod": 15})
}

/// The task definition for Envoy's configuration `envoy_config` (JSON text).
pub fn task_definition(values: &Values, envoy_config: &str) -> Json {
    let e = &values.ecs;
    let p = values.ports;
    let redis = |db: u8| format!("redis://{}:{}/{db}", e.redis_host, p.redis);
    let envoy = json!({
        "name": "envoy",
        "image": values.images.envoy,
        "essential": true,
        "user": "101",
        "entryPoint": ["envoy"],
        "command": ["--config-yaml", envoy_config, "--disable-hot-restart", "--log-level", "info"],
        "portMappings": [
            {"name": "mcp", "containerPort": p.envoy, "protocol": "tcp"},
            {"name": "ready", "containerPort": p.envoy_ready, "protocol": "tcp"},
        ],
        "secrets": [
            secret_from(values, "MCP_EDGE_GATEWAY_SECRET", &values.secret.gateway_key),
            secret_from(values, "MCP_EDGE_RATELIMIT_SECRET", &values.secret.ratelimit_key),
        ],
        "healthCheck": http_check(p.envoy_ready, "/ready", "LIVE"),
        "dependsOn": [
            {"containerName": "backend", "condition": "HEALTHY"},
            {"containerName": "ratelimit", "condition": "HEALTHY"},
        ],
        "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
        "readonlyRootFilesystem": true,
        "logConfiguration": logs(values, "envoy"),
    });
    let backend = json!({
        "name": "backend",
        "image": values.images.backend,
        "essential": true,
        "command": [
            "--listen", format!("127.0.0.1:{}", p.backend),
            "--redis-url", redis(0),
            "--outbox-dir", OUTBOX_DIR,
            "--allowed-host", values.resource_host().unwrap_or_default(),
            "--assertion-issuer", values.assertion.issuer,
            "--assertion-audience", values.assertion.audience,
            "--log-json",
        ],
        "secrets": [secret_from(values, "MCP_EDGE_GATEWAY_SECRET", &values.secret.gateway_key)],
        "healthCheck": http_check(p.backend, "/readyz", "200"),
        "mountPoints": [{"sourceVolume": "outbox", "containerPath": OUTBOX_DIR}],
        "readonlyRootFilesystem": true,
        "logConfiguration": logs(values, "backend"),
    });
    let ratelimit = json!({
        "name": "ratelimit",
        "image": values.images.ratelimit,
        "essential": true,
        "command": [
            "--listen", format!("127.0.0.1:{}", p.ratelimit),
            "--limits", LIMITS_IN_IMAGE,
            "--redis-url", redis(1),
            "--log-json",
        ],
        "secrets": [secret_from(values, "RATELIMIT_SHARED_SECRET", &values.secret.ratelimit_key)],
        "healthCheck": {"command": ["CMD", "bash", "-c",
                                    format!("exec 3<>/dev/tcp/127.0.0.1/{}", p.ratelimit)],
                        "interval": 10, "timeout": 5, "retries": 3, "startPeriod": 10},
        "readonlyRootFilesystem": true,
        "logConfiguration": logs(values, "ratelimit"),
    });
    json!({
        "family": e.family,
        "taskRoleArn": e.task_role_arn,
        "executionRoleArn": e.execution_role_arn,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "cpu": e.cpu,
        "memory": e.memory,
        "containerDefinitions": [envoy, backend, ratelimit],
        "volumes": [{"name": "outbox"}],
    })
}
