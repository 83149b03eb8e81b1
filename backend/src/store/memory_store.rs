//! In-process store, used when no Redis URL is configured (development, tests).
//!
//! Data lives in a map keyed by the tenant's key prefix (the same [`TenantKeys`] the Redis store
//! uses), so tenant isolation works the same way in both stores; data-scope checks, caps and
//! analytics counters are the same shared functions. One lock makes every write atomic. Nothing
//! survives a restart.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use tokio::sync::RwLock;

use super::counters::{self, Counters};
use super::keys::TenantKeys;
use super::limits::{PROJECTS_PER_TENANT, StoreLimits, TASKS_PER_PROJECT};
use super::paging::Pager;
use super::validation::{
    check_limit, new_project_record, new_task_record, plausible_project_id, plausible_task_id,
};
use super::{
    Cursor, DeletedProject, NewProject, NewTask, Project, ProjectFilter, ProjectPage, ProjectStore,
    StoreError, Task, TaskFilter, TaskPage, TaskPatch,
};
use crate::tenant::TenantContext;

/// One tenant's data.
#[derive(Debug, Default)]
struct TenantData {
    /// Creation sequence number → project id (the cursor is a sequence number, so positions
    /// never shift when a project is deleted and leaves this map).
    order: BTreeMap<u64, String>,
    /// The last sequence number handed out.
    last_seq: u64,
    /// Project id → (its sequence number, the project).
    projects: HashMap<String, (u64, Project)>,
    tasks: HashMap<String, Task>,
    /// Project id → its task ids in creation order.
    task_order: HashMap<String, Vec<String>>,
    /// Project id → its analytics counters.
    counters: HashMap<String, Counters>,
}

impl TenantData {
    /// The project if it exists and `tenant` may see it.
    fn visible(&self, tenant: &TenantContext, id: &str) -> Option<&Project> {
        self.projects
            .get(id)
            .map(|(_, p)| p)
            .filter(|p| p.visible_to(tenant))
    }

    fn visible_project(&self, tenant: &TenantContext, id: &str) -> Result<&Project, StoreError> {
        self.visible(tenant, id)
            .ok_or_else(|| StoreError::ProjectNotFound(id.to_owned()))
    }
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Tenant key prefix → its data.
    tenants: RwLock<HashMap<String, TenantData>>,
    limits: StoreLimits,
}

impl MemoryStore {
    /// A store with the default [`StoreLimits`].
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(limits: StoreLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }
}

fn tenant_key(tenant: &TenantContext) -> String {
    TenantKeys::for_tenant(tenant).prefix().to_owned()
}

/// Walks `ids` (position, id) in order, keeping what `pick` returns.
fn page<'a, T>(
    ids: impl Iterator<Item = (u64, &'a String)>,
    limit: usize,
    mut pick: impl FnMut(&str) -> Option<T>,
) -> (Vec<T>, Option<Cursor>) {
    let mut pager = Pager::new(limit);
    for (position, id) in ids {
        if !pager.offer(position, pick(id)) {
            break;
        }
    }
    pager.finish()
}

fn start(cursor: Option<&Cursor>) -> u64 {
    cursor.map_or(0, |c| c.offset)
}

#[async_trait]
impl ProjectStore for MemoryStore {
    async fn create(&self, tenant: &TenantContext, new: NewProject) -> Result<Project, StoreError> {
        let project = new_project_record(tenant, new)?;
        let mut tenants = self.tenants.write().await;
        let data = tenants.entry(tenant_key(tenant)).or_default();
        let limit = self.limits.projects_per_tenant;
        if data.projects.len() as u64 >= limit {
            return Err(StoreError::LimitReached {
                what: PROJECTS_PER_TENANT,
                limit,
            });
        }
        data.last_seq += 1;
        data.order.insert(data.last_seq, project.id.clone());
        data.projects
            .insert(project.id.clone(), (data.last_seq, project.clone()));
        Ok(project)
    }

    async fn get(&self, tenant: &TenantContext, id: &str) -> Result<Option<Project>, StoreError> {
        if !plausible_project_id(id) {
            return Ok(None);
        }
        let tenants = self.tenants.read().await;
        Ok(tenants
            .get(&tenant_key(tenant))
            .and_then(|data| data.visible(tenant, id))
            .cloned())
    }

    async fn list(
        &self,
        tenant: &TenantContext,
        filter: ProjectFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<ProjectPage, StoreError> {
        check_limit(limit)?;
        let tenants = self.tenants.read().await;
        let Some(data) = tenants.get(&tenant_key(tenant)) else {
            return Ok(ProjectPage {
                projects: Vec::new(),
                next_cursor: None,
            });
        };
        let ids = data
            .order
            .range(start(cursor)..)
            .map(|(seq, id)| (*seq, id));
        let (projects, next_cursor) = page(ids, limit, |id| {
            data.visible(tenant, id)
                .filter(|p| filter.include_archived || !p.archived)
                .cloned()
        });
        Ok(ProjectPage {
            projects,
            next_cursor,
        })
    }

    async fn archive(&self, tenant: &TenantContext, id: &str) -> Result<Project, StoreError> {
        let not_found = || StoreError::ProjectNotFound(id.to_owned());
        let mut tenants = self.tenants.write().await;
        let data = tenants.get_mut(&tenant_key(tenant)).ok_or_else(not_found)?;
        let project = data
            .projects
            .get_mut(id)
            .map(|(_, p)| p)
            .filter(|p| p.visible_to(tenant))
            .ok_or_else(not_found)?;
        project.archived = true;
        Ok(project.clone())
    }

    async fn delete(
        &self,
        tenant: &TenantContext,
        id: &str,
        confirm_name: &str,
    ) -> Result<DeletedProject, StoreError> {
        let not_found = || StoreError::ProjectNotFound(id.to_owned());
        let mut tenants = self.tenants.write().await;
        let data = tenants.get_mut(&tenant_key(tenant)).ok_or_else(not_found)?;
        let project = data.visible_project(tenant, id)?;
        if project.name != confirm_name {
            return Err(StoreError::NameMismatch(id.to_owned()));
        }
        let (seq, project) = data.projects.remove(id).ok_or_else(not_found)?;
        data.order.remove(&seq);
        data.counters.remove(id);
        let task_ids = data.task_order.remove(id).unwrap_or_default();
        for task_id in &task_ids {
            data.tasks.remove(task_id);
        }
        Ok(DeletedProject {
            project,
            tasks_deleted: task_ids.len() as u64,
        })
    }

    async fn create_task(&self, tenant: &TenantContext, new: NewTask) -> Result<Task, StoreError> {
        let project_id = new.project_id.clone();
        let not_found = || StoreError::ProjectNotFound(project_id.clone());
        let mut tenants = self.tenants.write().await;
        let data = tenants.get_mut(&tenant_key(tenant)).ok_or_else(not_found)?;
        let project = data.visible_project(tenant, &project_id)?;
        if project.archived {
            return Err(StoreError::ProjectArchived(project_id));
        }
        let task = new_task_record(tenant, project, new)?;
        let task_ids = data.task_order.entry(project_id.clone()).or_default();
        let limit = self.limits.tasks_per_project;
        if task_ids.len() as u64 >= limit {
            return Err(StoreError::LimitReached {
                what: TASKS_PER_PROJECT,
                limit,
            });
        }
        task_ids.push(task.id.clone());
        data.tasks.insert(task.id.clone(), task.clone());
        counters::apply(
            data.counters.entry(project_id).or_default(),
            &counters::delta(None, Some(&task)),
        );
        Ok(task)
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
        let tenants = self.tenants.read().await;
        let data = tenants
            .get(&tenant_key(tenant))
            .ok_or_else(|| StoreError::ProjectNotFound(project_id.to_owned()))?;
        data.visible_project(tenant, project_id)?;
        let ids = data
            .task_order
            .get(project_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let from = usize::try_from(start(cursor)).unwrap_or(usize::MAX);
        let ids = ids
            .iter()
            .enumerate()
            .skip(from)
            .map(|(i, id)| (i as u64, id));
        let (tasks, next_cursor) = page(ids, limit, |id| {
            data.tasks.get(id).filter(|t| filter.matches(t)).cloned()
        });
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
        let mut tenants = self.tenants.write().await;
        let data = tenants.get_mut(&tenant_key(tenant)).ok_or_else(not_found)?;
        let project_id = data
            .tasks
            .get(task_id)
            .map(|t| t.project_id.clone())
            .ok_or_else(not_found)?;
        if data.visible(tenant, &project_id).is_none() {
            return Err(not_found());
        }
        let task = data.tasks.get_mut(task_id).ok_or_else(not_found)?;
        let before = task.clone();
        if patch.apply_to(task) {
            let changes = counters::delta(Some(&before), Some(task));
            counters::apply(data.counters.entry(project_id).or_default(), &changes);
        }
        Ok(task.clone())
    }

    async fn counters_in_scope(
        &self,
        tenant: &TenantContext,
        project_id: Option<&str>,
    ) -> Result<(u64, Counters), StoreError> {
        let tenants = self.tenants.read().await;
        let Some(data) = tenants.get(&tenant_key(tenant)) else {
            return match project_id {
                Some(id) => Err(StoreError::ProjectNotFound(id.to_owned())),
                None => Ok((0, Counters::new())),
            };
        };
        let project_ids: Vec<&str> = match project_id {
            Some(id) => vec![data.visible_project(tenant, id)?.id.as_str()],
            None => data
                .order
                .values()
                .filter(|id| data.visible(tenant, id).is_some_and(|p| !p.archived))
                .map(String::as_str)
                .collect(),
        };
        let mut total = Counters::new();
        for id in &project_ids {
            if let Some(project_counters) = data.counters.get(*id) {
                counters::add(&mut total, project_counters);
            }
        }
        Ok((project_ids.len() as u64, total))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests;
