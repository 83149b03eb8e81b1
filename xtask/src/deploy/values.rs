//! deploy/values.yaml, read strictly (an unknown or missing field is an error naming it): the one
//! place the ports, secret names, resource URI and image digest the manifests share come from.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Values {
    pub namespace: String,
    pub resource: String,
    pub issuer: String,
    pub jwks: Jwks,
    pub assertion: Assertion,
    pub secret: SecretNames,
    pub ports: Ports,
    pub images: Images,
    pub filter: Filter,
    pub kubernetes: Kubernetes,
    pub envoy_gateway: EnvoyGateway,
    pub istio: Istio,
    pub ecs: Ecs,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    pub host: String,
    pub port: u16,
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    pub issuer: String,
    pub audience: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretNames {
    pub name: String,
    pub gateway_key: String,
    pub ratelimit_key: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    pub envoy: u16,
    pub envoy_ready: u16,
    pub envoy_admin: u16,
    pub backend: u16,
    pub ratelimit: u16,
    pub redis: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    pub envoy: String,
    pub backend: String,
    pub ratelimit: String,
    pub redis: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub repository: String,
    pub digest: String,
    pub wasm_url: String,
    pub wasm_sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    pub envoy_min_replicas: u32,
    pub envoy_max_replicas: u32,
    pub envoy_cpu_target_percent: u32,
    pub backend_replicas: u32,
    pub ratelimit_replicas: u32,
    pub redis_storage: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvoyGateway {
    pub gateway: String,
    pub gateway_namespace: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Istio {
    pub gateway_namespace: String,
    pub gateway_labels: BTreeMap<String, String>,
    /// `<namespace>/<name>` of the Istio Gateway the VirtualService binds to.
    pub gateway: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ecs {
    pub family: String,
    pub region: String,
    pub cpu: String,
    pub memory: String,
    pub execution_role_arn: String,
    pub task_role_arn: String,
    pub secret_arn: String,
    pub redis_host: String,
    pub log_group: String,
    pub xff_num_trusted_hops: u32,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Values {
    pub fn parse(text: &str) -> Result<Values> {
        let values: Values = serde_yaml::from_str(text).context("deploy/values.yaml")?;
        values.check()?;
        Ok(values)
    }

    fn check(&self) -> Result<()> {
        let digest_hex = self.filter.digest.strip_prefix("sha256:").unwrap_or("");
        if !is_hex64(digest_hex) {
            bail!(
                "filter.digest must be sha256:<64 lowercase hex> (what `cargo xtask oci` prints)"
            );
        }
        if !is_hex64(&self.filter.wasm_sha256) {
            bail!("filter.wasm_sha256 must be 64 lowercase hex");
        }
        if !self.resource.starts_with("https://") || !self.filter.wasm_url.starts_with("https://") {
            bail!("resource and filter.wasm_url must be https URLs");
        }
        self.resource_host()?;
        Ok(())
    }

    /// The host of `resource` (what the backend accepts as Host).
    pub fn resource_host(&self) -> Result<&str> {
        url_host(&self.resource).context("resource has no host")
    }

    /// The filter's image by digest, `<repository>@sha256:<hex>`.
    pub fn filter_image(&self) -> String {
        format!("{}@{}", self.filter.repository, self.filter.digest)
    }

    /// The hex of the filter image's manifest digest.
    pub fn filter_digest_hex(&self) -> &str {
        self.filter.digest.trim_start_matches("sha256:")
    }
}

/// The host of an `https://host[:port]/…` URL.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let host = authority.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: &str = include_str!("../../../deploy/values.yaml");

    #[test]
    fn the_committed_values_parse() {
        let values = Values::parse(VALUES).unwrap();
        assert_eq!(values.resource_host().unwrap(), "mcp.example.com");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let text = format!("{VALUES}\nreplicas: 3\n");
        let err = format!("{:#}", Values::parse(&text).err().unwrap());
        assert!(err.contains("replicas"), "{err}");
    }

    #[test]
    fn a_digest_that_is_not_sha256_is_refused() {
        let text = VALUES.replace("digest: sha256:", "digest: md5:");
        assert!(Values::parse(&text).is_err());
    }
}
