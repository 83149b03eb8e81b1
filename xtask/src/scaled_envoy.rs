//! The Envoy configuration of one replica of the scaled-out local stack (`scripts/run.sh --scaled`,
//! `cargo xtask scaled-envoy`): the repository's `envoy.yaml` with the filter's `global_rate_limit`
//! on and the replica's own listener and admin ports. Everything else, the `resource` included,
//! stays as it is, so one token is good at every replica, as behind a load balancer.

use anyhow::Result;
use serde_json::{Value as Json, json};
use serde_yaml::Value;

use crate::docker_envoy::{at, cluster_named, cluster_socket_address, edit_plugin_config};

/// What the scaled-out replicas ask the rate limit service (`ratelimit/`): the `mcp_edge_ratelimit`
/// cluster, fail closed for free, open for paid tiers, with the service's shared secret from
/// `MCP_EDGE_RATELIMIT_SECRET` (the service reads the same value as `RATELIMIT_SHARED_SECRET`).
pub fn global_rate_limit() -> Json {
    json!({
        "cluster": "mcp_edge_ratelimit",
        "domain": "mcp-edge",
        "timeout_ms": 20,
        "first_call_timeout_ms": 1000,
        "failure_mode": {"free": "closed", "pro": "open", "enterprise": "open"},
        "tool_descriptor": false,
        "secret_env": "MCP_EDGE_RATELIMIT_SECRET"
    })
}

/// `envoy.yaml`'s text for a replica listening on `port` with its admin on `admin_port`, and the
/// rate limit service on `ratelimit_port`.
pub fn scaled_envoy_config(
    base_yaml: &str,
    port: u16,
    admin_port: u16,
    ratelimit_port: u16,
) -> Result<String> {
    let mut doc: Value = serde_yaml::from_str(base_yaml)?;
    *at(
        &mut doc,
        &["admin", "address", "socket_address", "port_value"],
    )? = port_value(admin_port);
    let listener = at(&mut doc, &["static_resources", "listeners", "0"])?;
    *at(listener, &["address", "socket_address", "port_value"])? = port_value(port);
    edit_plugin_config(listener, |plugin| {
        plugin["global_rate_limit"] = global_rate_limit();
    })?;
    let ratelimit = cluster_named(&mut doc, "mcp_edge_ratelimit")?;
    *at(cluster_socket_address(ratelimit)?, &["port_value"])? = port_value(ratelimit_port);
    Ok(serde_yaml::to_string(&doc)?)
}

fn port_value(port: u16) -> Value {
    Value::from(u64::from(port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_has_its_ports_and_the_global_limit_on() -> Result<()> {
        let base = std::fs::read_to_string(crate::sync_config::repo_root().join("envoy.yaml"))?;
        let text = scaled_envoy_config(&base, 8180, 9911, 8091)?;
        let mut doc: Value = serde_yaml::from_str(&text)?;
        let port = at(
            &mut doc,
            &[
                "static_resources",
                "listeners",
                "0",
                "address",
                "socket_address",
                "port_value",
            ],
        )?;
        assert_eq!(port.as_u64(), Some(8180));
        assert!(text.contains("\"global_rate_limit\""));
        assert!(!base.contains("\"global_rate_limit\""), "off in envoy.yaml");
        // the resource stays: one token for every replica
        assert!(text.contains("\"resource\": \"http://127.0.0.1:8080/mcp\""));
        Ok(())
    }
}
