//! The tenant identity of one request, as vouched for by the gateway.
//!
//! [`crate::gateway_auth`] builds a [`TenantContext`] from the verified identity assertion and puts
//! it into the request's extensions; tools read it from there and nowhere else. Tool input never carries
//! a tenant id.

use mcp_edge_contract::{Identity, Vouched};

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

/// Who is calling, as signed by the mcp-edge filter: the contract's [`Identity`] and the gateway's
/// request id. It dereferences to the identity (`tenant.tenant_id`, `tenant.tier`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantContext {
    pub identity: Identity,
    pub request_id: String,
}

impl std::ops::Deref for TenantContext {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.identity
    }
}

impl From<Vouched> for TenantContext {
    fn from(v: Vouched) -> Self {
        Self {
            identity: v.identity,
            request_id: v.request_id,
        }
    }
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
}

/// A tenant for tests (this crate's and, with `test-support`, its integration tests).
#[cfg(any(test, feature = "test-support"))]
pub fn test_tenant(tenant_id: &str) -> TenantContext {
    TenantContext {
        identity: Identity::example(tenant_id),
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
        t.identity.data_scope = "org:acme".into();
        assert_eq!(t.team(), None);
        t.identity.data_scope = "team:".into();
        assert_eq!(t.team(), None);
        t.identity.data_scope = String::new();
        assert_eq!(t.team(), None);
    }

    #[test]
    fn data_scope_narrows_visibility_and_fails_closed() {
        let mut t = test_tenant("acme");
        assert_eq!(t.data_scope(), DataScope::Team("engineering"));
        assert!(t.can_see_team(Some("engineering")));
        assert!(!t.can_see_team(Some("sales")));
        assert!(!t.can_see_team(None));
        t.identity.data_scope = String::new();
        assert_eq!(t.data_scope(), DataScope::All);
        assert!(t.can_see_team(Some("sales")) && t.can_see_team(None));
        for odd in ["team:", "org:acme", "TEAM:x", " "] {
            t.identity.data_scope = odd.into();
            assert_eq!(t.data_scope(), DataScope::Unsupported, "{odd:?}");
            assert!(
                !t.can_see_team(None) && !t.can_see_team(Some("x")),
                "{odd:?}"
            );
        }
    }
}
