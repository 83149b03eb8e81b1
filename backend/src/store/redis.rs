//! Redis project store: the tenant data store of a real deployment.
//!
//! Per tenant, a list holds project ids in creation order and a hash maps id → project JSON (keys
//! from [`TenantKeys`]). A create writes both in one MULTI/EXEC, so a listed id always has a record.
//! The connection is a [`ConnectionManager`], which reconnects on its own.

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use super::keys::TenantKeys;
use super::{
    Cursor, NewProject, Project, ProjectPage, ProjectStore, StoreError, check_limit,
    new_project_record, plausible_project_id,
};
use crate::tenant::TenantContext;

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects (and checks the connection with a PING).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let mut conn = ConnectionManager::new(client).await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(Self { conn })
    }
}

fn backend(err: redis::RedisError) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn decode(json: &str) -> Result<Project, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Backend(format!("corrupt project record: {e}")))
}

#[async_trait]
impl ProjectStore for RedisStore {
    async fn create(&self, tenant: &TenantContext, new: NewProject) -> Result<Project, StoreError> {
        let project = new_project_record(tenant, new)?;
        let json = serde_json::to_string(&project)
            .map_err(|e| StoreError::Backend(format!("encode project: {e}")))?;
        let keys = TenantKeys::for_tenant(tenant);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(keys.project_records())
            .arg(&project.id)
            .arg(json)
            .ignore()
            .cmd("RPUSH")
            .arg(keys.project_order())
            .arg(&project.id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(backend)?;
        Ok(project)
    }

    async fn get(&self, tenant: &TenantContext, id: &str) -> Result<Option<Project>, StoreError> {
        if !plausible_project_id(id) {
            return Ok(None);
        }
        let keys = TenantKeys::for_tenant(tenant);
        let mut conn = self.conn.clone();
        let json: Option<String> = redis::cmd("HGET")
            .arg(keys.project_records())
            .arg(id)
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        json.as_deref().map(decode).transpose()
    }

    async fn list(
        &self,
        tenant: &TenantContext,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<ProjectPage, StoreError> {
        check_limit(limit)?;
        let keys = TenantKeys::for_tenant(tenant);
        let mut conn = self.conn.clone();
        let start = cursor.map_or(0, |c| c.offset);
        // LRANGE takes signed 64-bit indexes; a cursor past that is past the end.
        let Ok(start_i) = i64::try_from(start) else {
            return Ok(ProjectPage {
                projects: Vec::new(),
                next_cursor: None,
            });
        };
        // One extra id tells whether another page follows.
        let stop = start_i.saturating_add(limit as i64);
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(keys.project_order())
            .arg(start_i)
            .arg(stop)
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        let has_more = ids.len() > limit;
        let ids = &ids[..ids.len().min(limit)];
        let mut projects = Vec::with_capacity(ids.len());
        if !ids.is_empty() {
            let records: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(keys.project_records())
                .arg(ids)
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            for json in records.into_iter().flatten() {
                projects.push(decode(&json)?);
            }
        }
        let next_cursor = has_more.then(|| Cursor::new(start + ids.len() as u64));
        Ok(ProjectPage {
            projects,
            next_cursor,
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

/// Runs only when `REDIS_URL` is set; each test uses its own random tenant ids.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::test_tenant;

    async fn store() -> Option<RedisStore> {
        let url = std::env::var("REDIS_URL").ok()?;
        Some(
            RedisStore::connect(&url)
                .await
                .expect("connect to REDIS_URL"),
        )
    }

    fn unique(name: &str) -> String {
        format!("{name}-{}", uuid::Uuid::new_v4().simple())
    }

    #[tokio::test]
    async fn isolates_tenants_and_paginates() {
        let Some(store) = store().await else {
            eprintln!("REDIS_URL not set; skipping the Redis store test");
            return;
        };
        let a = test_tenant(&unique("acme"));
        let b = test_tenant(&format!("{}:projects", a.tenant_id));
        let mut created = Vec::new();
        for i in 0..5 {
            created.push(
                store
                    .create(
                        &a,
                        NewProject {
                            name: format!("p{i}"),
                            description: Some("d".into()),
                        },
                    )
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(
            store.get(&a, &created[0].id).await.unwrap().as_ref(),
            Some(&created[0])
        );
        assert_eq!(store.get(&b, &created[0].id).await.unwrap(), None);
        assert!(store.list(&b, None, 10).await.unwrap().projects.is_empty());

        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list(&a, cursor.as_ref(), 2).await.unwrap();
            seen.extend(page.projects);
            match page.next_cursor {
                Some(c) => cursor = Some(Cursor::decode(&c.encode()).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, created);
    }
}
