//! The TenantContext: who is calling, for which tenant, with what rights, read from verified claims.
//!
//! Claims are read strictly: a claim of the wrong type (`allowed_tools: null` or `"*"`, a numeric
//! `tenant_id`, a `tenant_id` with control characters or over 128 bytes) makes the token invalid. It
//! is never read as "absent", because "absent" can mean "everything" (see `allowed_tools`).
//! Which claims are read is the configuration's [`ClaimMapping`]; the checks are the same for all.

use mcp_edge_contract::Identity;
use mcp_edge_contract::limits::{
    MAX_ALLOWED_TOOLS, MAX_DATA_SCOPE_BYTES, MAX_SCOPE_BYTES, MAX_SUB_BYTES, MAX_TENANT_ID_BYTES,
};
use serde_json::{Map, Value};

use crate::claim_mapping::{ClaimMapping, ClaimPath, Source};

pub use mcp_edge_contract::Tier;

/// Most scopes an array-valued scopes claim may list.
const MAX_SCOPE_ITEMS: usize = 256;

/// What the edge knows of an authenticated caller: the [`Identity`] it vouches for upstream, and
/// the tools the token may call (which stays at the edge). Dereferences to the identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantContext {
    pub identity: Identity,
    /// `None`: every tool the scopes permit. `Some(empty)`: no tool.
    pub allowed_tools: Option<Vec<String>>,
}

impl std::ops::Deref for TenantContext {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.identity
    }
}

/// Why a token's claims could not be turned into a TenantContext. `claim` is the claim as the
/// configuration names it (`tenant_id`, `tid`, `/realm_access/roles`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimError {
    pub claim: String,
    pub problem: &'static str,
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "claim `{}` {}", self.claim, self.problem)
    }
}

fn bad(path: &ClaimPath, problem: &'static str) -> ClaimError {
    ClaimError {
        claim: path.written().to_string(),
        problem,
    }
}

/// A string claim: `Ok(None)` when absent, an error when of another type, too long, or when it
/// carries control characters.
fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    path: &ClaimPath,
    max: usize,
) -> Result<Option<&'a str>, ClaimError> {
    match path.find(claims) {
        None => Ok(None),
        Some(Value::String(s)) => {
            if s.len() > max {
                Err(bad(path, "is too long"))
            } else if s.chars().any(char::is_control) {
                Err(bad(path, "contains control characters"))
            } else {
                Ok(Some(s))
            }
        }
        Some(_) => Err(bad(path, "is not a string")),
    }
}

/// A string claim or the configured value.
fn string_from<'a>(
    claims: &'a Map<String, Value>,
    source: &'a Source<String>,
    max: usize,
) -> Result<Option<&'a str>, ClaimError> {
    match source {
        Source::Claim(path) => string_claim(claims, path, max),
        Source::Fixed(value) => Ok(Some(value)),
    }
}

/// The scopes: a space-separated string, or (from any claim but the RFC 9068 `scope`, which is a
/// string by definition) an array of scope names, as Okta's `scp` is. Read from the mapping's
/// scopes claim, or when it is absent from the first of its fallbacks that is present.
fn scopes_from(
    claims: &Map<String, Value>,
    mapping: &ClaimMapping,
) -> Result<Vec<String>, ClaimError> {
    let first = match &mapping.scopes {
        Source::Fixed(scopes) => return Ok(scopes.clone()),
        Source::Claim(path) => path,
    };
    // With an app-only marker, an app-only token's scopes are only its fallback claims (Entra:
    // `roles`) and any other token's only the scopes claim; without one, the first present.
    let app_only = mapping
        .app_only
        .as_ref()
        .map(|(marker, value)| marker.find(claims).and_then(Value::as_str) == Some(value));
    let found = std::iter::once(first)
        .filter(|_| app_only != Some(true))
        .chain(
            mapping
                .scopes_fallback
                .iter()
                .filter(|_| app_only != Some(false)),
        )
        .find_map(|path| path.find(claims).map(|value| (path, value)));
    let Some((path, value)) = found else {
        return Ok(Vec::new());
    };
    let mut scopes: Vec<String> = match value {
        Value::Array(items) if path.written() != "scope" => {
            if items.len() > MAX_SCOPE_ITEMS {
                return Err(bad(path, "lists too many scopes"));
            }
            let mut scopes = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s)
                        if !s.is_empty()
                            && !s.contains(' ')
                            && !s.chars().any(char::is_control) =>
                    {
                        scopes.push(s.clone())
                    }
                    _ => return Err(bad(path, "must be an array of scope names")),
                }
            }
            scopes
        }
        _ => string_claim(claims, path, MAX_SCOPE_BYTES)?
            .map(|s| {
                s.split(' ')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    };
    if let Some(prefix) = &mapping.scope_prefix {
        for scope in scopes
            .iter_mut()
            .filter(|s| !s.starts_with(prefix.as_str()))
        {
            scope.insert_str(0, prefix);
        }
    }
    if scopes.iter().map(|s| s.len() + 1).sum::<usize>() > MAX_SCOPE_BYTES + 1 {
        return Err(bad(path, "is too long"));
    }
    Ok(scopes)
}

/// The tier: one value or an array of values (Entra's `roles`, Keycloak's realm roles), each
/// read through the tier map if there is one; the highest tier named wins, none is the lowest.
fn tier_from(
    claims: &Map<String, Value>,
    mapping: &ClaimMapping,
    tenant_id: &str,
) -> Result<Tier, ClaimError> {
    if let Some(by_tenant) = &mapping.tier_by_tenant {
        let otherwise = match &mapping.tier {
            Source::Fixed(tier) => *tier,
            Source::Claim(_) => Tier::Free,
        };
        return Ok(by_tenant.get(tenant_id).copied().unwrap_or(otherwise));
    }
    let path = match &mapping.tier {
        Source::Fixed(tier) => return Ok(*tier),
        Source::Claim(path) => path,
    };
    let tier_of = |name: &str| match &mapping.tier_map {
        Some(map) => map.get(name).copied(),
        None => Tier::parse(name),
    };
    match path.find(claims) {
        None => Ok(Tier::Free),
        Some(Value::Array(items)) => {
            let mut tier = Tier::Free;
            for item in items {
                let name = item
                    .as_str()
                    .ok_or_else(|| bad(path, "must be a string or an array of strings"))?;
                tier = tier.max(tier_of(name).unwrap_or(Tier::Free));
            }
            Ok(tier)
        }
        Some(Value::String(name)) => Ok(tier_of(name).unwrap_or(Tier::Free)),
        Some(_) => Err(bad(path, "is not a string")),
    }
}

/// Builds the TenantContext from the claims of a verified token with the default mapping (the
/// claim names the edge has always read). `sub` comes from the registered claims.
pub fn tenant_context_from_claims(
    subject: Option<&str>,
    custom: &Map<String, Value>,
) -> Result<TenantContext, ClaimError> {
    static DEFAULT: std::sync::LazyLock<ClaimMapping> =
        std::sync::LazyLock::new(ClaimMapping::default);
    let mut claims = custom.clone();
    if let Some(s) = subject {
        claims.insert("sub".into(), Value::String(s.to_string()));
    }
    tenant_context(&DEFAULT, &claims)
}

/// Builds the TenantContext from a verified token's claims (`sub` among them) as `mapping` says.
pub fn tenant_context(
    mapping: &ClaimMapping,
    claims: &Map<String, Value>,
) -> Result<TenantContext, ClaimError> {
    let tenant_id = match &mapping.tenant {
        Source::Fixed(tenant) => tenant.as_str(),
        Source::Claim(path) => string_claim(claims, path, MAX_TENANT_ID_BYTES)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(path, "is required"))?,
    };
    let user_id = match mapping.user.find(claims) {
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= MAX_SUB_BYTES && !s.chars().any(char::is_control) =>
        {
            s
        }
        Some(Value::String(_)) => {
            return Err(bad(
                &mapping.user,
                "is empty, too long or contains control characters",
            ));
        }
        Some(_) => return Err(bad(&mapping.user, "is not a string")),
        None => return Err(bad(&mapping.user, "is required")),
    };
    let scopes = scopes_from(claims, mapping)?;
    let tools_path = &mapping.allowed_tools;
    let allowed_tools = match tools_path.find(claims) {
        None => None,
        Some(Value::Array(items)) => {
            if items.len() > MAX_ALLOWED_TOOLS {
                return Err(bad(tools_path, "lists too many tools"));
            }
            let mut tools = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) if !s.is_empty() && !s.chars().any(char::is_control) => {
                        tools.push(s.clone())
                    }
                    _ => return Err(bad(tools_path, "must be an array of tool names")),
                }
            }
            Some(tools)
        }
        Some(_) => return Err(bad(tools_path, "must be an array of tool names")),
    };
    let data_scope =
        string_from(claims, &mapping.data_scope, MAX_DATA_SCOPE_BYTES)?.unwrap_or_default();
    let tier = tier_from(claims, mapping, tenant_id)?;
    Ok(TenantContext {
        identity: Identity {
            tenant_id: tenant_id.to_string(),
            user_id: user_id.to_string(),
            scopes,
            data_scope: data_scope.to_string(),
            tier,
        },
        allowed_tools,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn full_claims() {
        let c = claims(json!({
            "tenant_id": "acme", "scope": "mcp:read  mcp:write", "allowed_tools": ["list_projects"],
            "data_scope": "team:engineering", "rate_limit_tier": "pro"
        }));
        let ctx = tenant_context_from_claims(Some("u1"), &c).unwrap();
        assert_eq!(ctx.tenant_id, "acme");
        assert_eq!(ctx.user_id, "u1");
        assert_eq!(ctx.scopes, vec!["mcp:read", "mcp:write"]);
        assert_eq!(ctx.allowed_tools, Some(vec!["list_projects".to_string()]));
        assert_eq!(ctx.data_scope, "team:engineering");
        assert_eq!(ctx.tier, Tier::Pro);
        assert_eq!(ctx.scopes_joined(), "mcp:read mcp:write");
    }

    #[test]
    fn absent_optional_claims() {
        let ctx =
            tenant_context_from_claims(Some("u"), &claims(json!({"tenant_id": "t"}))).unwrap();
        assert_eq!(ctx.allowed_tools, None);
        assert!(ctx.scopes.is_empty());
        assert_eq!(ctx.data_scope, "");
        assert_eq!(ctx.tier, Tier::Free);
    }

    #[test]
    fn empty_allowed_tools_means_none() {
        let c = claims(json!({"tenant_id": "t", "allowed_tools": []}));
        assert_eq!(
            tenant_context_from_claims(Some("u"), &c)
                .unwrap()
                .allowed_tools,
            Some(vec![])
        );
    }

    #[test]
    fn wrong_types_are_invalid_not_absent() {
        let cases = [
            (
                json!({"tenant_id": "t", "allowed_tools": null}),
                "allowed_tools",
            ),
            (
                json!({"tenant_id": "t", "allowed_tools": "*"}),
                "allowed_tools",
            ),
            (
                json!({"tenant_id": "t", "allowed_tools": [1]}),
                "allowed_tools",
            ),
            (json!({"tenant_id": 42}), "tenant_id"),
            (json!({"tenant_id": null}), "tenant_id"),
            (json!({"tenant_id": ""}), "tenant_id"),
            (json!({"tenant_id": "a\u{0}b"}), "tenant_id"),
            (json!({"tenant_id": "a\nb"}), "tenant_id"),
            (json!({"tenant_id": "x".repeat(129)}), "tenant_id"),
            (json!({"tenant_id": "t", "scope": ["mcp:read"]}), "scope"),
            (json!({"tenant_id": "t", "data_scope": 7}), "data_scope"),
            (
                json!({"tenant_id": "t", "rate_limit_tier": 1}),
                "rate_limit_tier",
            ),
            (json!({}), "tenant_id"),
        ];
        for (c, claim) in cases {
            let e = tenant_context_from_claims(Some("u"), &claims(c.clone())).unwrap_err();
            assert_eq!(e.claim, claim, "{c}");
        }
        assert_eq!(
            tenant_context_from_claims(
                Some("x".repeat(128).as_str()),
                &claims(json!({"tenant_id": "x".repeat(128)}))
            )
            .unwrap()
            .tenant_id
            .len(),
            128
        );
    }

    #[test]
    fn sub_is_required() {
        let c = claims(json!({"tenant_id": "t"}));
        assert_eq!(
            tenant_context_from_claims(None, &c).unwrap_err().claim,
            "sub"
        );
        assert_eq!(
            tenant_context_from_claims(Some(""), &c).unwrap_err().claim,
            "sub"
        );
        assert_eq!(
            tenant_context_from_claims(Some("a\rb"), &c)
                .unwrap_err()
                .claim,
            "sub"
        );
    }

    #[test]
    fn unknown_tier_is_lowest() {
        let c = claims(json!({"tenant_id": "t", "rate_limit_tier": "platinum"}));
        assert_eq!(
            tenant_context_from_claims(Some("u"), &c).unwrap().tier,
            Tier::Free
        );
    }

    fn mapped(mapping: &ClaimMapping, v: Value) -> Result<TenantContext, ClaimError> {
        tenant_context(mapping, &claims(v))
    }

    #[test]
    fn entra_app_only_tokens_are_known_by_idtyp_and_tiers_are_the_operators() {
        let m = ClaimMapping {
            tenant: Source::Claim(ClaimPath::name("tid")),
            user: ClaimPath::name("oid"),
            scopes: Source::Claim(ClaimPath::name("scp")),
            scopes_fallback: vec![ClaimPath::name("roles")],
            app_only: Some((ClaimPath::name("idtyp"), "app".into())),
            tier: Source::Fixed(Tier::Free),
            tier_by_tenant: Some([("contoso".to_string(), Tier::Enterprise)].into()),
            ..ClaimMapping::default()
        };
        let app = mapped(
            &m,
            json!({"tid": "contoso", "oid": "sp", "idtyp": "app", "roles": ["mcp:read"]}),
        )
        .unwrap();
        assert_eq!(app.scopes, vec!["mcp:read"]);
        assert_eq!(
            app.tier,
            Tier::Enterprise,
            "the operator's tier for the tenant"
        );
        // A user token without `scp`: its roles (assigned in the customer's directory) are not
        // scopes, and no role or claim makes a tenant enterprise.
        let user = mapped(
            &m,
            json!({"tid": "fabrikam", "oid": "u", "roles": ["mcp:admin", "enterprise"],
                   "rate_limit_tier": "enterprise"}),
        )
        .unwrap();
        assert!(user.scopes.is_empty(), "{:?}", user.scopes);
        assert_eq!(user.tier, Tier::Free);
        // An app-only token's `scp`, if any, is not read either.
        let odd = mapped(
            &m,
            json!({"tid": "t", "oid": "sp", "idtyp": "app", "scp": "mcp:admin"}),
        )
        .unwrap();
        assert!(odd.scopes.is_empty(), "{:?}", odd.scopes);
    }

    #[test]
    fn a_mapping_reads_other_claims() {
        let m = ClaimMapping {
            tenant: Source::Claim(ClaimPath::name("https://example.com/tenant_id")),
            user: ClaimPath::name("oid"),
            scopes: Source::Claim(ClaimPath::name("scp")),
            scopes_fallback: vec![ClaimPath::name("roles")],
            app_only: None,
            scope_prefix: Some("api://app/".into()),
            allowed_tools: ClaimPath::from_segments(
                vec!["mcp".into(), "tools".into()],
                "/mcp/tools",
            ),
            tier: Source::Claim(ClaimPath::name("roles")),
            tier_map: Some(
                [
                    ("Gold".to_string(), Tier::Enterprise),
                    ("Silver".to_string(), Tier::Pro),
                ]
                .into(),
            ),
            tier_by_tenant: None,
            data_scope: Source::Fixed("team:all".into()),
        };
        let ctx = mapped(
            &m,
            json!({"https://example.com/tenant_id": "acme", "oid": "o1", "sub": "s1",
                   "scp": ["mcp:read", "api://app/mcp:write"], "mcp": {"tools": ["t"]},
                   "roles": ["Silver", "Gold", "Other"], "data_scope": "ignored"}),
        )
        .unwrap();
        assert_eq!(ctx.tenant_id, "acme");
        assert_eq!(ctx.user_id, "o1");
        assert_eq!(
            ctx.scopes,
            vec!["api://app/mcp:read", "api://app/mcp:write"]
        );
        assert_eq!(ctx.allowed_tools, Some(vec!["t".to_string()]));
        assert_eq!(ctx.tier, Tier::Enterprise, "the highest mapped tier");
        assert_eq!(ctx.data_scope, "team:all");
        // A string scp works as well; a tier value the map does not name is the lowest tier.
        let ctx = mapped(
            &m,
            json!({"https://example.com/tenant_id": "a", "oid": "o", "scp": "x y", "roles": "pro"}),
        )
        .unwrap();
        assert_eq!(ctx.scopes, vec!["api://app/x", "api://app/y"]);
        assert_eq!(ctx.tier, Tier::Free);
        // Without `scp` (an app-only token) the fallback `roles` are the scopes; with `scp`
        // present (even empty) the roles are not read as scopes.
        let ctx = mapped(
            &m,
            json!({"https://example.com/tenant_id": "a", "oid": "o", "roles": ["mcp:read", "Silver"]}),
        )
        .unwrap();
        assert_eq!(ctx.scopes, vec!["api://app/mcp:read", "api://app/Silver"]);
        assert_eq!(ctx.tier, Tier::Pro);
        let ctx = mapped(
            &m,
            json!({"https://example.com/tenant_id": "a", "oid": "o", "scp": "", "roles": ["mcp:admin"]}),
        )
        .unwrap();
        assert!(ctx.scopes.is_empty(), "{:?}", ctx.scopes);
        let e = mapped(
            &m,
            json!({"https://example.com/tenant_id": "a", "oid": "o", "roles": [1]}),
        )
        .unwrap_err();
        assert_eq!(e.claim, "roles");
        // Errors name the claim as configured.
        let e = mapped(&m, json!({"https://example.com/tenant_id": "a", "oid": 1})).unwrap_err();
        assert_eq!((e.claim.as_str(), e.problem), ("oid", "is not a string"));
        let e = mapped(
            &m,
            json!({"https://example.com/tenant_id": "a", "oid": "o", "mcp": {"tools": "*"}}),
        )
        .unwrap_err();
        assert_eq!(e.claim, "/mcp/tools");
        let e = mapped(
            &m,
            json!({"https://example.com/tenant_id": "a", "oid": "o", "scp": ["a b"]}),
        )
        .unwrap_err();
        assert_eq!(e.claim, "scp");
    }

    #[test]
    fn fixed_values_and_the_rfc_scope_claim() {
        let m = ClaimMapping {
            tenant: Source::Fixed("only-tenant".into()),
            scopes: Source::Fixed(vec!["mcp:read".into()]),
            tier: Source::Fixed(Tier::Pro),
            ..ClaimMapping::default()
        };
        let ctx = mapped(
            &m,
            json!({"sub": "u", "tenant_id": "other", "scope": "mcp:admin", "rate_limit_tier": "enterprise"}),
        )
        .unwrap();
        assert_eq!(ctx.tenant_id, "only-tenant");
        assert_eq!(ctx.scopes, vec!["mcp:read"]);
        assert_eq!(ctx.tier, Tier::Pro);
        // RFC 9068's `scope` is a string; an array there stays invalid (the default mapping).
        let e = mapped(
            &ClaimMapping::default(),
            json!({"sub": "u", "tenant_id": "t", "scope": ["mcp:read"]}),
        )
        .unwrap_err();
        assert_eq!(e.claim, "scope");
        // Too many scopes in total are refused like a too long string.
        let many: Vec<String> = (0..200).map(|i| format!("scope-number-{i}")).collect();
        let e = mapped(
            &ClaimMapping {
                scopes: Source::Claim(ClaimPath::name("scp")),
                ..ClaimMapping::default()
            },
            json!({"sub": "u", "tenant_id": "t", "scp": many}),
        )
        .unwrap_err();
        assert_eq!((e.claim.as_str(), e.problem), ("scp", "is too long"));
    }
}
