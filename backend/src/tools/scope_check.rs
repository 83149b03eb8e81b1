//! The backend's own check of a tool's scope, from the tool's record in the
//! [`ToolRegistry`](crate::sources::ToolRegistry) (a demo tool's [`ToolFacts::scope`](super::ToolFacts),
//! an OpenAPI tool's configured or documented scope).
//!
//! The edge refuses a call whose token lacks the tool's scope, but it reads the tool → scope map
//! from its configuration (`tool_scopes` in envoy.yaml), which can be wrong or stale. The scopes it
//! vouched for are signed, so the backend checks them against its own record as well: a call of
//! a tool whose scope the caller does not hold is refused before it is claimed, metered or run.
//!
//! A scope `mcp:read` is held as itself or as the last path segment of a URI-form scope
//! (`api://<app>/mcp:read`): the form an identity provider such as Entra ID issues and the edge
//! authorizes with its `claims.scope_prefix`, and vouches for as issued.

use mcp_edge_contract::codes::INSUFFICIENT_SCOPE;
use rmcp::ErrorData;
use rmcp::model::ErrorCode;

use crate::tenant::TenantContext;

/// `Ok` when `tenant` holds `scope`, the scope of the tool called `name`; else the JSON-RPC error
/// (-32042, naming the scope) the call is answered with.
pub fn require_scope(tenant: &TenantContext, name: &str, scope: &str) -> Result<(), ErrorData> {
    if holds(tenant, scope) {
        Ok(())
    } else {
        Err(refusal(tenant, name, scope))
    }
}

/// Whether one of the vouched scopes is `scope`, or a URI-form scope whose last segment it is.
fn holds(tenant: &TenantContext, scope: &str) -> bool {
    tenant.identity.scopes.iter().any(|held| {
        held == scope
            || held
                .strip_suffix(scope)
                .is_some_and(|uri| uri.ends_with('/') && uri.contains("://"))
    })
}

fn refusal(tenant: &TenantContext, name: &str, scope: &str) -> ErrorData {
    // The edge should have refused this: its tool_scopes disagree with the tool's record.
    tracing::warn!(
        tool = name,
        required_scope = scope,
        tenant = %tenant.tenant_id,
        "refused a call the edge let through without the tool's scope (check tool_scopes)"
    );
    ErrorData::new(
        ErrorCode(INSUFFICIENT_SCOPE),
        format!(
            "{} needs the scope {}, which your access token does not grant; ask for a token with \
that scope",
            name, scope
        ),
        Some(serde_json::json!({ "tool": name, "requiredScope": scope })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::test_tenant;
    use crate::tools::catalogue;

    #[test]
    fn each_tool_needs_its_own_catalogue_scope() {
        for facts in catalogue::all() {
            let mut tenant = test_tenant("acme");
            tenant.identity.scopes = vec![facts.scope.to_owned()];
            assert!(
                require_scope(&tenant, facts.name, facts.scope).is_ok(),
                "{}",
                facts.name
            );
            tenant.identity.scopes = catalogue::scopes_supported()
                .into_iter()
                .filter(|s| *s != facts.scope)
                .map(str::to_owned)
                .collect();
            let error = require_scope(&tenant, facts.name, facts.scope).expect_err(facts.name);
            assert_eq!(error.code.0, INSUFFICIENT_SCOPE, "{}", facts.name);
            assert!(error.message.contains(facts.scope), "{}", error.message);
        }
    }

    #[test]
    fn a_uri_form_scope_holds_its_last_segment_only() {
        let mut tenant = test_tenant("acme");
        let with = |tenant: &mut TenantContext, scopes: &[&str]| {
            tenant.identity.scopes = scopes.iter().map(|s| s.to_string()).collect();
        };
        with(&mut tenant, &["api://6e74172b/mcp:read"]);
        assert!(require_scope(&tenant, "list_projects", "mcp:read").is_ok());
        assert!(require_scope(&tenant, "delete_project", "mcp:admin").is_err());
        for not_it in [
            "xmcp:read",
            "api://app/xmcp:read",
            "other/mcp:read",
            "mcp:read/",
        ] {
            with(&mut tenant, &[not_it]);
            assert!(
                require_scope(&tenant, "list_projects", "mcp:read").is_err(),
                "{not_it}"
            );
        }
    }
}
