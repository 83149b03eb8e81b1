//! `envoy.tls.yaml`: the repository's `envoy.yaml` with TLS on every hop, derived so the two cannot
//! drift (`cargo xtask sync-config` writes it; `xtask/tests/generated_in_sync.rs` and the TLS
//! end-to-end tests read it).
//!
//! - **Listener**: port 8443, TLS 1.2+ with ALPN `h2` and `http/1.1`; the certificate comes from an
//!   SDS file that points at a secret-volume directory, so a rotated pair is served without a
//!   restart. The filter's `resource`, the metadata's authorization server and the issuer are
//!   `https://` URLs.
//! - **Authorization server** (`auth_server`: JWKS, introspection): TLS with SNI, the peer's
//!   certificate checked against a CA bundle *and* its DNS name (`match_typed_subject_alt_names`).
//! - **Backend**: mutual TLS: Envoy presents its client certificate (SDS again) and checks the
//!   backend's; the identity assertion is still signed into every request.
//!
//! The local variant names `localhost` and a dev CA under `.local/tls` (`cargo xtask dev-certs`); a
//! deployment changes the names, the CA bundle (`/etc/ssl/certs/ca-certificates.crt` for a public
//! IdP) and the paths (docs/tls.md).

use anyhow::{Context as _, Result};
use serde_json::{Value as Json, json};
use serde_yaml::Value;

use crate::dev_certs::{CLIENT_SECRET, DEV_TLS_HOST, SERVER_SECRET};
use crate::docker_envoy::{at, cluster_named, cluster_socket_address, edit_plugin_config};

/// The TLS listener's port in the generated file.
pub const TLS_LISTENER_PORT: u16 = 8443;

/// Where the generated file expects the dev certificates (relative to Envoy's working directory,
/// as the `.wasm` path is): what `cargo xtask dev-certs` writes.
pub const DEV_TLS_DIR: &str = ".local/tls";

const HEADER: &str = "\
# GENERATED from envoy.yaml by xtask/src/tls_envoy.rs: do not edit. Regenerate: cargo xtask sync-config
# envoy.yaml with TLS on every hop (docs/tls.md): the MCP listener on 8443 (ALPN h2, http/1.1; the
# certificate from an SDS file, reloaded when rotated), the authorization server over https (SNI,
# CA and subject-name checks), the backend over mutual TLS. Certificates: cargo xtask dev-certs
# (a throwaway CA under .local/tls); run from the repository root (relative paths).
";

/// The files of a TLS configuration, under one directory (`dir` as Envoy will read it).
#[derive(Debug, Clone)]
pub struct TlsLayout {
    pub dir: String,
}

impl TlsLayout {
    fn file(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }
}

/// The TLS variant of `base_yaml` (envoy.yaml's text), reading its certificates under `layout`.
pub fn tls_envoy_config(base_yaml: &str, layout: &TlsLayout) -> Result<String> {
    let mut doc: Value = serde_yaml::from_str(base_yaml)?;
    // File-based SDS needs the node named (Envoy refuses it otherwise).
    doc.as_mapping_mut()
        .context("envoy.yaml is not a mapping")?
        .insert(
            Value::from("node"),
            yaml(&json!({"id": "mcp-edge", "cluster": "mcp-edge"}))?,
        );
    let origin = format!("https://{DEV_TLS_HOST}:{TLS_LISTENER_PORT}");
    let listener = at(&mut doc, &["static_resources", "listeners", "0"])?;
    *at(listener, &["address", "socket_address", "port_value"])? =
        Value::from(u64::from(TLS_LISTENER_PORT));
    let chain = at(listener, &["filter_chains", "0"])?
        .as_mapping_mut()
        .context("a filter chain is not a mapping")?;
    chain.insert(
        Value::from("transport_socket"),
        yaml(&downstream_tls(layout))?,
    );
    let authz_address = {
        let auth = cluster_named(&mut doc, "auth_server")?;
        let port = at(cluster_socket_address(auth)?, &["port_value"])?
            .as_u64()
            .context("auth_server's port")?;
        insert(auth, "transport_socket", &upstream_tls(layout, None))?;
        format!("{DEV_TLS_HOST}:{port}")
    };
    {
        let backend = cluster_named(&mut doc, "backend")?;
        insert(
            backend,
            "transport_socket",
            &upstream_tls(layout, Some(CLIENT_SECRET)),
        )?;
    }
    let listener = at(&mut doc, &["static_resources", "listeners", "0"])?;
    let issuer = format!("https://{authz_address}");
    edit_plugin_config(listener, |plugin| {
        plugin["resource"] = json!(format!("{origin}/mcp"));
        plugin["issuers"] = json!([issuer]);
        plugin["prm"]["authorization_servers"] = json!([issuer]);
        plugin["jwks"]["remote"]["authority"] = json!(authz_address);
    })?;
    Ok(format!("{HEADER}{}", serde_yaml::to_string(&doc)?))
}

fn insert(map: &mut Value, key: &str, value: &Json) -> Result<()> {
    map.as_mapping_mut()
        .context("not a mapping")?
        .insert(Value::from(key), yaml(value)?);
    Ok(())
}

fn yaml(value: &Json) -> Result<Value> {
    Ok(serde_yaml::to_value(value)?)
}

/// An SDS reference to one certificate in a file that Envoy watches.
fn sds(layout: &TlsLayout, secret: &str, file: &str) -> Json {
    json!({
        "name": secret,
        "sds_config": {
            "path_config_source": {
                "path": layout.file(file),
                "watched_directory": {"path": layout.dir}
            },
            "resource_api_version": "V3"
        }
    })
}

/// The listener's TLS: TLS 1.2+, HTTP/2 by ALPN or HTTP/1.1, the certificate from SDS.
fn downstream_tls(layout: &TlsLayout) -> Json {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificate_sds_secret_configs": [
                    sds(layout, SERVER_SECRET, "edge-server-sds.yaml")
                ]
            }
        }
    })
}

/// TLS to an upstream named [`DEV_TLS_HOST`]: SNI, the CA, the name in its certificate; with a
/// client certificate when `client_secret` is given (mutual TLS).
fn upstream_tls(layout: &TlsLayout, client_secret: Option<&str>) -> Json {
    let mut common = json!({
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
        "validation_context": {
            "trusted_ca": {"filename": layout.file("ca.pem")},
            "match_typed_subject_alt_names": [
                {"san_type": "DNS", "matcher": {"exact": DEV_TLS_HOST}}
            ]
        }
    });
    if let Some(secret) = client_secret {
        common["tls_certificate_sds_secret_configs"] =
            json!([sds(layout, secret, "edge-client-sds.yaml")]);
    }
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": DEV_TLS_HOST,
            "common_tls_context": common
        }
    })
}
