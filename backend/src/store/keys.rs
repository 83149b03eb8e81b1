//! Storage keys, built from the tenant id alone.
//!
//! Keys look like `mcp-edge:tenant:{len}:{tenant_id}:projects`. The byte length in front of the
//! tenant id fixes where the id ends, so no tenant id (whatever `:` or suffix it contains) can
//! produce another tenant's key.

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
            prefix: format!("mcp-edge:tenant:{}:{}", tenant_id.len(), tenant_id),
        }
    }

    /// Everything of this tenant lives under this prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Redis list of project ids in creation order.
    pub fn project_order(&self) -> String {
        format!("{}:projects", self.prefix)
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
        debug_assert!(super::records::plausible_project_id(project_id));
        format!("{}:projects:{project_id}:tasks", self.prefix)
    }

    /// Redis counter of the tenant's billable calls on one UTC day (the daily quota).
    pub fn quota_day(&self, day: chrono::NaiveDate) -> String {
        format!("{}:quota:{}", self.prefix, day.format("%Y-%m-%d"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let k = TenantKeys::for_tenant_id("acme");
        assert_eq!(k.project_order(), "mcp-edge:tenant:4:acme:projects");
        assert_eq!(k.project_records(), "mcp-edge:tenant:4:acme:projects:by-id");
        assert_eq!(k.task_records(), "mcp-edge:tenant:4:acme:tasks:by-id");
        assert_eq!(
            k.project_tasks("prj_0123456789abcdef0123456789abcdef"),
            "mcp-edge:tenant:4:acme:projects:prj_0123456789abcdef0123456789abcdef:tasks"
        );
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        assert_eq!(k.quota_day(day), "mcp-edge:tenant:4:acme:quota:2026-11-27");
    }

    #[test]
    fn crafted_tenant_ids_do_not_collide() {
        // Without the length, "a:projects" and "a" could share keys.
        let ids = [
            "a",
            "a:projects",
            "a:projects:by-id",
            "4:acme",
            "acme",
            "",
            "a:1:b",
            "a:1",
            "a:tasks",
            "a:projects:prj_0123456789abcdef0123456789abcdef",
        ];
        let mut all = std::collections::HashSet::new();
        for id in ids {
            let k = TenantKeys::for_tenant_id(id);
            let tasks = k.project_tasks("prj_0123456789abcdef0123456789abcdef");
            let quota = k.quota_day(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).expect("date"));
            for key in [
                quota,
                k.project_order(),
                k.project_records(),
                k.task_records(),
                tasks,
            ] {
                assert!(all.insert(key.clone()), "collision on {key}");
            }
        }
    }
}
