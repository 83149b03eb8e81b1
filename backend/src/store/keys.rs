//! The project store's keys, built from the tenant id alone.
//!
//! Keys look like `mcp-edge:tenant:{len}:{tenant_id}:projects`: the tenant's prefix
//! ([`crate::keyspace`]) and what is stored there.

use crate::keyspace::tenant_prefix;
use crate::tenant::TenantContext;

/// The key namespace of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKeys {
    prefix: String,
}

impl TenantKeys {
    pub fn for_tenant(tenant: &TenantContext) -> Self {
        Self::for_tenant_id(&tenant.tenant_id)
    }

    pub fn for_tenant_id(tenant_id: &str) -> Self {
        Self {
            prefix: tenant_prefix(tenant_id),
        }
    }

    /// Everything of this tenant lives under this prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Redis sorted set of project ids scored by their creation sequence number (the cursor).
    pub fn project_order(&self) -> String {
        format!("{}:projects:order", self.prefix)
    }

    /// Redis counter: the last creation sequence number handed out.
    pub fn project_seq(&self) -> String {
        format!("{}:projects:seq", self.prefix)
    }

    /// The Redis list of project ids in creation order that earlier versions kept (deleted ids
    /// stayed in it); moved into [`Self::project_order`] on first use.
    pub fn legacy_project_order(&self) -> String {
        format!("{}:projects", self.prefix)
    }

    /// Redis set of deleted projects whose tasks are still being removed (see `reap`).
    pub fn projects_deleting(&self) -> String {
        format!("{}:projects:deleting", self.prefix)
    }

    /// Redis hash: project id → project JSON.
    pub fn project_records(&self) -> String {
        format!("{}:projects:by-id", self.prefix)
    }

    /// Redis hash: task id → task JSON (all tasks of the tenant).
    pub fn task_records(&self) -> String {
        format!("{}:tasks:by-id", self.prefix)
    }

    /// Redis list of a project's task ids in creation order. `project_id` must have passed
    /// `plausible_project_id` (`prj_` + 32 hex digits), so it cannot reach into other keys.
    pub fn project_tasks(&self, project_id: &str) -> String {
        debug_assert!(super::validation::plausible_project_id(project_id));
        format!("{}:projects:{project_id}:tasks", self.prefix)
    }

    /// Redis list of a deleted project's task ids whose records are still to be removed.
    pub fn deleting_tasks(&self, project_id: &str) -> String {
        debug_assert!(super::validation::plausible_project_id(project_id));
        format!("{}:projects:{project_id}:tasks:deleting", self.prefix)
    }

    /// A Redis hash a rebuild of a project's counters is written to before it replaces them;
    /// `token` keeps concurrent rebuilds apart.
    pub fn counters_rebuild(&self, project_id: &str, token: &str) -> String {
        format!("{}:rebuild:{token}", self.project_counters(project_id))
    }

    /// Redis hash of a project's analytics counters (see `store::counters`).
    pub fn project_counters(&self, project_id: &str) -> String {
        debug_assert!(super::validation::plausible_project_id(project_id));
        format!("{}:projects:{project_id}:counters", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let k = TenantKeys::for_tenant_id("acme");
        assert_eq!(k.prefix(), "mcp-edge:tenant:4:acme");
        assert_eq!(k.project_order(), "mcp-edge:tenant:4:acme:projects:order");
        assert_eq!(k.legacy_project_order(), "mcp-edge:tenant:4:acme:projects");
        assert_eq!(k.project_records(), "mcp-edge:tenant:4:acme:projects:by-id");
        assert_eq!(k.task_records(), "mcp-edge:tenant:4:acme:tasks:by-id");
        assert_eq!(
            k.project_tasks("prj_0123456789abcdef0123456789abcdef"),
            "mcp-edge:tenant:4:acme:projects:prj_0123456789abcdef0123456789abcdef:tasks"
        );
    }
}
