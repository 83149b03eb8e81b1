//! The `claims` field: which claims of the IdP's tokens name the tenant, user, scopes, allowed
//! tools, tier and data scope, checked once here and prepared as a [`ClaimMapping`].
//!
//! A claim is written as a plain string, taken verbatim as one top-level claim name (so Auth0's
//! namespaced `https://example.com/tenant_id` needs no escaping), or as a string starting with `/`,
//! an RFC 6901 JSON pointer into nested objects (`/realm_access/roles`; `~1` is `/`, `~0` is `~`).
//! A JSON pointer rather than dots, because IdP claim names contain dots and slashes; a plain name
//! first, because most mappings are one top-level claim. `{"fixed": "…"}` gives the value for
//! every token instead (single-tenant deployments; Google ID tokens, which carry no scopes).

use std::collections::BTreeMap;

use mcp_edge_contract::limits::{MAX_DATA_SCOPE_BYTES, MAX_SCOPE_BYTES, MAX_TENANT_ID_BYTES};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConfigError, err};
use crate::claim_mapping::{ClaimMapping, ClaimPath, Source};
use crate::tenant::Tier;

/// `claims` as written: every field optional; a preset fills what is left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClaims {
    #[serde(default)]
    preset: Option<String>,
    #[serde(default)]
    tenant: Option<Value>,
    #[serde(default)]
    user: Option<Value>,
    #[serde(default)]
    scopes: Option<Value>,
    #[serde(default)]
    scope_prefix: Option<String>,
    #[serde(default)]
    allowed_tools: Option<Value>,
    #[serde(default)]
    tier: Option<Value>,
    #[serde(default)]
    tier_map: Option<BTreeMap<String, String>>,
    #[serde(default)]
    tier_by_tenant: Option<BTreeMap<String, String>>,
    #[serde(default)]
    app_only: Option<RawAppOnly>,
    #[serde(default)]
    data_scope: Option<Value>,
}

/// The claim and value that mark an app-only token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppOnly {
    claim: String,
    value: String,
}

/// The names of the presets, for messages and docs.
pub const PRESETS: [&str; 5] = ["auth0", "entra", "google", "keycloak", "okta"];

/// A preset: the claim names its provider documents for its tokens (docs/identity-providers.md
/// shows each with its token). What only the operator knows (tier_map values, a scope prefix, a
/// namespaced claim) is never in a preset, nor is the tier: a preset's claims are written by each
/// customer's own administrator (Entra app roles are assigned in the customer's directory), so a
/// preset's tier comes from the operator (`tier_by_tenant`, or a fixed tier; free otherwise).
pub fn preset(name: &str) -> Option<Value> {
    Some(match name {
        // Auth0 Organizations put the organization's id in `org_id`.
        "auth0" => json!({"tenant": "org_id"}),
        // Entra ID v2: the directory is `tid`, the stable user id `oid` (`sub` is per application),
        // delegated scopes are `scp` (a string); app-only tokens are marked `idtyp: app` (an
        // optional claim the app registration must ask for) and carry application permissions in
        // `roles`.
        "entra" => json!({
            "tenant": "tid", "user": "oid", "scopes": "scp",
            "app_only": {"claim": "idtyp", "value": "app"}
        }),
        // Google ID tokens: the Workspace domain is `hd` (absent for consumer accounts: refused).
        "google" => json!({"tenant": "hd"}),
        // Keycloak: scopes in `scope` (the defaults); realm roles are the realm admin's to give.
        "keycloak" => json!({}),
        // Okta custom authorization servers: scopes are the array `scp`.
        "okta" => json!({"scopes": "scp"}),
        _ => return None,
    })
}

/// Claims the verifier reads itself (jwt-simple takes them out of the claim set); `sub` can be
/// mapped, these cannot.
const REGISTERED: [&str; 6] = ["iss", "aud", "exp", "nbf", "iat", "jti"];

/// The claim `written` names, or why it names none.
fn claim_path(field: &str, written: &str) -> Result<ClaimPath, ConfigError> {
    let path = match written.strip_prefix('/') {
        None if written.is_empty() => return Err(err(field, "must not be empty")),
        None => ClaimPath::name(written),
        Some(pointer) => {
            let mut segments = Vec::new();
            for raw in pointer.split('/') {
                let segment = unescape_pointer_segment(raw).ok_or_else(|| {
                    err(
                        field,
                        format!(
                            "{written:?}: a JSON pointer segment has `~` not followed by 0 or 1"
                        ),
                    )
                })?;
                if segment.is_empty() {
                    return Err(err(
                        field,
                        format!("{written:?}: a JSON pointer segment is empty"),
                    ));
                }
                segments.push(segment);
            }
            ClaimPath::from_segments(segments, written)
        }
    };
    // It names the claim in 401 descriptions (a header): visible ASCII only.
    if !written.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(field, "must be visible ASCII without spaces"));
    }
    if REGISTERED.contains(&path.top_level()) {
        return Err(err(
            field,
            format!(
                "{:?} is a registered claim the verifier checks itself; it cannot be mapped",
                path.top_level()
            ),
        ));
    }
    Ok(path)
}

/// RFC 6901 §4: `~1` is `/`, `~0` is `~`, any other `~` is an error.
fn unescape_pointer_segment(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

const SOURCE_FORMS: &str =
    "must be a claim name, a JSON pointer such as \"/realm_access/roles\", or {\"fixed\": \"…\"}";

/// A claim, or the string of `{"fixed": "…"}` (handed to `fixed` to check and convert).
fn source<T>(
    field: &str,
    value: &Value,
    fixed: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Source<T>, ConfigError> {
    match value {
        Value::String(written) => Ok(Source::Claim(claim_path(field, written)?)),
        Value::Object(o) if o.len() == 1 => match o.get("fixed") {
            Some(Value::String(v)) => fixed(v)
                .map(Source::Fixed)
                .map_err(|m| err(&format!("{field}.fixed"), m)),
            _ => Err(err(field, SOURCE_FORMS)),
        },
        _ => Err(err(field, SOURCE_FORMS)),
    }
}

/// Most claims a `scopes` list may name.
const MAX_SCOPE_CLAIMS: usize = 4;

/// `scopes` written as a list of claims: the first (as any single `scopes` value) and the
/// fallbacks read in order when it is absent.
fn scope_claim_list(list: &[Value]) -> Result<(ClaimPath, Vec<ClaimPath>), ConfigError> {
    let field = "claims.scopes";
    if list.is_empty() || list.len() > MAX_SCOPE_CLAIMS {
        return Err(err(
            field,
            format!(
                "a list must name 1 to {MAX_SCOPE_CLAIMS} claims, read in order until one is present"
            ),
        ));
    }
    let mut paths = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let path = claim_only(&format!("{field}[{i}]"), item)?;
        if paths
            .iter()
            .any(|p: &ClaimPath| p.written() == path.written())
        {
            return Err(err(field, format!("{:?} is listed twice", path.written())));
        }
        paths.push(path);
    }
    let mut paths = paths.into_iter();
    match paths.next() {
        Some(first) => Ok((first, paths.collect())),
        None => Err(err(field, "a list must name a claim")),
    }
}

/// A field that must come from the token (the user, the allowed tools).
fn claim_only(field: &str, value: &Value) -> Result<ClaimPath, ConfigError> {
    match value {
        Value::String(written) => claim_path(field, written),
        _ => Err(err(
            field,
            "must be a claim name or a JSON pointer (a fixed value is not allowed here)",
        )),
    }
}

fn plain_text(value: &str, max: usize, what: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(format!(
            "a {what} of 1 to {max} bytes without control characters"
        ));
    }
    Ok(())
}

/// A map of non-empty values (IdP values, tenant ids) to our tiers.
fn tiers_of(
    field: &str,
    raw: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Tier>, ConfigError> {
    let mut map = BTreeMap::new();
    for (value, tier) in raw {
        let tier = Tier::parse(tier).ok_or_else(|| {
            err(
                field,
                format!("{value:?} → unknown tier {tier:?} (free, pro or enterprise)"),
            )
        })?;
        if value.is_empty() {
            return Err(err(field, "a value to map must not be empty"));
        }
        map.insert(value.clone(), tier);
    }
    Ok(map)
}

/// Checks `claims` (absent: today's claim names) and prepares the mapping.
pub(super) fn claim_mapping(raw: Option<&RawClaims>) -> Result<ClaimMapping, ConfigError> {
    let mut mapping = ClaimMapping::default();
    let Some(raw) = raw else {
        return Ok(mapping);
    };
    let preset = match &raw.preset {
        None => Value::Null,
        Some(name) => preset(name).ok_or_else(|| {
            err(
                "claims.preset",
                format!("unknown preset {name:?} (one of {})", PRESETS.join(", ")),
            )
        })?,
    };
    // A field given explicitly replaces the preset's.
    let pick =
        |given: &Option<Value>, name: &str| given.clone().or_else(|| preset.get(name).cloned());

    if let Some(v) = pick(&raw.tenant, "tenant") {
        mapping.tenant = source("claims.tenant", &v, |t| {
            plain_text(t, MAX_TENANT_ID_BYTES, "tenant id").map(|()| t.to_string())
        })?;
    }
    if let Some(v) = pick(&raw.user, "user") {
        mapping.user = claim_only("claims.user", &v)?;
    }
    if let Some(Value::Array(list)) = pick(&raw.scopes, "scopes") {
        // A list: the first claim present is read (the others are fallbacks, in order).
        let (first, fallback) = scope_claim_list(&list)?;
        mapping.scopes = Source::Claim(first);
        mapping.scopes_fallback = fallback;
    } else if let Some(v) = pick(&raw.scopes, "scopes") {
        mapping.scopes = source("claims.scopes", &v, |s| {
            plain_text(s, MAX_SCOPE_BYTES, "space-separated scope list").map(|()| {
                s.split(' ')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            })
        })?;
    }
    if let Some(prefix) = &raw.scope_prefix {
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err(
                "claims.scope_prefix",
                "must be visible ASCII without spaces, e.g. api://<application id>/",
            ));
        }
        if matches!(mapping.scopes, Source::Fixed(_)) {
            return Err(err(
                "claims.scope_prefix",
                "applies to scopes read from the token; write fixed scopes in full",
            ));
        }
        mapping.scope_prefix = Some(prefix.clone());
    }
    if let Some(v) = pick(&raw.allowed_tools, "allowed_tools") {
        mapping.allowed_tools = claim_only("claims.allowed_tools", &v)?;
    }
    if let Some(v) = pick(&raw.tier, "tier") {
        mapping.tier = source("claims.tier", &v, |t| {
            Tier::parse(t).ok_or_else(|| format!("unknown tier {t:?} (free, pro or enterprise)"))
        })?;
    }
    if raw.preset.is_some() && raw.tier.is_none() {
        if raw.tier_map.is_some() {
            return Err(err(
                "claims.tier_map",
                "a preset reads no tier claim (its claims are the customer's administrator's to \
                 set): give tier_by_tenant or a fixed tier, or name the tier claim in claims.tier \
                 if you administer it",
            ));
        }
        mapping.tier = Source::Fixed(Tier::Free);
    }
    if let Some(by_tenant) = &raw.tier_by_tenant {
        if matches!(mapping.tier, Source::Claim(_)) && raw.tier.is_some() {
            return Err(err(
                "claims.tier_by_tenant",
                "decides the tier itself; leave claims.tier out (or make it the fixed tier of \
                 tenants not listed)",
            ));
        }
        mapping.tier_by_tenant = Some(tiers_of("claims.tier_by_tenant", by_tenant)?);
    }
    let app_only = raw.app_only.clone().or_else(|| {
        preset
            .get("app_only")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    });
    if let Some(RawAppOnly { claim, value }) = app_only {
        mapping.app_only = Some((claim_path("claims.app_only.claim", &claim)?, value));
    }
    if let Some(raw_map) = &raw.tier_map {
        if matches!(mapping.tier, Source::Fixed(_)) {
            return Err(err(
                "claims.tier_map",
                "has no effect with a fixed tier; leave one of them out",
            ));
        }
        mapping.tier_map = Some(tiers_of("claims.tier_map", raw_map)?);
    }
    if let Some(v) = pick(&raw.data_scope, "data_scope") {
        mapping.data_scope = source("claims.data_scope", &v, |d| {
            plain_text(d, MAX_DATA_SCOPE_BYTES, "data scope").map(|()| d.to_string())
        })?;
    }
    Ok(mapping)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(v: Value) -> Result<ClaimMapping, ConfigError> {
        let raw: RawClaims = serde_json::from_value(v).map_err(|e| err("(root)", e.to_string()))?;
        claim_mapping(Some(&raw))
    }

    fn field_of(v: Value) -> String {
        mapping(v).unwrap_err().field
    }

    #[test]
    fn absent_means_todays_names() {
        assert_eq!(claim_mapping(None).unwrap(), ClaimMapping::default());
        assert_eq!(mapping(json!({})).unwrap(), ClaimMapping::default());
    }

    #[test]
    fn names_pointers_and_fixed_values() {
        let m = mapping(json!({
            "tenant": "https://example.com/tenant_id",
            "tier": "/realm_access/roles",
            "allowed_tools": "/https:~1~1example.com~1mcp/tools~0x",
            "scopes": {"fixed": "mcp:read  mcp:write"},
            "data_scope": {"fixed": "team:all"}
        }))
        .unwrap();
        assert_eq!(
            m.tenant,
            Source::Claim(ClaimPath::name("https://example.com/tenant_id"))
        );
        assert_eq!(
            m.tier,
            Source::Claim(ClaimPath::from_segments(
                vec!["realm_access".into(), "roles".into()],
                "/realm_access/roles"
            ))
        );
        assert_eq!(
            m.allowed_tools,
            ClaimPath::from_segments(
                vec!["https://example.com/mcp".into(), "tools~x".into()],
                "/https:~1~1example.com~1mcp/tools~0x"
            )
        );
        assert_eq!(
            m.scopes,
            Source::Fixed(vec!["mcp:read".into(), "mcp:write".into()])
        );
        assert_eq!(m.data_scope, Source::Fixed("team:all".into()));
        assert_eq!(
            m.user,
            ClaimPath::name("sub"),
            "untouched fields keep their default"
        );
    }

    #[test]
    fn presets_fill_what_is_not_given() {
        let m = mapping(json!({"preset": "entra", "tier_by_tenant": {"contoso": "pro"}})).unwrap();
        assert_eq!(m.tenant, Source::Claim(ClaimPath::name("tid")));
        assert_eq!(m.user, ClaimPath::name("oid"));
        assert_eq!(m.scopes, Source::Claim(ClaimPath::name("scp")));
        assert_eq!(m.app_only, Some((ClaimPath::name("idtyp"), "app".into())));
        // The tier is the operator's: by tenant, free for the others; never a preset's claim.
        assert_eq!(m.tier, Source::Fixed(Tier::Free));
        assert_eq!(
            m.tier_by_tenant,
            Some([("contoso".to_string(), Tier::Pro)].into())
        );
        assert!(
            m.scopes_fallback.is_empty(),
            "roles are scopes only when asked"
        );
        let m = mapping(json!({"preset": "entra", "user": "sub"})).unwrap();
        assert_eq!(m.user, ClaimPath::name("sub"), "an explicit field wins");
        // Entra app-only tokens (idtyp: app): `roles`.
        let m = mapping(json!({"preset": "entra", "scopes": ["scp", "roles"]})).unwrap();
        assert_eq!(m.scopes, Source::Claim(ClaimPath::name("scp")));
        assert_eq!(m.scopes_fallback, vec![ClaimPath::name("roles")]);
        for name in PRESETS {
            let m = mapping(json!({"preset": name})).unwrap();
            assert_eq!(m.tier, Source::Fixed(Tier::Free), "{name}");
        }
        // A tier claim only when named explicitly (the operator administers it).
        let m = mapping(json!({"preset": "keycloak", "tier": "/realm_access/roles"})).unwrap();
        assert!(matches!(m.tier, Source::Claim(_)));
        let e = mapping(json!({"preset": "entra", "tier_map": {"MCP.Pro": "pro"}})).unwrap_err();
        assert_eq!(e.field, "claims.tier_map");
        let e = mapping(json!({"tier": "roles", "tier_by_tenant": {"a": "pro"}})).unwrap_err();
        assert_eq!(e.field, "claims.tier_by_tenant");
        let e = mapping(json!({"tier_by_tenant": {"a": "gold"}})).unwrap_err();
        assert_eq!(e.field, "claims.tier_by_tenant");
    }

    #[test]
    fn bad_mappings_name_their_field() {
        let cases = [
            (json!({"preset": "cognito"}), "claims.preset"),
            (json!({"tenant": ""}), "claims.tenant"),
            (json!({"tenant": 7}), "claims.tenant"),
            (json!({"tenant": "/"}), "claims.tenant"),
            (json!({"tenant": "/a//b"}), "claims.tenant"),
            (json!({"tenant": "/a~2"}), "claims.tenant"),
            (json!({"tenant": "iss"}), "claims.tenant"),
            (json!({"tenant": "ténant"}), "claims.tenant"),
            (json!({"tenant": "a b"}), "claims.tenant"),
            (json!({"tenant": "/aud/x"}), "claims.tenant"),
            (json!({"tenant": {"fixed": ""}}), "claims.tenant.fixed"),
            (json!({"tenant": {"fixed": "a\nb"}}), "claims.tenant.fixed"),
            (
                json!({"tenant": {"fixed": "x".repeat(129)}}),
                "claims.tenant.fixed",
            ),
            (json!({"tenant": {"fixed": "a", "b": 1}}), "claims.tenant"),
            (json!({"tenant": {"claim": "a"}}), "claims.tenant"),
            (json!({"user": {"fixed": "u"}}), "claims.user"),
            (
                json!({"allowed_tools": {"fixed": "x"}}),
                "claims.allowed_tools",
            ),
            (json!({"tier": {"fixed": "gold"}}), "claims.tier.fixed"),
            (
                json!({"tier": {"fixed": "pro"}, "tier_map": {"a": "pro"}}),
                "claims.tier_map",
            ),
            (json!({"tier_map": {"a": "gold"}}), "claims.tier_map"),
            (json!({"tier_map": {"": "pro"}}), "claims.tier_map"),
            (json!({"scope_prefix": "api://x y/"}), "claims.scope_prefix"),
            (
                json!({"scopes": {"fixed": "a"}, "scope_prefix": "api://x/"}),
                "claims.scope_prefix",
            ),
            (json!({"data_scope": ["x"]}), "claims.data_scope"),
            (json!({"scopes": []}), "claims.scopes"),
            (
                json!({"scopes": ["a", "b", "c", "d", "e"]}),
                "claims.scopes",
            ),
            (json!({"scopes": ["scp", "scp"]}), "claims.scopes"),
            (
                json!({"scopes": ["scp", {"fixed": "a"}]}),
                "claims.scopes[1]",
            ),
            (json!({"scopes": ["scp", "exp"]}), "claims.scopes[1]"),
        ];
        for (v, field) in cases {
            assert_eq!(field_of(v.clone()), field, "{v}");
        }
        let e = mapping(json!({"tenat": "x"})).unwrap_err();
        assert!(e.message.contains("tenat"), "{e}");
    }
}
