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

    fn for_tenant_id(tenant_id: &str) -> Self {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let k = TenantKeys::for_tenant_id("acme");
        assert_eq!(k.project_order(), "mcp-edge:tenant:4:acme:projects");
        assert_eq!(k.project_records(), "mcp-edge:tenant:4:acme:projects:by-id");
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
        ];
        let mut all = std::collections::HashSet::new();
        for id in ids {
            let k = TenantKeys::for_tenant_id(id);
            for key in [k.project_order(), k.project_records()] {
                assert!(all.insert(key.clone()), "collision on {key}");
            }
        }
    }
}
