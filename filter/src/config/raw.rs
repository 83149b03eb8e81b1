//! The plugin configuration as written in envoy.yaml: serde shapes and defaults, before validation.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) resource: String,
    pub(super) issuers: Vec<String>,
    #[serde(default)]
    pub(super) audiences: Option<Vec<String>>,
    pub(super) jwks: RawJwks,
    #[serde(default = "default_algorithms")]
    pub(super) algorithms: Vec<String>,
    #[serde(default)]
    pub(super) allow_hmac: bool,
    #[serde(default = "default_leeway")]
    pub(super) leeway_seconds: u64,
    #[serde(default = "default_mcp_paths")]
    pub(super) mcp_paths: Vec<String>,
    #[serde(default = "default_max_body")]
    pub(super) max_body_bytes: usize,
    pub(super) gateway_secret: RawSecret,
    /// The names in the identity assertion (`iss`, `aud`); absent: the contract's defaults.
    #[serde(default)]
    pub(super) assertion: RawAssertion,
    pub(super) prm: RawPrm,
    #[serde(default = "default_challenge_scopes")]
    pub(super) challenge_scopes: Vec<String>,
    pub(super) tool_scopes: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) method_scopes: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) allowed_origins: Vec<String>,
    #[serde(default = "default_rate_limits")]
    pub(super) rate_limits: BTreeMap<String, RawLimit>,
    /// Long-lived streams (GET, `subscriptions/listen`) one tenant may hold at once, by tier.
    #[serde(default = "default_stream_limits")]
    pub(super) stream_limits: BTreeMap<String, u32>,
    #[serde(default = "default_invalid_token_limit")]
    pub(super) invalid_token_limit: RawLimit,
    #[serde(default = "default_rate_limit_slots")]
    pub(super) rate_limit_slots: u32,
    /// IPv6 clients are counted by this prefix for `invalid_token_limit`.
    #[serde(default = "default_ipv6_prefix")]
    pub(super) invalid_token_ipv6_prefix: u8,
    #[serde(default)]
    pub(super) required_typ: Option<String>,
    #[serde(default)]
    pub(super) token_cache_max_seconds: Option<u64>,
    #[serde(default)]
    pub(super) stateful_upstream: bool,
    #[serde(default = "default_true")]
    pub(super) access_log_properties: bool,
    /// How often a worker hands its counts to Envoy's counters (ms; 0: on every request).
    #[serde(default = "default_stats_flush_ms")]
    pub(super) stats_flush_ms: u64,
    /// Where the tenant, user, scopes, … come from (`claims.rs`); absent: today's claim names.
    #[serde(default)]
    pub(super) claims: Option<super::claims::RawClaims>,
    #[serde(default)]
    pub(super) global_rate_limit: Option<RawGlobalLimit>,
    /// Opaque access tokens are introspected here (`introspection.rs`); absent: JWTs only.
    #[serde(default)]
    pub(super) introspection: Option<super::introspection::RawIntrospection>,
}

/// `assertion`: the edge's name (`iss`) and the upstream's (`aud`) in `x-mcp-identity`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAssertion {
    #[serde(default = "default_assertion_issuer")]
    pub(super) issuer: String,
    #[serde(default = "default_assertion_audience")]
    pub(super) audience: String,
}

impl Default for RawAssertion {
    fn default() -> Self {
        Self {
            issuer: default_assertion_issuer(),
            audience: default_assertion_audience(),
        }
    }
}

fn default_assertion_issuer() -> String {
    mcp_edge_contract::assertion::DEFAULT_ISSUER.to_string()
}

fn default_assertion_audience() -> String {
    mcp_edge_contract::assertion::DEFAULT_AUDIENCE.to_string()
}

/// `global_rate_limit`: the rate limit service asked after the local bucket (absent: local only).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGlobalLimit {
    pub(super) cluster: String,
    #[serde(default = "default_global_domain")]
    pub(super) domain: String,
    #[serde(default = "default_global_timeout_ms")]
    pub(super) timeout_ms: u64,
    /// Per tier `open` or `closed`; tiers not named keep the default (free closed, paid open).
    #[serde(default)]
    pub(super) failure_mode: BTreeMap<String, RawFailureMode>,
    #[serde(default)]
    pub(super) tool_descriptor: bool,
    /// The wasm VM's environment variable holding the service's shared secret (sent as
    /// `authorization: Bearer <secret>`); absent: no secret is sent.
    #[serde(default)]
    pub(super) secret_env: Option<String>,
    /// How long each worker's first call may wait (its connection to the service is made then).
    #[serde(default = "default_global_first_call_timeout_ms")]
    pub(super) first_call_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawFailureMode {
    Open,
    Closed,
}

fn default_global_domain() -> String {
    "mcp-edge".into()
}
fn default_global_timeout_ms() -> u64 {
    20
}
fn default_global_first_call_timeout_ms() -> u64 {
    1_000
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimit {
    pub(super) requests_per_minute: u64,
    pub(super) burst: u64,
}

pub(super) fn default_rate_limits() -> BTreeMap<String, RawLimit> {
    [
        (
            "free",
            RawLimit {
                requests_per_minute: 60,
                burst: 20,
            },
        ),
        (
            "pro",
            RawLimit {
                requests_per_minute: 600,
                burst: 100,
            },
        ),
        (
            "enterprise",
            RawLimit {
                requests_per_minute: 6000,
                burst: 1000,
            },
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
pub(super) fn default_stream_limits() -> BTreeMap<String, u32> {
    [("free", 2), ("pro", 16), ("enterprise", 128)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}
pub(super) fn default_invalid_token_limit() -> RawLimit {
    RawLimit {
        requests_per_minute: 60,
        burst: 30,
    }
}
fn default_true() -> bool {
    true
}

pub(super) fn default_rate_limit_slots() -> u32 {
    4096
}

fn default_ipv6_prefix() -> u8 {
    crate::rate_limit::address::DEFAULT_IPV6_PREFIX
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum RawJwks {
    /// A JWKS document written into the config.
    Inline(Value),
    /// A JWKS document fetched through an Envoy cluster.
    Remote(RawRemoteJwks),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemoteJwks {
    pub(super) cluster: String,
    pub(super) path: String,
    pub(super) authority: String,
    #[serde(default = "default_refresh")]
    pub(super) refresh_seconds: u64,
    #[serde(default = "default_min_refetch")]
    pub(super) min_refetch_seconds: u64,
    #[serde(default = "default_timeout_ms")]
    pub(super) timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum RawSecret {
    Inline(String),
    /// Name of an environment variable of the Envoy process (list it in `vm_config.environment_variables.host_env_keys`).
    Env(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrm {
    pub(super) authorization_servers: Vec<String>,
    pub(super) scopes_supported: Vec<String>,
    #[serde(default)]
    pub(super) resource_documentation: Option<String>,
}

pub(super) fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}
pub(super) fn default_challenge_scopes() -> Vec<String> {
    vec!["mcp:read".into(), "mcp:write".into()]
}
pub(super) fn default_leeway() -> u64 {
    30
}
pub(super) fn default_mcp_paths() -> Vec<String> {
    vec!["/mcp".into()]
}
pub(super) fn default_max_body() -> usize {
    mcp_edge_contract::limits::DEFAULT_MAX_BODY_BYTES
}
pub(super) fn default_refresh() -> u64 {
    300
}
pub(super) fn default_min_refetch() -> u64 {
    10
}
pub(super) fn default_timeout_ms() -> u64 {
    5_000
}

fn default_stats_flush_ms() -> u64 {
    super::DEFAULT_STATS_FLUSH_MS
}
