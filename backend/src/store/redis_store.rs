//! The project store in Redis: the tenant data store of a real deployment.
//!
//! Per tenant (keys from [`TenantKeys`]): a list of project ids in creation order, a hash of
//! project id → project JSON, a hash of task id → task JSON, and per project a list of its task ids.
//! Reads go through [`reads`] (the chunked walk every listing uses).
//! A write that touches several keys is one MULTI/EXEC or one Lua script (see [`scripts`]); a
//! read-modify-write is a compare-and-set script retried a few times, so concurrent changes are
//! never lost and nothing is written into a project deleted meanwhile. The connection is a
//! [`ConnectionManager`], which reconnects on its own.

mod reads;
mod scripts;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use super::keys::TenantKeys;
use super::validation::{check_limit, new_project_record, new_task_record, plausible_task_id};
use super::{
    Cursor, DeletedProject, NewProject, NewTask, Project, ProjectFilter, ProjectPage, ProjectStore,
    StoreError, Task, TaskFilter, TaskPage, TaskPatch,
};
use crate::tenant::TenantContext;

/// How often a compare-and-set write is retried when the record changed under it.
const CAS_ATTEMPTS: usize = 8;

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

fn backend(err: redis::RedisError) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn contention() -> StoreError {
    StoreError::Backend("the record kept changing during the update (contention)".into())
}

fn decode<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Backend(format!("corrupt record: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encode record: {e}")))
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

#[async_trait]
impl ProjectStore for RedisStore {
    async fn create(&self, tenant: &TenantContext, new: NewProject) -> Result<Project, StoreError> {
        let project = new_project_record(tenant, new)?;
        let json = encode(&project)?;
        let keys = TenantKeys::for_tenant(tenant);
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
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(project)
    }

    async fn get(&self, tenant: &TenantContext, id: &str) -> Result<Option<Project>, StoreError> {
        let keys = TenantKeys::for_tenant(tenant);
        match self.visible_project(tenant, &keys, id).await {
            Ok((_, project)) => Ok(Some(project)),
            Err(StoreError::ProjectNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(
        &self,
        tenant: &TenantContext,
        filter: ProjectFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<ProjectPage, StoreError> {
        check_limit(limit)?;
        let keys = TenantKeys::for_tenant(tenant);
        let (projects, next_cursor) = self
            .scan(
                &keys.project_order(),
                &keys.project_records(),
                cursor,
                limit,
                |json| {
                    let p: Project = decode(json)?;
                    Ok(
                        (p.visible_to(tenant) && (filter.include_archived || !p.archived))
                            .then_some(p),
                    )
                },
            )
            .await?;
        Ok(ProjectPage {
            projects,
            next_cursor,
        })
    }

    async fn archive(&self, tenant: &TenantContext, id: &str) -> Result<Project, StoreError> {
        let keys = TenantKeys::for_tenant(tenant);
        for _ in 0..CAS_ATTEMPTS {
            let (json, mut project) = self.visible_project(tenant, &keys, id).await?;
            if project.archived {
                return Ok(project);
            }
            project.archived = true;
            let swapped: i64 = scripts::compare_and_set()
                .key(keys.project_records())
                .arg(id)
                .arg(&json)
                .arg(encode(&project)?)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(backend)?;
            if swapped == 1 {
                return Ok(project);
            }
        }
        Err(contention())
    }

    async fn delete(
        &self,
        tenant: &TenantContext,
        id: &str,
        confirm_name: &str,
    ) -> Result<DeletedProject, StoreError> {
        let keys = TenantKeys::for_tenant(tenant);
        for _ in 0..CAS_ATTEMPTS {
            let (json, project) = self.visible_project(tenant, &keys, id).await?;
            if project.name != confirm_name {
                return Err(StoreError::NameMismatch(id.to_owned()));
            }
            let deleted: i64 = scripts::delete_project()
                .key(keys.project_records())
                .key(keys.task_records())
                .key(keys.project_tasks(id))
                .arg(id)
                .arg(&json)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(backend)?;
            if let Ok(tasks_deleted) = u64::try_from(deleted) {
                return Ok(DeletedProject {
                    project,
                    tasks_deleted,
                });
            }
        }
        Err(contention())
    }

    async fn create_task(&self, tenant: &TenantContext, new: NewTask) -> Result<Task, StoreError> {
        let keys = TenantKeys::for_tenant(tenant);
        for _ in 0..CAS_ATTEMPTS {
            let (json, project) = self.visible_project(tenant, &keys, &new.project_id).await?;
            if project.archived {
                return Err(StoreError::ProjectArchived(project.id));
            }
            let task = new_task_record(tenant, &project, new.clone())?;
            let added: i64 = scripts::add_task()
                .key(keys.project_records())
                .key(keys.task_records())
                .key(keys.project_tasks(&project.id))
                .arg(&project.id)
                .arg(&json)
                .arg(&task.id)
                .arg(encode(&task)?)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(backend)?;
            if added == 1 {
                return Ok(task);
            }
        }
        Err(contention())
    }

    async fn list_tasks(
        &self,
        tenant: &TenantContext,
        project_id: &str,
        filter: &TaskFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<TaskPage, StoreError> {
        check_limit(limit)?;
        let keys = TenantKeys::for_tenant(tenant);
        self.visible_project(tenant, &keys, project_id).await?;
        let (tasks, next_cursor) = self
            .scan(
                &keys.project_tasks(project_id),
                &keys.task_records(),
                cursor,
                limit,
                |json| {
                    let t: Task = decode(json)?;
                    Ok(filter.matches(&t).then_some(t))
                },
            )
            .await?;
        Ok(TaskPage { tasks, next_cursor })
    }

    async fn update_task(
        &self,
        tenant: &TenantContext,
        task_id: &str,
        patch: &TaskPatch,
    ) -> Result<Task, StoreError> {
        let not_found = || StoreError::TaskNotFound(task_id.to_owned());
        if !plausible_task_id(task_id) {
            return Err(not_found());
        }
        let keys = TenantKeys::for_tenant(tenant);
        for _ in 0..CAS_ATTEMPTS {
            let json = self
                .hget(&keys.task_records(), task_id)
                .await?
                .ok_or_else(not_found)?;
            let mut task: Task = decode(&json)?;
            match self.visible_project(tenant, &keys, &task.project_id).await {
                Ok(_) => {}
                Err(StoreError::ProjectNotFound(_)) => return Err(not_found()),
                Err(e) => return Err(e),
            }
            if !patch.apply_to(&mut task) {
                return Ok(task);
            }
            let swapped: i64 = scripts::compare_and_set()
                .key(keys.task_records())
                .arg(task_id)
                .arg(&json)
                .arg(encode(&task)?)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(backend)?;
            if swapped == 1 {
                return Ok(task);
            }
        }
        Err(contention())
    }

    async fn tasks_in_scope(
        &self,
        tenant: &TenantContext,
        project_id: Option<&str>,
    ) -> Result<(u64, Vec<Task>), StoreError> {
        let keys = TenantKeys::for_tenant(tenant);
        let project_ids = match project_id {
            Some(id) => vec![self.visible_project(tenant, &keys, id).await?.1.id],
            None => {
                let mut ids = Vec::new();
                let mut cursor = None;
                loop {
                    let page = self
                        .list(
                            tenant,
                            ProjectFilter::default(),
                            cursor.as_ref(),
                            super::MAX_PAGE,
                        )
                        .await?;
                    ids.extend(page.projects.into_iter().map(|p| p.id));
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break ids,
                    }
                }
            }
        };
        let mut tasks = Vec::new();
        for id in &project_ids {
            tasks.extend(self.project_task_list(&keys, id).await?);
        }
        Ok((project_ids.len() as u64, tasks))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests;
