//! Every provider block of docs/identity-providers.md, loaded into a running Envoy as written: the
//! TLS cluster and the plugin fields (resource, issuers, audiences, claims, jwks, prm, ...). Only
//! what cannot be real here changes: the cluster's address and port point at a local https
//! stand-in for the provider's JWKS endpoint (a mock, named as such) and its CA file at the test
//! CA that issued the stand-in's certificate for the provider's host name. SNI, the certificate
//! name check, the JWKS path and the Host header are the block's. A token in the provider's shape,
//! signed by the stand-in's key, must then reach the real backend as the identity the page says.

use std::sync::OnceLock;

use anyhow::{Context as _, Result, ensure};
use jwt_simple::prelude::*;
use mcp_edge_contract::Tier;
use mcp_edge_tests::client::{call_body, marker, post_mcp};
use mcp_edge_tests::idp::provider_claims;
use mcp_edge_tests::jwks_standin::JwksStandIn;
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::Stack;
use serde_json::{Value as Json, json};
use serde_yaml::Value;
use xtask::DevKeys;
use xtask::dev_certs::{DevCa, Usage};
use xtask::docker_envoy::{at, cluster_socket_address};

const PAGE: &str = include_str!("../docs/identity-providers.md");

/// The fenced blocks of `lang` on the page, in order.
fn blocks(lang: &str) -> Vec<&'static str> {
    PAGE.split(&format!("```{lang}\n"))
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect()
}

/// The documented cluster and plugin fields of the provider whose `claims.preset` is `preset`.
fn provider_block(preset: &str) -> Result<(Value, Json)> {
    let clusters = blocks("yaml");
    let plugins = blocks("json");
    ensure!(
        clusters.len() == plugins.len(),
        "{} cluster blocks, {} plugin blocks",
        clusters.len(),
        plugins.len()
    );
    for (cluster, plugin) in clusters.iter().zip(&plugins) {
        let plugin: Json = serde_json::from_str(plugin).context("a plugin block")?;
        if plugin["claims"]["preset"] == preset {
            let list: Value = serde_yaml::from_str(cluster).context("a cluster block")?;
            let cluster = list
                .as_sequence()
                .and_then(|l| l.first())
                .cloned()
                .context("a cluster block is not a one-item list")?;
            return Ok((cluster, plugin));
        }
    }
    anyhow::bail!("no block for {preset}")
}

/// The stand-in's signing keys, one set for the binary.
fn keys() -> &'static DevKeys {
    static KEYS: OnceLock<DevKeys> = OnceLock::new();
    KEYS.get_or_init(|| DevKeys::generate("standin").expect("generating keys"))
}

/// What the edge must make of the provider's token.
struct Expected {
    tenant: &'static str,
    user: &'static str,
    tier: Tier,
    /// A scope the vouched identity must hold (as the edge compares it: prefixed for Entra).
    scope: &'static str,
}

/// Loads `preset`'s block into an Envoy next to a stand-in whose certificate names `cert_names`,
/// calls `list_projects` with a token of the provider's shape and checks what arrives.
fn block_serves(
    s: &Stack,
    preset: &str,
    cert_names: &[&str],
    token: (JWTClaims<serde_json::Map<String, Json>>, &str),
    expected: Expected,
) -> Result<()> {
    let (cluster, plugin) = provider_block(preset)?;
    let path = plugin["jwks"]["remote"]["path"]
        .as_str()
        .context("the block's jwks.remote.path")?;
    let authority = plugin["jwks"]["remote"]["authority"]
        .as_str()
        .context("the block's jwks.remote.authority")?
        .to_string();
    let ca = DevCa::new(&format!("{preset} stand-in CA"))?;
    let ca_file = s.dir().join(format!("{preset}-ca.pem"));
    std::fs::write(&ca_file, ca.cert_pem())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let leaf = ca.leaf(preset, cert_names, Usage::Server)?;
    let standin = JwksStandIn::start(&runtime, &leaf, path, keys().jwks()?)?;

    // The block's cluster, at the stand-in's address and trusting the test CA.
    let mut cluster = cluster;
    *at(&mut cluster, &["type"])? = Value::from("STATIC");
    let address = cluster_socket_address(&mut cluster)?;
    *at(address, &["address"])? = Value::from("127.0.0.1");
    *at(address, &["port_value"])? = Value::from(u64::from(standin.addr.port()));
    *at(
        &mut cluster,
        &[
            "transport_socket",
            "typed_config",
            "common_tls_context",
            "validation_context",
            "trusted_ca",
            "filename",
        ],
    )? = Value::from(ca_file.display().to_string());
    let add_cluster = move |config: String| -> Result<String> {
        let mut doc: Value = serde_yaml::from_str(&config)?;
        at(&mut doc, &["static_resources", "clusters"])?
            .as_sequence_mut()
            .context("clusters is not a list")?
            .push(cluster.clone());
        Ok(serde_yaml::to_string(&doc)?)
    };
    let envoy = s.start_envoy_edited(&format!("envoy-{preset}"), &plugin, &add_cluster)?;

    let (claims, typ) = token;
    let header = HeaderOptions {
        signature_type: Some(typ.to_string()),
        ..HeaderOptions::default()
    };
    let token = keys().rs256.sign_with_options(claims, &header)?;

    // Through the real backend: the tool runs.
    let resp = post_mcp(&envoy.url, Some(&token), &call_body(&marker(preset)))?;
    let status = resp.status().as_u16();
    let text = resp.text()?;
    ensure!(status == 200, "{preset}: {status} {text}");
    let answer: Json = serde_json::from_str(&text)?;
    ensure!(
        answer["result"]["isError"] == json!(false),
        "{preset}: {answer}"
    );
    // Through the recorder: the identity the edge vouched for.
    let m = marker(&format!("{preset}-identity"));
    let resp = post_mcp(&envoy.recorded_url, Some(&token), &call_body(&m))?;
    ensure!(resp.status() == 200, "{preset}: {}", resp.text()?);
    let got = s.recorder.with_marker(&m);
    ensure!(got.len() == 1, "{preset}: forwarded {} times", got.len());
    let id = got[0].vouched(&s.secret)?.identity;
    ensure!(
        id.tenant_id == expected.tenant
            && id.user_id == expected.user
            && id.tier == expected.tier
            && id.scopes.iter().any(|sc| sc == expected.scope),
        "{preset}: {id:?}"
    );
    // The keys came from the documented path, asked for with the documented Host.
    ensure!(
        standin.hits() >= 1,
        "{preset}: the JWKS path was never fetched"
    );
    ensure!(
        standin.hosts().iter().all(|h| *h == authority),
        "{preset}: Host headers {:?}, the block says {authority}",
        standin.hosts()
    );
    Ok(())
}

fn auth0(s: &Stack) -> Result<()> {
    let claims = provider_claims(
        "https://my-domain.auth0.com/",
        &[
            "https://mcp.example.com/mcp",
            "https://my-domain.auth0.com/userinfo",
        ],
        "auth0|123456",
        json!({"client_id": "my_client_id", "jti": "73WakrfVbNJBaAmhQtEeDv",
               "scope": "openid profile mcp:read mcp:write", "org_id": "org_9ybsU1dN2dKfDkBi",
               "permissions": ["mcp:read", "mcp:write"], "https://mcp.example.com/tier": "pro"}),
    )?;
    // Auth0 serves tenant domains with a wildcard certificate.
    block_serves(
        s,
        "auth0",
        &["*.auth0.com"],
        (claims, "at+jwt"),
        Expected {
            tenant: "org_9ybsU1dN2dKfDkBi",
            user: "auth0|123456",
            tier: Tier::Pro,
            scope: "mcp:read",
        },
    )
}

fn okta(s: &Stack) -> Result<()> {
    let claims = provider_claims(
        "https://dev-133337.okta.com/oauth2/default",
        &["api://default"],
        "ada@example.com",
        json!({"ver": 1, "cid": "0oa1b2c3d4", "uid": "00u1a2b3c4",
               "scp": ["openid", "mcp:read", "mcp:write"], "tenant_id": "acme",
               "rate_limit_tier": "pro"}),
    )?;
    block_serves(
        s,
        "okta",
        &["*.okta.com"],
        (claims, "JWT"),
        Expected {
            tenant: "acme",
            user: "ada@example.com",
            tier: Tier::Pro,
            scope: "mcp:read",
        },
    )
}

fn entra(s: &Stack) -> Result<()> {
    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let claims = provider_claims(
        &format!("https://login.microsoftonline.com/{TID}/v2.0"),
        &["6e74172b-be56-4843-9ff4-e66a39bb12e3"],
        "pairwise-subject",
        json!({"tid": TID, "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
               "scp": "mcp:read mcp:write", "roles": ["MCP.Enterprise"], "ver": "2.0"}),
    )?;
    block_serves(
        s,
        "entra",
        &["login.microsoftonline.com"],
        (claims, "JWT"),
        Expected {
            tenant: TID,
            user: "690222be-ff1a-4d56-abd1-7e4f7d38e474",
            tier: Tier::Pro,
            scope: "api://6e74172b-be56-4843-9ff4-e66a39bb12e3/mcp:read",
        },
    )
}

fn keycloak(s: &Stack) -> Result<()> {
    let claims = provider_claims(
        "https://sso.example.com/realms/acme",
        &["mcp-edge", "account"],
        "f1c4f64e-2c0c-4cda-8c9f-9f3f8f3a2b0e",
        json!({"typ": "Bearer", "azp": "mcp-client", "tenant_id": "acme",
               "scope": "openid email profile mcp:read",
               "realm_access": {"roles": ["default-roles-acme", "mcp-enterprise"]}}),
    )?;
    block_serves(
        s,
        "keycloak",
        &["sso.example.com"],
        (claims, "JWT"),
        Expected {
            tenant: "acme",
            user: "f1c4f64e-2c0c-4cda-8c9f-9f3f8f3a2b0e",
            tier: Tier::Enterprise,
            scope: "mcp:read",
        },
    )
}

fn google(s: &Stack) -> Result<()> {
    let claims = provider_claims(
        "https://accounts.google.com",
        &["1234987819200-abc123def456.apps.googleusercontent.com"],
        "110169484474386276334",
        json!({"azp": "1234987819200-abc123def456.apps.googleusercontent.com",
               "hd": "example.com", "email": "ada@example.com", "email_verified": true}),
    )?;
    // Google serves www.googleapis.com with a *.googleapis.com certificate.
    block_serves(
        s,
        "google",
        &["*.googleapis.com"],
        (claims, "JWT"),
        Expected {
            tenant: "example.com",
            user: "110169484474386276334",
            tier: Tier::Free,
            scope: "mcp:read",
        },
    )
}

/// Entra's block names every tool of the catalogue (pasting it must not refuse the others).
fn every_tool_scopes_block_names_the_whole_catalogue(_: &Stack) -> Result<()> {
    let catalogue: Vec<String> = mcp_edge_backend::tools::tool_scopes()
        .into_keys()
        .map(|k| k.to_string())
        .collect();
    for plugin in blocks("json") {
        let plugin: Json = serde_json::from_str(plugin)?;
        if let Some(tools) = plugin["tool_scopes"].as_object() {
            let mut named: Vec<String> = tools.keys().cloned().collect();
            named.sort();
            let mut want = catalogue.clone();
            want.sort();
            ensure!(
                named == want,
                "{}: tool_scopes names {named:?}, the catalogue {want:?}",
                plugin["claims"]["preset"]
            );
        }
    }
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    auth0,
    okta,
    entra,
    keycloak,
    google,
    every_tool_scopes_block_names_the_whole_catalogue,
];

fn main() {
    mcp_edge_tests::runner::run(CASES);
}
