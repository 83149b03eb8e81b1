//! In-process project store, used when no Redis URL is configured (development, tests).
//!
//! Data lives in a map keyed by the tenant's key prefix (the same [`TenantKeys`] the Redis store
//! uses), so tenant isolation works the same way in both stores. Nothing survives a restart.

use std::collections::HashMap;

use async_trait::async_trait;
use tokio::sync::RwLock;

use super::keys::TenantKeys;
use super::{
    Cursor, NewProject, Project, ProjectPage, ProjectStore, StoreError, check_limit,
    new_project_record, plausible_project_id,
};
use crate::tenant::TenantContext;

#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Tenant key prefix → projects in creation order.
    tenants: RwLock<HashMap<String, Vec<Project>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ProjectStore for MemoryStore {
    async fn create(&self, tenant: &TenantContext, new: NewProject) -> Result<Project, StoreError> {
        let project = new_project_record(tenant, new)?;
        let key = TenantKeys::for_tenant(tenant).prefix().to_owned();
        self.tenants
            .write()
            .await
            .entry(key)
            .or_default()
            .push(project.clone());
        Ok(project)
    }

    async fn get(&self, tenant: &TenantContext, id: &str) -> Result<Option<Project>, StoreError> {
        if !plausible_project_id(id) {
            return Ok(None);
        }
        let key = TenantKeys::for_tenant(tenant);
        let tenants = self.tenants.read().await;
        Ok(tenants
            .get(key.prefix())
            .and_then(|projects| projects.iter().find(|p| p.id == id))
            .cloned())
    }

    async fn list(
        &self,
        tenant: &TenantContext,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<ProjectPage, StoreError> {
        check_limit(limit)?;
        let key = TenantKeys::for_tenant(tenant);
        let tenants = self.tenants.read().await;
        let all = tenants
            .get(key.prefix())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let start = cursor.map_or(0, |c| c.offset);
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(all.len());
        let end = start.saturating_add(limit).min(all.len());
        let projects = all[start..end].to_vec();
        let next_cursor = (end < all.len()).then(|| Cursor::new(end as u64));
        Ok(ProjectPage {
            projects,
            next_cursor,
        })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::test_tenant;

    fn new(name: &str) -> NewProject {
        NewProject {
            name: name.into(),
            description: None,
        }
    }

    #[tokio::test]
    async fn tenants_are_isolated() {
        let store = MemoryStore::new();
        let acme = test_tenant("acme");
        let globex = test_tenant("globex");
        // A tenant id crafted to look like a prefix of another's key.
        let crafted = test_tenant("acme:projects");
        let p = store.create(&acme, new("Apollo")).await.unwrap();
        store.create(&globex, new("Gemini")).await.unwrap();

        assert_eq!(store.get(&acme, &p.id).await.unwrap(), Some(p.clone()));
        assert_eq!(store.get(&globex, &p.id).await.unwrap(), None);
        assert_eq!(store.get(&crafted, &p.id).await.unwrap(), None);

        let acme_page = store.list(&acme, None, 100).await.unwrap();
        assert_eq!(acme_page.projects, vec![p]);
        let globex_page = store.list(&globex, None, 100).await.unwrap();
        assert_eq!(globex_page.projects.len(), 1);
        assert_eq!(globex_page.projects[0].name, "Gemini");
        assert!(
            store
                .list(&crafted, None, 100)
                .await
                .unwrap()
                .projects
                .is_empty()
        );
    }

    #[tokio::test]
    async fn paginates_in_creation_order() {
        let store = MemoryStore::new();
        let t = test_tenant("acme");
        let mut created = Vec::new();
        for i in 0..7 {
            created.push(store.create(&t, new(&format!("p{i}"))).await.unwrap());
        }
        let mut seen = Vec::new();
        let mut cursor: Option<Cursor> = None;
        let mut pages = 0;
        loop {
            // Go through the wire form each time, as a client would.
            let decoded = cursor.map(|c| Cursor::decode(&c.encode()).unwrap());
            let page = store.list(&t, decoded.as_ref(), 3).await.unwrap();
            pages += 1;
            seen.extend(page.projects);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, created);
    }

    #[tokio::test]
    async fn exact_page_has_no_next_cursor_and_past_the_end_is_empty() {
        let store = MemoryStore::new();
        let t = test_tenant("acme");
        for i in 0..3 {
            store.create(&t, new(&format!("p{i}"))).await.unwrap();
        }
        let page = store.list(&t, None, 3).await.unwrap();
        assert_eq!(page.projects.len(), 3);
        assert_eq!(page.next_cursor, None);
        let page = store
            .list(&t, Some(&Cursor::new(u64::MAX)), 3)
            .await
            .unwrap();
        assert!(page.projects.is_empty());
        assert_eq!(page.next_cursor, None);
    }

    #[tokio::test]
    async fn limit_is_checked() {
        let store = MemoryStore::new();
        let t = test_tenant("acme");
        assert!(matches!(
            store.list(&t, None, 0).await,
            Err(StoreError::InvalidInput(_))
        ));
        assert!(matches!(
            store.list(&t, None, 101).await,
            Err(StoreError::InvalidInput(_))
        ));
    }
}
