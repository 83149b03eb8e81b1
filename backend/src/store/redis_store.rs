//! The project store in Redis: the tenant data store of a real deployment.
//!
//! Per tenant (keys from [`TenantKeys`]): a sorted set of project ids scored by creation sequence
//! number, a hash of project id → project JSON, a hash of task id → task JSON, and per project a
//! list of its task ids and a hash of analytics counters ([`counters`]).
//! Reads go through [`reads`] (the chunked walk every listing uses).
//! A write that touches several keys is one Lua script (see [`scripts`]) that also enforces the
//! caps and keeps the counters; a read-modify-write is a compare-and-set script retried a few
//! times, so concurrent changes are never lost and nothing is written into a project deleted
//! meanwhile. Deleting detaches a project at once and removes its tasks in chunks ([`reap`]).
//! Connections come from a small round-robin [`pool`] whose response timeout is every step's
//! deadline.

mod counters;
mod deadline;
mod pool;
mod reads;
mod reap;
mod scripts;

use async_trait::async_trait;

use super::counters::{Counters, add, delta};
use super::keys::TenantKeys;
use super::limits::{PROJECTS_PER_TENANT, StoreLimits, TASKS_PER_PROJECT};
use super::validation::{check_limit, new_project_record, new_task_record, plausible_task_id};
use super::{
    Cursor, DeletedProject, NewProject, NewTask, Project, ProjectFilter, ProjectPage, ProjectStore,
    StoreError, Task, TaskFilter, TaskPage, TaskPatch,
};
use crate::tenant::TenantContext;
use deadline::Mark;
pub use pool::RedisConfig;
use pool::{Pool, backend};
use reads::Ids;

/// How often a compare-and-set write is retried when the record changed under it.
const CAS_ATTEMPTS: usize = 8;

#[derive(Clone)]
pub struct RedisStore {
    pool: std::sync::Arc<Pool>,
    limits: StoreLimits,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
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

/// Appends (field, delta) pairs as script arguments.
fn counter_args(invocation: &mut redis::ScriptInvocation<'_>, changes: &[(String, i64)]) {
    for (field, by) in changes {
        invocation.arg(field).arg(by);
    }
}

impl RedisStore {
    /// Connects with the default [`RedisConfig`].
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, RedisConfig::default()).await
    }

    /// Connects (and checks each connection with a PING).
    pub async fn connect_with(url: &str, config: RedisConfig) -> anyhow::Result<Self> {
        Ok(Self {
            pool: std::sync::Arc::new(Pool::connect(url, &config).await?),
            limits: config.limits,
        })
    }

    /// Runs the create script for `project`: its sequence number, -1 at the cap, or `None` if the
    /// reply was late but the project is there.
    async fn insert_project(
        &self,
        keys: &TenantKeys,
        project: &Project,
    ) -> Result<Option<i64>, StoreError> {
        let json = encode(project)?;
        let mut create = scripts::create_project().prepare_invoke();
        create
            .key(keys.project_records())
            .key(keys.project_order())
            .key(keys.project_seq())
            .key(keys.project_counters(&project.id))
            .arg(&project.id)
            .arg(&json)
            .arg(self.limits.projects_per_tenant);
        let records = keys.project_records();
        let mark = Mark {
            hash: &records,
            field: &project.id,
            applied: &|now| now == Some(json.as_str()),
        };
        self.write(&create, mark).await
    }

    /// Moves the project order kept by earlier versions (a list) into the sorted order, if any.
    async fn migrate_order(&self, keys: &TenantKeys) -> Result<(), StoreError> {
        let moved: u64 = scripts::migrate_order()
            .key(keys.legacy_project_order())
            .key(keys.project_order())
            .key(keys.project_seq())
            .key(keys.project_records())
            .invoke_async(&mut self.pool.get())
            .await
            .map_err(backend)?;
        if moved > 0 {
            tracing::info!(moved, "moved a tenant's project order into the sorted set");
        }
        Ok(())
    }
}

#[async_trait]
impl ProjectStore for RedisStore {
    async fn create(&self, tenant: &TenantContext, new: NewProject) -> Result<Project, StoreError> {
        let project = new_project_record(tenant, new)?;
        let keys = TenantKeys::for_tenant(tenant);
        self.migrate_order(&keys).await?;
        let seq = self.insert_project(&keys, &project).await?;
        if seq.is_some_and(|seq| seq < 0) {
            return Err(StoreError::LimitReached {
                what: PROJECTS_PER_TENANT,
                limit: self.limits.projects_per_tenant,
            });
        }
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
        self.migrate_order(&keys).await?;
        let (projects, next_cursor) = self
            .scan(
                Ids::Sorted(&keys.project_order()),
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
            let archived = encode(&project)?;
            let mut swap = scripts::compare_and_set().prepare_invoke();
            swap.key(keys.project_records())
                .arg(id)
                .arg(&json)
                .arg(&archived);
            let records = keys.project_records();
            let mark = Mark {
                hash: &records,
                field: id,
                applied: &|now| now == Some(archived.as_str()),
            };
            if self.write::<i64>(&swap, mark).await? != Some(0) {
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
        self.migrate_order(&keys).await?;
        for _ in 0..CAS_ATTEMPTS {
            let (json, project) = self.visible_project(tenant, &keys, id).await?;
            if project.name != confirm_name {
                return Err(StoreError::NameMismatch(id.to_owned()));
            }
            let detached = self.detach(&keys, id, &json).await?;
            if detached.is_some_and(|n| n < 0) {
                continue; // the project changed meanwhile
            }
            // The project is gone for every caller now; its task records go in chunks. If that
            // fails, the tenant's next delete finishes it: this one has happened.
            let reaped = self.reap(&keys).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reaping a deleted project's tasks stopped; the next delete goes on");
                0
            });
            let tasks_deleted = detached.map_or(reaped, |n| n.unsigned_abs());
            return Ok(DeletedProject {
                project,
                tasks_deleted,
            });
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
            let mut add = scripts::add_task().prepare_invoke();
            add.key(keys.project_records())
                .key(keys.task_records())
                .key(keys.project_tasks(&project.id))
                .key(keys.project_counters(&project.id))
                .arg(&project.id)
                .arg(&json)
                .arg(&task.id)
                .arg(encode(&task)?)
                .arg(self.limits.tasks_per_project);
            counter_args(&mut add, &delta(None, Some(&task)));
            let task_records = keys.task_records();
            let mark = Mark {
                hash: &task_records,
                field: &task.id,
                applied: &|now| now.is_some(),
            };
            match self.write::<i64>(&add, mark).await? {
                None | Some(1) => return Ok(task),
                Some(-1) => {
                    return Err(StoreError::LimitReached {
                        what: TASKS_PER_PROJECT,
                        limit: self.limits.tasks_per_project,
                    });
                }
                _ => {}
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
                Ids::List(&keys.project_tasks(project_id)),
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
            let before = task.clone();
            if !patch.apply_to(&mut task) {
                return Ok(task);
            }
            let new_json = encode(&task)?;
            let mut update = scripts::update_task().prepare_invoke();
            update
                .key(keys.task_records())
                .key(keys.project_records())
                .key(keys.project_counters(&task.project_id))
                .arg(task_id)
                .arg(&json)
                .arg(&new_json)
                .arg(&task.project_id);
            counter_args(&mut update, &delta(Some(&before), Some(&task)));
            let task_records = keys.task_records();
            let mark = Mark {
                hash: &task_records,
                field: task_id,
                applied: &|now| now == Some(new_json.as_str()),
            };
            if self.write::<i64>(&update, mark).await? != Some(0) {
                return Ok(task);
            }
        }
        Err(contention())
    }

    async fn counters_in_scope(
        &self,
        tenant: &TenantContext,
        project_id: Option<&str>,
    ) -> Result<(u64, Counters), StoreError> {
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
        let mut total = Counters::new();
        for counters in self.project_counters(&keys, &project_ids).await? {
            add(&mut total, &counters);
        }
        Ok((project_ids.len() as u64, total))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod cleanup_tests;
#[cfg(test)]
mod deadline_tests;
#[cfg(test)]
mod measure_tests;
#[cfg(test)]
mod tests;
