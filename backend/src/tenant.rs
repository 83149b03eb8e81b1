//! The tenant identity of one request, as vouched for by the gateway.
//!
//! [`crate::gateway_auth`] builds a [`TenantContext`] from the signed `x-mcp-*` headers and puts it
//! into the request's extensions; tools read it from there and nowhere else. Tool input never carries
//! a tenant id.

/// The part of its tenant's data a token may see, from its `data_scope` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataScope<'a> {
    /// Empty data scope: every project of the tenant.
    All,
    /// `team:<name>`: only the projects of that team; projects it creates belong to that team.
    Team(&'a str),
    /// Any other value (`team:`, `org:acme`, …): fails closed, nothing is visible or creatable.
    Unsupported,
}

/// Who is calling, as signed by the mcp-edge filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantContext {
    pub tenant_id: String,
    /// The token's `sub`.
    pub user_id: String,
    pub scopes: Vec<String>,
    /// For example `team:engineering`; may be empty.
    pub data_scope: String,
    /// `free`, `pro` or `enterprise` (not interpreted here yet).
    pub tier: String,
    pub request_id: String,
}

impl TenantContext {
    /// The team named by a `team:<name>` data scope, if that is what the data scope is.
    pub fn team(&self) -> Option<&str> {
        self.data_scope
            .strip_prefix("team:")
            .filter(|team| !team.is_empty())
    }

    /// What part of the tenant's data this token may see (see [`DataScope`]).
    pub fn data_scope(&self) -> DataScope<'_> {
        if self.data_scope.is_empty() {
            DataScope::All
        } else if let Some(team) = self.team() {
            DataScope::Team(team)
        } else {
            DataScope::Unsupported
        }
    }

    /// Whether this token may see a project owned by `team` (`None`: a project of no team).
    pub fn can_see_team(&self, team: Option<&str>) -> bool {
        match self.data_scope() {
            DataScope::All => true,
            DataScope::Team(mine) => team == Some(mine),
            DataScope::Unsupported => false,
        }
    }

    /// Whether the gateway granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[cfg(test)]
pub(crate) fn test_tenant(tenant_id: &str) -> TenantContext {
    TenantContext {
        tenant_id: tenant_id.to_owned(),
        user_id: format!("user-of-{tenant_id}"),
        scopes: vec!["mcp:read".into(), "mcp:write".into()],
        data_scope: "team:engineering".into(),
        tier: "pro".into(),
        request_id: "req-test".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_comes_only_from_a_team_data_scope() {
        let mut t = test_tenant("acme");
        assert_eq!(t.team(), Some("engineering"));
        t.data_scope = "org:acme".into();
        assert_eq!(t.team(), None);
        t.data_scope = "team:".into();
        assert_eq!(t.team(), None);
        t.data_scope = String::new();
        assert_eq!(t.team(), None);
    }

    #[test]
    fn data_scope_narrows_visibility_and_fails_closed() {
        let mut t = test_tenant("acme");
        assert_eq!(t.data_scope(), DataScope::Team("engineering"));
        assert!(t.can_see_team(Some("engineering")));
        assert!(!t.can_see_team(Some("sales")));
        assert!(!t.can_see_team(None));
        t.data_scope = String::new();
        assert_eq!(t.data_scope(), DataScope::All);
        assert!(t.can_see_team(Some("sales")) && t.can_see_team(None));
        for odd in ["team:", "org:acme", "TEAM:x", " "] {
            t.data_scope = odd.into();
            assert_eq!(t.data_scope(), DataScope::Unsupported, "{odd:?}");
            assert!(
                !t.can_see_team(None) && !t.can_see_team(Some("x")),
                "{odd:?}"
            );
        }
    }
}
