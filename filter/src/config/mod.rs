//! The plugin configuration: one JSON object under the wasm filter's `configuration` in envoy.yaml.
//!
//! Parsing is strict (unknown fields are refused) and every check names the field it is about, so a
//! typo fails the plugin start with a message an operator can act on instead of starting open.

use std::collections::{BTreeMap, BTreeSet};

mod checks;
pub mod claims;
mod introspection;
mod raw;

pub use introspection::Introspection;

use raw::*;

use crate::claim_mapping::ClaimMapping;
use crate::keys::{Algorithm, KeySet};
use crate::policy::ToolPolicy;
use crate::prepared::Prepared;
use crate::rate_limit::Limit;
use crate::rate_limit::global::GlobalLimit;
use crate::tenant::Tier;

/// Largest clock leeway the filter accepts (seconds).
pub const MAX_LEEWAY_SECS: u64 = 60;
/// Counts reach Envoy's counters once a second by default (`stats_flush_ms`).
pub const DEFAULT_STATS_FLUSH_MS: u64 = 1000;
/// A count never waits longer than this for Envoy's counters.
pub const MAX_STATS_FLUSH_MS: u64 = 60_000;

/// The configuration as written in envoy.yaml.
/// Where the filter gets its verification keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Inline,
    Remote(RemoteJwks),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub refresh_seconds: u64,
    /// An unknown `kid` triggers a refetch at most this often.
    pub min_refetch_seconds: u64,
    pub timeout_ms: u64,
}

/// The Protected Resource Metadata fields (RFC 9728) that the operator supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrmFields {
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub resource_documentation: Option<String>,
}

/// The validated configuration the filter runs with.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// This resource's canonical URI, e.g. `https://mcp.example.com/mcp`.
    pub resource: String,
    /// `scheme://authority` of `resource`.
    pub resource_origin: String,
    pub issuers: BTreeSet<String>,
    pub audiences: BTreeSet<String>,
    pub algorithms: BTreeSet<Algorithm>,
    pub leeway_seconds: u64,
    pub mcp_paths: Vec<String>,
    pub max_body_bytes: usize,
    pub gateway_secret: Vec<u8>,
    /// `iss` and `aud` of the identity assertion: the edge's name and the upstream's.
    pub assertion_issuer: String,
    pub assertion_audience: String,
    pub jwks_source: JwksSource,
    /// Keys from an inline JWKS (empty when the keys are fetched).
    pub inline_keys: Option<KeySet>,
    pub prm: PrmFields,
    /// Scopes named in the 401 challenge: what a client should ask for first.
    pub challenge_scopes: Vec<String>,
    pub policy: ToolPolicy,
    /// Browser origins allowed to call the MCP endpoint: the configured ones and the resource's own
    /// (an absent `Origin` is always allowed).
    pub allowed_origins: BTreeSet<String>,
    /// Per-tenant request limits by tier.
    pub rate_limits: BTreeMap<Tier, Limit>,
    /// Long-lived streams (GET SSE streams, `subscriptions/listen`) one tenant may hold at once,
    /// by tier (counted across the workers of one Envoy, `rate_limit::streams`).
    pub stream_limits: BTreeMap<Tier, u32>,
    /// Per-client-address limit on requests whose token fails verification.
    pub invalid_token_limit: Limit,
    /// Number of shared-data slots for buckets (of each kind).
    pub rate_limit_slots: u32,
    /// The prefix length IPv6 clients are counted by for `invalid_token_limit` (default 64).
    pub invalid_token_ipv6_prefix: u8,
    /// The `typ` header every token must carry (e.g. `at+jwt`, RFC 9068), if any.
    pub required_typ: Option<String>,
    /// How long a verified token is served from the cache at most (`None`: until its `exp`).
    pub token_cache_max_seconds: Option<u64>,
    /// Whether the upstream keeps sessions: then GET (SSE streams) and DELETE (session end) are
    /// forwarded; otherwise the edge answers them 405 itself.
    pub stateful_upstream: bool,
    /// Whether to put `mcp_edge.*` in filter state for an access log (five host calls a request;
    /// off when no access log reads them).
    pub access_log_properties: bool,
    /// How often (ms) each worker adds the counts it gathered to Envoy's counters; 0: one host
    /// call per count, as it happens. Batching saves two host calls a request; a count reaches
    /// `/stats` at most this late.
    pub stats_flush_ms: u64,
    /// Which claims name the tenant, user, scopes, allowed tools, tier and data scope.
    pub claims: ClaimMapping,
    /// The rate limit service asked after the local bucket admits (`None`: local buckets only).
    pub global_rate_limit: Option<GlobalLimit>,
    /// Where opaque (non-JWT) bearer tokens are introspected (`None`: they are refused).
    pub introspection: Option<Introspection>,
    /// What follows from the fields above, computed once.
    pub prepared: Prepared,
}

/// A configuration error, naming the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "plugin configuration: `{}`: {}",
            self.field, self.message
        )
    }
}

pub(super) fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Splits an absolute http(s) URI into (origin, path). The path is "/" when absent.
pub fn split_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let scheme_len = uri.len() - rest.len();
    let authority_len = rest.find('/').unwrap_or(rest.len());
    if authority_len == 0 || rest.contains(['?', '#']) {
        return None;
    }
    let (origin, path) = uri.split_at(scheme_len + authority_len);
    Some((origin, if path.is_empty() { "/" } else { path }))
}

pub(super) fn require_nonempty_list(field: &str, list: &[String]) -> Result<(), ConfigError> {
    if list.is_empty() {
        return Err(err(field, "must list at least one value"));
    }
    if list.iter().any(|v| v.is_empty()) {
        return Err(err(field, "must not contain an empty string"));
    }
    Ok(())
}

/// Parses and validates the plugin configuration. `env` resolves `{"env": NAME}` secrets.
pub fn parse_config(
    bytes: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EdgeConfig, ConfigError> {
    let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| {
        // serde names the unknown or missing field in its message.
        err("(root)", e.to_string())
    })?;
    let (origin, _) = split_uri(&raw.resource).ok_or_else(|| {
        err(
            "resource",
            "must be an absolute http(s) URI without query or fragment",
        )
    })?;
    let resource_origin = origin.to_string();
    require_nonempty_list("issuers", &raw.issuers)?;
    let audiences = raw
        .audiences
        .clone()
        .unwrap_or_else(|| vec![raw.resource.clone()]);
    require_nonempty_list("audiences", &audiences)?;
    let algorithms = checks::algorithms(&raw)?;
    checks::transport(&raw)?;
    checks::token_options(&raw)?;
    let gateway_secret = checks::gateway_secret(&raw.gateway_secret, env)?;
    let (jwks_source, inline_keys) = checks::jwks(&raw.jwks, &algorithms)?;
    let method_scopes = checks::scopes(&raw)?;
    checks::origins(&raw.allowed_origins)?;
    let (rate_limits, invalid_token_limit) = checks::rate_limits(&raw)?;
    let stream_limits = checks::stream_limits(&raw)?;
    let claims = claims::claim_mapping(raw.claims.as_ref())?;
    let global_rate_limit = checks::global_rate_limit(raw.global_rate_limit.as_ref(), env)?;
    let introspection = introspection::introspection(raw.introspection.as_ref(), env)?;

    let mut cfg = EdgeConfig {
        resource: raw.resource,
        issuers: raw.issuers.into_iter().collect(),
        audiences: audiences.into_iter().collect(),
        algorithms,
        leeway_seconds: raw.leeway_seconds,
        mcp_paths: raw.mcp_paths,
        max_body_bytes: raw.max_body_bytes,
        gateway_secret,
        assertion_issuer: checks::assertion_name("assertion.issuer", raw.assertion.issuer)?,
        assertion_audience: checks::assertion_name("assertion.audience", raw.assertion.audience)?,
        jwks_source,
        inline_keys,
        prm: PrmFields {
            authorization_servers: raw.prm.authorization_servers,
            scopes_supported: raw.prm.scopes_supported,
            resource_documentation: raw.prm.resource_documentation,
        },
        challenge_scopes: raw.challenge_scopes,
        policy: ToolPolicy {
            tool_scopes: raw.tool_scopes,
            method_scopes,
        },
        allowed_origins: raw
            .allowed_origins
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_string())
            .chain([crate::cors::browser_origin(&resource_origin)])
            .collect(),
        resource_origin,
        rate_limits,
        stream_limits,
        invalid_token_limit,
        rate_limit_slots: raw.rate_limit_slots,
        invalid_token_ipv6_prefix: raw.invalid_token_ipv6_prefix,
        required_typ: raw.required_typ,
        token_cache_max_seconds: raw.token_cache_max_seconds,
        stateful_upstream: raw.stateful_upstream,
        access_log_properties: raw.access_log_properties,
        stats_flush_ms: raw.stats_flush_ms,
        claims,
        global_rate_limit,
        introspection,
        prepared: Prepared::default(),
    };
    cfg.prepared = Prepared::new(&cfg);
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use serde_json::json;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    pub(crate) fn base() -> Value {
        json!({
            "resource": "http://127.0.0.1:8080/mcp",
            "issuers": ["http://127.0.0.1:9100"],
            "jwks": {"remote": {"cluster": "auth", "path": "/jwks", "authority": "127.0.0.1:9100"}},
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["http://127.0.0.1:9100"], "scopes_supported": ["mcp:read", "mcp:write", "mcp:admin"]},
            "tool_scopes": {"list_projects": "mcp:read", "delete_project": "mcp:admin"}
        })
    }

    fn parse(v: &Value) -> Result<EdgeConfig, ConfigError> {
        parse_config(v.to_string().as_bytes(), &no_env)
    }

    #[test]
    fn minimal_config_gets_safe_defaults() {
        let cfg = parse(&base()).unwrap();
        assert_eq!(cfg.resource_origin, "http://127.0.0.1:8080");
        assert!(cfg.audiences.contains("http://127.0.0.1:8080/mcp"));
        assert_eq!(cfg.leeway_seconds, 30);
        assert!(!cfg.algorithms.iter().any(|a| a.is_symmetric()));
        assert_eq!(cfg.mcp_paths, vec!["/mcp".to_string()]);
        assert!(cfg.access_log_properties, "on unless switched off");
        assert!(cfg.prepared.gateway_key.is_some());
        assert_eq!(
            cfg.prepared.token_policy.claims,
            crate::claim_mapping::ClaimMapping::default(),
            "no `claims`: the claim names the edge always read"
        );
        let mut v = base();
        v["access_log_properties"] = json!(false);
        assert!(!parse(&v).unwrap().access_log_properties);
        assert_eq!(cfg.stats_flush_ms, DEFAULT_STATS_FLUSH_MS);
        v["stats_flush_ms"] = json!(0);
        assert_eq!(
            parse(&v).unwrap().stats_flush_ms,
            0,
            "0: every count at once"
        );
    }

    fn field_of(mut v: Value, patch: impl FnOnce(&mut Value)) -> String {
        patch(&mut v);
        parse(&v).unwrap_err().field
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_of(base(), |v| v["resource"] = json!("mcp")),
            "resource"
        );
        assert_eq!(field_of(base(), |v| v["issuers"] = json!([])), "issuers");
        assert_eq!(
            field_of(base(), |v| v["algorithms"] = json!(["none"])),
            "algorithms"
        );
        assert_eq!(
            field_of(base(), |v| v["algorithms"] = json!(["HS256"])),
            "algorithms"
        );
        assert_eq!(
            field_of(base(), |v| v["leeway_seconds"] = json!(900)),
            "leeway_seconds"
        );
        assert_eq!(
            field_of(base(), |v| v["stats_flush_ms"] = json!(60_001)),
            "stats_flush_ms"
        );
        assert_eq!(
            field_of(base(), |v| v["mcp_paths"] = json!(["mcp"])),
            "mcp_paths"
        );
        assert_eq!(
            field_of(base(), |v| v["gateway_secret"] = json!({"inline": "short"})),
            "gateway_secret"
        );
        assert_eq!(
            field_of(base(), |v| v["gateway_secret"] = json!({"env": "NOPE"})),
            "gateway_secret.env"
        );
        assert_eq!(
            field_of(base(), |v| v["jwks"] = json!({"inline": {"keys": []}})),
            "jwks.inline"
        );
        assert_eq!(
            field_of(base(), |v| v["prm"]["authorization_servers"] = json!([])),
            "prm.authorization_servers"
        );
        assert_eq!(
            field_of(base(), |v| v["challenge_scopes"] = json!(["x"])),
            "challenge_scopes"
        );
        assert_eq!(
            field_of(base(), |v| v["claims"] = json!({"preset": "cognito"})),
            "claims.preset"
        );
        assert_eq!(
            field_of(base(), |v| v["claims"] = json!({"tenant": "/a~"})),
            "claims.tenant"
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let mut v = base();
        v["isuers"] = json!(["x"]);
        let e = parse(&v).unwrap_err();
        assert!(e.message.contains("isuers"), "{e}");
    }

    #[test]
    fn policy_and_origins() {
        let mut v = base();
        v["method_scopes"] = json!({"completion/complete": "mcp:read", "logging/setLevel": ""});
        v["allowed_origins"] = json!(["http://localhost:6274", "https://app.example.com/"]);
        let cfg = parse(&v).unwrap();
        assert_eq!(
            cfg.policy
                .tool_scopes
                .get("delete_project")
                .map(String::as_str),
            Some("mcp:admin")
        );
        assert_eq!(
            cfg.policy.method_scopes.get("logging/setLevel"),
            Some(&None)
        );
        assert!(cfg.allowed_origins.contains("https://app.example.com"));
    }

    #[test]
    fn stream_limits_have_defaults_and_are_checked() {
        let cfg = parse(&base()).unwrap();
        assert_eq!(cfg.stream_limits.get(&Tier::Free), Some(&2));
        assert_eq!(cfg.stream_limits.get(&Tier::Enterprise), Some(&128));
        for (limits, field) in [
            (json!({"free": 1, "pro": 2}), "stream_limits.enterprise"),
            (
                json!({"free": 0, "pro": 2, "enterprise": 3}),
                "stream_limits.free",
            ),
            (
                json!({"free": 1, "pro": 2, "enterprise": 3, "gold": 4}),
                "gold",
            ),
        ] {
            let mut v = base();
            v["stream_limits"] = limits;
            let e = parse(&v).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn hmac_needs_explicit_opt_in() {
        let mut v = base();
        v["algorithms"] = json!(["HS256"]);
        v["allow_hmac"] = json!(true);
        let cfg = parse(&v).unwrap();
        assert!(cfg.algorithms.contains(&Algorithm::Hs256));
    }

    #[test]
    fn secret_from_env() {
        let mut v = base();
        v["gateway_secret"] = json!({"env": "S"});
        let env = |n: &str| (n == "S").then(|| "x".repeat(40));
        let cfg = parse_config(v.to_string().as_bytes(), &env).unwrap();
        assert_eq!(cfg.gateway_secret.len(), 40);
    }

    #[test]
    fn global_rate_limit_is_off_unless_configured_and_checked() {
        assert!(parse(&base()).unwrap().global_rate_limit.is_none());
        let mut v = base();
        v["global_rate_limit"] = json!({"cluster": "mcp_edge_ratelimit",
            "failure_mode": {"enterprise": "closed"}});
        let g = parse(&v).unwrap().global_rate_limit.unwrap();
        assert_eq!((g.domain.as_str(), g.timeout_ms), ("mcp-edge", 20));
        use crate::rate_limit::global::FailureMode;
        assert_eq!(g.failure_mode(Tier::Enterprise), FailureMode::Closed);
        assert_eq!(g.failure_mode(Tier::Free), FailureMode::Closed);
        assert_eq!(g.failure_mode(Tier::Pro), FailureMode::Open);
        let global = |patch: Value| {
            let mut v = base();
            v["global_rate_limit"] = json!({"cluster": "rls"});
            for (k, val) in patch.as_object().unwrap() {
                v["global_rate_limit"][k] = val.clone();
            }
            parse(&v).unwrap_err()
        };
        assert_eq!(
            global(json!({"cluster": ""})).field,
            "global_rate_limit.cluster"
        );
        assert_eq!(
            global(json!({"timeout_ms": 0})).field,
            "global_rate_limit.timeout_ms"
        );
        assert_eq!(
            global(json!({"timeout_ms": 1001})).field,
            "global_rate_limit.timeout_ms"
        );
        let e = global(json!({"failure_mode": {"gold": "open"}}));
        assert_eq!(e.field, "global_rate_limit.failure_mode");
        assert!(e.message.contains("gold"), "{e}");
        assert!(
            global(json!({"failure_mode": {"free": "maybe"}}))
                .message
                .contains("maybe")
        );
        assert!(global(json!({"clutser": "x"})).message.contains("clutser"));
        assert_eq!(g.first_call_timeout_ms, 1_000);
        assert_eq!(g.authorization, None);
        assert_eq!(
            global(json!({"first_call_timeout_ms": 10})).field,
            "global_rate_limit.first_call_timeout_ms",
            "shorter than timeout_ms"
        );
        // The shared secret comes from the VM's environment, long enough, or the start fails.
        let mut v = base();
        v["global_rate_limit"] = json!({"cluster": "rls", "secret_env": "RLS_SECRET"});
        let secret = "s".repeat(32);
        let env = |name: &str| (name == "RLS_SECRET").then(|| secret.clone());
        let g = parse_config(v.to_string().as_bytes(), &env)
            .unwrap()
            .global_rate_limit
            .unwrap();
        assert_eq!(g.authorization, Some(format!("Bearer {secret}")));
        assert_eq!(parse(&v).unwrap_err().field, "global_rate_limit.secret_env");
        let short = |_: &str| Some("short".to_string());
        assert_eq!(
            parse_config(v.to_string().as_bytes(), &short)
                .unwrap_err()
                .field,
            "global_rate_limit.secret_env"
        );
    }

    #[test]
    fn split_uri_handles_paths() {
        assert_eq!(
            split_uri("https://a.example/mcp"),
            Some(("https://a.example", "/mcp"))
        );
        assert_eq!(split_uri("http://a:1"), Some(("http://a:1", "/")));
        assert_eq!(split_uri("ftp://a/"), None);
        assert_eq!(split_uri("https:///x"), None);
        assert_eq!(split_uri("https://a/x?y"), None);
    }
}
