//! The checks of each group of configuration fields; each names the field it refuses.

use std::collections::{BTreeMap, BTreeSet};

use super::raw::{RawConfig, RawFailureMode, RawGlobalLimit, RawJwks, RawLimit, RawSecret};
use super::{
    ConfigError, JwksSource, MAX_LEEWAY_SECS, RemoteJwks, err, require_nonempty_list, split_uri,
};
use crate::keys::{Algorithm, KeySet};
use crate::rate_limit::Limit;
use crate::rate_limit::global::{FailureMode, GlobalLimit};
use crate::rate_limit::rls_proto;
use crate::tenant::Tier;

/// The accepted signature algorithms; symmetric ones only when `allow_hmac` says so.
pub(super) fn algorithms(raw: &RawConfig) -> Result<BTreeSet<Algorithm>, ConfigError> {
    let mut algorithms = BTreeSet::new();
    for name in &raw.algorithms {
        let alg = Algorithm::from_name(name)
            .ok_or_else(|| err("algorithms", format!("unsupported algorithm {name:?}")))?;
        if alg.is_symmetric() && !raw.allow_hmac {
            return Err(err(
                "algorithms",
                format!("{name} is symmetric; set `allow_hmac: true` to accept it"),
            ));
        }
        algorithms.insert(alg);
    }
    if algorithms.is_empty() {
        return Err(err("algorithms", "must list at least one algorithm"));
    }
    Ok(algorithms)
}

/// MCP paths and the body cap.
pub(super) fn transport(raw: &RawConfig) -> Result<(), ConfigError> {
    require_nonempty_list("mcp_paths", &raw.mcp_paths)?;
    for p in &raw.mcp_paths {
        if !p.starts_with('/') || p.contains(['?', '#']) || p.contains("//") {
            return Err(err("mcp_paths", format!("{p:?} is not an absolute path")));
        }
    }
    if raw.max_body_bytes == 0
        || raw.max_body_bytes > mcp_edge_contract::limits::MAX_BODY_BYTES_CEILING
    {
        return Err(err("max_body_bytes", "must be between 1 and 16777216"));
    }
    Ok(())
}

/// Leeway, the required `typ` and the cache's maximum age.
pub(super) fn token_options(raw: &RawConfig) -> Result<(), ConfigError> {
    if raw.leeway_seconds > MAX_LEEWAY_SECS {
        return Err(err(
            "leeway_seconds",
            format!("at most {MAX_LEEWAY_SECS} seconds"),
        ));
    }
    if raw
        .required_typ
        .as_deref()
        .is_some_and(|t| t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(err("required_typ", "must be a media type such as at+jwt"));
    }
    if raw.stats_flush_ms > super::MAX_STATS_FLUSH_MS {
        return Err(err(
            "stats_flush_ms",
            format!(
                "at most {} (0: on every request)",
                super::MAX_STATS_FLUSH_MS
            ),
        ));
    }
    if raw.token_cache_max_seconds == Some(0) {
        return Err(err(
            "token_cache_max_seconds",
            "must be at least 1 (leave it out to cache until exp)",
        ));
    }
    Ok(())
}

/// The gateway secret, inline or from the VM's environment, long enough.
pub(super) fn gateway_secret(
    raw: &RawSecret,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, ConfigError> {
    let secret = match raw {
        RawSecret::Inline(s) => s.clone().into_bytes(),
        RawSecret::Env(name) => env(name)
            .ok_or_else(|| {
                err(
                    "gateway_secret.env",
                    format!("environment variable {name} is not set for the wasm VM"),
                )
            })?
            .into_bytes(),
    };
    if secret.len() < mcp_edge_contract::MIN_SECRET_LEN {
        return Err(err(
            "gateway_secret",
            format!(
                "must be at least {} bytes",
                mcp_edge_contract::MIN_SECRET_LEN
            ),
        ));
    }
    Ok(secret)
}

/// Where the keys come from: an inline JWKS (parsed now) or an Envoy cluster.
/// `assertion.issuer` / `assertion.audience`: a name a verifier compares byte for byte, so
/// printable, without surrounding spaces, and short.
pub(super) fn assertion_name(field: &str, name: String) -> Result<String, ConfigError> {
    let printable = name.chars().all(|c| !c.is_control());
    if name.is_empty() || name.len() > 256 || !printable || name.trim() != name {
        return Err(err(
            field,
            "must be 1 to 256 printable characters without surrounding spaces".to_string(),
        ));
    }
    Ok(name)
}

pub(super) fn jwks(
    raw: &RawJwks,
    algorithms: &BTreeSet<Algorithm>,
) -> Result<(JwksSource, Option<KeySet>), ConfigError> {
    let r = match raw {
        RawJwks::Inline(doc) => {
            let keys = KeySet::from_jwks(doc.to_string().as_bytes(), algorithms)
                .map_err(|e| err("jwks.inline", e))?;
            return Ok((JwksSource::Inline, Some(keys)));
        }
        RawJwks::Remote(r) => r,
    };
    let required = [
        (
            "jwks.remote.cluster",
            !r.cluster.is_empty(),
            "must not be empty",
        ),
        (
            "jwks.remote.path",
            r.path.starts_with('/'),
            "must start with /",
        ),
        (
            "jwks.remote.authority",
            !r.authority.is_empty(),
            "must not be empty",
        ),
        (
            "jwks.remote.refresh_seconds",
            r.refresh_seconds > 0,
            "must be positive",
        ),
        (
            "jwks.remote.timeout_ms",
            r.timeout_ms > 0,
            "must be positive",
        ),
    ];
    if let Some((field, _, problem)) = required.iter().find(|(_, ok, _)| !ok) {
        return Err(err(field, *problem));
    }
    let remote = RemoteJwks {
        cluster: r.cluster.clone(),
        path: r.path.clone(),
        authority: r.authority.clone(),
        refresh_seconds: r.refresh_seconds,
        min_refetch_seconds: r.min_refetch_seconds,
        timeout_ms: r.timeout_ms,
    };
    Ok((JwksSource::Remote(remote), None))
}

/// The metadata document's servers and scopes, and every scope the policy names being one of them.
/// Returns the method → scope map (`None`: a valid token is enough).
pub(super) fn scopes(raw: &RawConfig) -> Result<BTreeMap<String, Option<String>>, ConfigError> {
    require_nonempty_list("prm.authorization_servers", &raw.prm.authorization_servers)?;
    if let Some(s) = raw
        .prm
        .authorization_servers
        .iter()
        .find(|s| split_uri(s).is_none())
    {
        return Err(err(
            "prm.authorization_servers",
            format!("{s:?} is not an absolute http(s) URI"),
        ));
    }
    require_nonempty_list("prm.scopes_supported", &raw.prm.scopes_supported)?;
    require_nonempty_list("challenge_scopes", &raw.challenge_scopes)?;
    let scope_known = |s: &str| raw.prm.scopes_supported.iter().any(|k| k == s);
    if let Some(s) = raw.challenge_scopes.iter().find(|s| !scope_known(s)) {
        return Err(err(
            "challenge_scopes",
            format!("{s:?} is not in prm.scopes_supported"),
        ));
    }
    for (tool, scope) in &raw.tool_scopes {
        if tool.is_empty() || !scope_known(scope) {
            return Err(err(
                "tool_scopes",
                format!("{tool:?} needs {scope:?}, which is not in prm.scopes_supported"),
            ));
        }
    }
    let mut method_scopes = BTreeMap::new();
    for (method, scope) in &raw.method_scopes {
        if method == "tools/call" || (!scope.is_empty() && !scope_known(scope)) {
            return Err(err(
                "method_scopes",
                format!("{method:?} → {scope:?} is not allowed"),
            ));
        }
        method_scopes.insert(method.clone(), (!scope.is_empty()).then(|| scope.clone()));
    }
    Ok(method_scopes)
}

/// Browser origins: `scheme://authority` only.
pub(super) fn origins(origins: &[String]) -> Result<(), ConfigError> {
    for o in origins {
        if split_uri(o).is_none_or(|(origin, path)| origin != o && path != "/") {
            return Err(err(
                "allowed_origins",
                format!("{o:?} is not an origin like https://app.example.com"),
            ));
        }
    }
    Ok(())
}

fn limit(field: &str, l: RawLimit) -> Result<Limit, ConfigError> {
    if l.burst == 0 || l.requests_per_minute == 0 {
        return Err(err(field, "requests_per_minute and burst must be positive"));
    }
    Ok(Limit {
        capacity: l.burst,
        per_minute: l.requests_per_minute,
    })
}

/// Every tier's limit (each required, no unknown tier), the invalid-token limit, the slot count.
pub(super) fn rate_limits(raw: &RawConfig) -> Result<(BTreeMap<Tier, Limit>, Limit), ConfigError> {
    let mut rate_limits = BTreeMap::new();
    for tier in Tier::ALL {
        let field = format!("rate_limits.{}", tier.name());
        let raw_limit = raw
            .rate_limits
            .get(tier.name())
            .ok_or_else(|| err(&field, "missing: every tier needs a limit"))?;
        rate_limits.insert(tier, limit(&field, *raw_limit)?);
    }
    if let Some(unknown) = raw.rate_limits.keys().find(|k| Tier::parse(k).is_none()) {
        return Err(err("rate_limits", format!("unknown tier {unknown:?}")));
    }
    let invalid_token_limit = limit("invalid_token_limit", raw.invalid_token_limit)?;
    if !(16..=1_000_000).contains(&raw.rate_limit_slots) {
        return Err(err("rate_limit_slots", "must be between 16 and 1000000"));
    }
    if !(1..=128).contains(&raw.invalid_token_ipv6_prefix) {
        return Err(err(
            "invalid_token_ipv6_prefix",
            "must be a prefix length between 1 and 128",
        ));
    }
    Ok((rate_limits, invalid_token_limit))
}

/// Every tier's cap on long-lived streams (each required, 1..=100000, no unknown tier).
pub(super) fn stream_limits(raw: &RawConfig) -> Result<BTreeMap<Tier, u32>, ConfigError> {
    let mut caps = BTreeMap::new();
    for tier in Tier::ALL {
        let field = format!("stream_limits.{}", tier.name());
        let cap = *raw
            .stream_limits
            .get(tier.name())
            .ok_or_else(|| err(&field, "missing: every tier needs a cap"))?;
        if !(1..=100_000).contains(&cap) {
            return Err(err(&field, "must be between 1 and 100000"));
        }
        caps.insert(tier, cap);
    }
    if let Some(unknown) = raw.stream_limits.keys().find(|k| Tier::parse(k).is_none()) {
        return Err(err("stream_limits", format!("unknown tier {unknown:?}")));
    }
    Ok(caps)
}

/// The global rate limit service, when configured: a cluster name, a domain, a timeout of
/// 1..=1000 ms and a failure mode per known tier.
pub(super) fn global_rate_limit(
    raw: Option<&RawGlobalLimit>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<GlobalLimit>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let cluster_ok = !raw.cluster.is_empty()
        && raw.cluster.len() <= 100
        && raw.cluster.bytes().all(|b| b.is_ascii_graphic());
    let upstream = cluster_ok
        .then(|| rls_proto::upstream_for(&raw.cluster))
        .flatten()
        .ok_or_else(|| {
            err(
                "global_rate_limit.cluster",
                "must name an Envoy cluster (1 to 100 printable ASCII characters)",
            )
        })?;
    if raw.domain.is_empty() || raw.domain.len() > 100 {
        return Err(err(
            "global_rate_limit.domain",
            "must be 1 to 100 characters",
        ));
    }
    if !(1..=1000).contains(&raw.timeout_ms) {
        return Err(err(
            "global_rate_limit.timeout_ms",
            "must be between 1 and 1000",
        ));
    }
    if !(raw.timeout_ms..=10_000).contains(&raw.first_call_timeout_ms) {
        return Err(err(
            "global_rate_limit.first_call_timeout_ms",
            "must be between timeout_ms and 10000",
        ));
    }
    let authorization = match &raw.secret_env {
        None => None,
        Some(name) => {
            let secret = env(name).unwrap_or_default();
            if secret.len() < 32 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(err(
                    "global_rate_limit.secret_env",
                    format!(
                        "environment variable {name} must hold at least 32 printable ASCII characters for the wasm VM"
                    ),
                ));
            }
            Some(format!("Bearer {secret}"))
        }
    };
    let mut failure_mode = std::collections::BTreeMap::new();
    for (name, mode) in &raw.failure_mode {
        let tier = Tier::parse(name).ok_or_else(|| {
            err(
                "global_rate_limit.failure_mode",
                format!("unknown tier {name:?} (free, pro, enterprise)"),
            )
        })?;
        let mode = match mode {
            RawFailureMode::Open => FailureMode::Open,
            RawFailureMode::Closed => FailureMode::Closed,
        };
        failure_mode.insert(tier, mode);
    }
    Ok(Some(GlobalLimit {
        cluster: raw.cluster.clone(),
        upstream,
        domain: raw.domain.clone(),
        timeout_ms: raw.timeout_ms,
        first_call_timeout_ms: raw.first_call_timeout_ms,
        failure_mode,
        tool_descriptor: raw.tool_descriptor,
        authorization,
    }))
}
