//! The rule every Redis key of a tenant follows, shared by the project store ([`crate::store::keys`])
//! and metering ([`crate::metering::keys`]), so neither reaches into the other to build its keys.
//!
//! A tenant's keys start with `mcp-edge:tenant:{len}:{tenant_id}` (metering's with that prefix in
//! braces, a Redis Cluster hash tag). The byte length in front of the
//! tenant id fixes where the id ends, so no tenant id (whatever `:` or suffix it contains) can
//! produce another tenant's key.

/// Everything of the tenant `tenant_id` lives under this prefix.
pub fn tenant_prefix(tenant_id: &str) -> String {
    format!("mcp-edge:tenant:{}:{}", tenant_id.len(), tenant_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::keys::quota_day;
    use crate::store::keys::TenantKeys;

    #[test]
    fn shape() {
        assert_eq!(tenant_prefix("acme"), "mcp-edge:tenant:4:acme");
        assert_eq!(tenant_prefix(""), "mcp-edge:tenant:0:");
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
            "a:quota",
            "a:projects:prj_0123456789abcdef0123456789abcdef",
        ];
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        let mut all = std::collections::HashSet::new();
        for id in ids {
            let k = TenantKeys::for_tenant_id(id);
            for key in [
                quota_day(id, day),
                k.project_order(),
                k.project_records(),
                k.task_records(),
                k.project_tasks("prj_0123456789abcdef0123456789abcdef"),
            ] {
                assert!(all.insert(key.clone()), "collision on {key}");
            }
        }
    }
}
