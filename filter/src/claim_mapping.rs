//! Where each part of the TenantContext comes from in a token: a claim (by name or by JSON pointer
//! into nested objects) or a fixed value. Built once from the configuration (`config::claims`),
//! read by `tenant` on every verification, so no request parses the mapping again.
//!
//! The defaults are the names the edge always read (`tenant_id`, `sub`, `scope`, `allowed_tools`,
//! `rate_limit_tier`, `data_scope`), so a configuration without `claims` behaves as before.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::tenant::Tier;

/// A claim's location: a top-level claim name taken verbatim (Auth0's namespaced
/// `https://example.com/tenant_id` included), or the segments of an RFC 6901 JSON pointer such as
/// `/realm_access/roles` (each segment an object key, `~1` and `~0` already unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    segments: Vec<String>,
    /// As written in the configuration; names the claim in errors.
    written: String,
}

impl ClaimPath {
    /// A top-level claim, named exactly.
    pub fn name(name: &str) -> Self {
        Self {
            segments: vec![name.to_string()],
            written: name.to_string(),
        }
    }

    /// A path from its unescaped segments and the text it was written as.
    pub fn from_segments(segments: Vec<String>, written: &str) -> Self {
        Self {
            segments,
            written: written.to_string(),
        }
    }

    /// How the configuration wrote it.
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The first segment: the top-level claim the path starts at.
    pub fn top_level(&self) -> &str {
        self.segments.first().map_or("", String::as_str)
    }

    /// The value at this path, if every segment names a member of an object.
    pub fn find<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.segments.split_first()?;
        let mut value = claims.get(first)?;
        for segment in rest {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    }
}

/// A string the token supplies (a claim) or the configuration does (fixed for every token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source<T> {
    Claim(ClaimPath),
    Fixed(T),
}

/// The prepared claim mapping of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    pub tenant: Source<String>,
    /// The user is always the token's: a claim, never fixed.
    pub user: ClaimPath,
    pub scopes: Source<Vec<String>>,
    /// Read, in order, when the `scopes` claim is absent: the first present is the token's scopes
    /// (Entra: delegated tokens carry `scp`, app-only tokens only `roles`). With `app_only`, read
    /// only for tokens it marks (and `scopes` only for the others).
    pub scopes_fallback: Vec<ClaimPath>,
    /// The claim and value that mark an app-only token (Entra: `idtyp` = `app`).
    pub app_only: Option<(ClaimPath, String)>,
    /// Put before every scope the token carries that does not start with it already (Entra's
    /// `scp` holds `mcp:read` for a scope requested as `api://<app-id>/mcp:read`).
    pub scope_prefix: Option<String>,
    pub allowed_tools: ClaimPath,
    pub tier: Source<Tier>,
    /// The IdP's values (e.g. Entra app roles) → our tiers. Without it, values are our tier names.
    pub tier_map: Option<BTreeMap<String, Tier>>,
    /// The operator's tier per tenant id; it decides when set (a tenant not listed gets the fixed
    /// `tier`, or free).
    pub tier_by_tenant: Option<BTreeMap<String, Tier>>,
    pub data_scope: Source<String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            tenant: Source::Claim(ClaimPath::name("tenant_id")),
            user: ClaimPath::name("sub"),
            scopes: Source::Claim(ClaimPath::name("scope")),
            scopes_fallback: Vec::new(),
            app_only: None,
            scope_prefix: None,
            allowed_tools: ClaimPath::name("allowed_tools"),
            tier: Source::Claim(ClaimPath::name("rate_limit_tier")),
            tier_map: None,
            tier_by_tenant: None,
            data_scope: Source::Claim(ClaimPath::name("data_scope")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_walk_objects_only() {
        let claims = json!({
            "https://example.com/tenant_id": "acme",
            "realm_access": {"roles": ["pro"]},
            "list": [{"a": 1}]
        });
        let claims = claims.as_object().unwrap();
        assert_eq!(
            ClaimPath::name("https://example.com/tenant_id").find(claims),
            Some(&json!("acme"))
        );
        let roles = ClaimPath::from_segments(
            vec!["realm_access".into(), "roles".into()],
            "/realm_access/roles",
        );
        assert_eq!(roles.find(claims), Some(&json!(["pro"])));
        assert_eq!(roles.top_level(), "realm_access");
        let into_array = ClaimPath::from_segments(vec!["list".into(), "0".into()], "/list/0");
        assert_eq!(into_array.find(claims), None, "arrays are not indexed");
        assert_eq!(ClaimPath::name("absent").find(claims), None);
    }
}
