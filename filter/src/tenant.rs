//! The TenantContext: who is calling, for which tenant, with what rights, read from verified claims.
//!
//! Claims are read strictly: a claim of the wrong type (`allowed_tools: null` or `"*"`, a numeric
//! `tenant_id`, a `tenant_id` with control characters or over 128 bytes) makes the token invalid. It
//! is never read as "absent", because "absent" can mean "everything" (see `allowed_tools`).

use mcp_edge_contract::Identity;
use mcp_edge_contract::limits::{
    MAX_ALLOWED_TOOLS, MAX_DATA_SCOPE_BYTES, MAX_SCOPE_BYTES, MAX_SUB_BYTES, MAX_TENANT_ID_BYTES,
};
use serde_json::{Map, Value};

pub use mcp_edge_contract::Tier;

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

/// Why a token's claims could not be turned into a TenantContext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimError {
    pub claim: &'static str,
    pub problem: &'static str,
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "claim `{}` {}", self.claim, self.problem)
    }
}

fn bad(claim: &'static str, problem: &'static str) -> ClaimError {
    ClaimError { claim, problem }
}

/// A string claim: `Ok(None)` when absent, an error when of another type, too long, or when it
/// carries control characters.
fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    claim: &'static str,
    max: usize,
) -> Result<Option<&'a str>, ClaimError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::String(s)) => {
            if s.len() > max {
                Err(bad(claim, "is too long"))
            } else if s.chars().any(char::is_control) {
                Err(bad(claim, "contains control characters"))
            } else {
                Ok(Some(s))
            }
        }
        Some(_) => Err(bad(claim, "is not a string")),
    }
}

/// Builds the TenantContext from the claims of a verified token. `sub` comes from the registered
/// claims (jwt-simple parses it), the rest from the custom claims.
pub fn tenant_context_from_claims(
    subject: Option<&str>,
    custom: &Map<String, Value>,
) -> Result<TenantContext, ClaimError> {
    let tenant_id = string_claim(custom, "tenant_id", MAX_TENANT_ID_BYTES)?
        .filter(|s| !s.is_empty())
        .ok_or(bad("tenant_id", "is required"))?;
    let user_id = match subject {
        Some(s)
            if !s.is_empty() && s.len() <= MAX_SUB_BYTES && !s.chars().any(char::is_control) =>
        {
            s
        }
        Some(_) => {
            return Err(bad(
                "sub",
                "is empty, too long or contains control characters",
            ));
        }
        None => return Err(bad("sub", "is required")),
    };
    let scopes = string_claim(custom, "scope", MAX_SCOPE_BYTES)?
        .map(|s| {
            s.split(' ')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let allowed_tools = match custom.get("allowed_tools") {
        None => None,
        Some(Value::Array(items)) => {
            if items.len() > MAX_ALLOWED_TOOLS {
                return Err(bad("allowed_tools", "lists too many tools"));
            }
            let mut tools = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) if !s.is_empty() && !s.chars().any(char::is_control) => {
                        tools.push(s.clone())
                    }
                    _ => return Err(bad("allowed_tools", "must be an array of tool names")),
                }
            }
            Some(tools)
        }
        Some(_) => return Err(bad("allowed_tools", "must be an array of tool names")),
    };
    let data_scope = string_claim(custom, "data_scope", MAX_DATA_SCOPE_BYTES)?.unwrap_or_default();
    let tier = Tier::from_claim(string_claim(custom, "rate_limit_tier", 64)?);
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
}
