//! Per-tenant project and task storage behind one trait, with an in-memory and a Redis
//! implementation.
//!
//! Every operation takes the caller's [`TenantContext`] and builds its keys from
//! `TenantContext::tenant_id` alone (see [`keys`]); nothing a tool receives as input ever names a
//! tenant. Inside a tenant, the token's data scope ([`crate::tenant::DataScope`]) narrows what it
//! sees: a project outside it behaves exactly like an unknown id, and so do its tasks. Listing is in
//! creation order with an opaque cursor (see [`cursor`], [`paging`]).

pub mod analytics;
#[cfg(test)]
mod conformance;
pub mod counters;
pub mod cursor;
pub mod keys;
pub mod limits;
pub mod memory_store;
pub mod model;
pub mod paging;
pub mod redis_store;
pub mod validation;

use async_trait::async_trait;

use crate::tenant::TenantContext;

pub use analytics::{TaskCounts, count_tasks};
pub use counters::{Counters, counts_from};
pub use cursor::Cursor;
pub use limits::StoreLimits;
pub use memory_store::MemoryStore;
pub use model::{
    DeletedProject, NewProject, NewTask, Priority, Project, ProjectFilter, ProjectPage, Task,
    TaskFilter, TaskPage, TaskPatch, TaskStatus,
};
pub use redis_store::RedisStore;
pub use validation::{
    DATE_PATTERN, MAX_DESCRIPTION_CHARS, MAX_EMAIL_BYTES, MAX_NAME_CHARS,
    MAX_TASK_DESCRIPTION_CHARS, MAX_TITLE_CHARS,
};

/// Largest page a listing returns.
pub const MAX_PAGE: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "invalid cursor: pass back the nextCursor of a previous page, or none for the first page"
    )]
    InvalidCursor,
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// No project with this id that the caller may see (unknown, another tenant's, or outside the
    /// token's data scope: the three are indistinguishable on purpose).
    #[error("no project with id {0:?}")]
    ProjectNotFound(String),
    /// No task with this id that the caller may see.
    #[error("no task with id {0:?}")]
    TaskNotFound(String),
    #[error("project {0:?} is archived")]
    ProjectArchived(String),
    #[error("confirm_name does not match the name of project {0:?}")]
    NameMismatch(String),
    /// A cap of [`StoreLimits`] would be exceeded; nothing was created.
    #[error("the limit of {limit} {what} is reached")]
    LimitReached { what: &'static str, limit: u64 },
    #[error("the token's data scope {0:?} is not supported")]
    UnsupportedDataScope(String),
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The storage did not answer within its deadline (see `RedisConfig`) and nothing changed.
    #[error("storage deadline exceeded: {0}")]
    Timeout(String),
    /// A write's reply missed its deadline and whether it took effect could not be learnt either.
    #[error("storage deadline exceeded, write unconfirmed: {0}")]
    Unconfirmed(String),
}

/// Project and task storage, always scoped to one tenant and narrowed by its data scope.
#[async_trait]
pub trait ProjectStore: Send + Sync + 'static {
    /// Creates a project owned by `tenant`, created by its user, in its team (if any); refused
    /// with [`StoreError::LimitReached`] when the tenant has `projects_per_tenant` projects.
    async fn create(&self, tenant: &TenantContext, new: NewProject) -> Result<Project, StoreError>;
    /// The tenant's project with this id if the caller may see it, or `None`.
    async fn get(&self, tenant: &TenantContext, id: &str) -> Result<Option<Project>, StoreError>;
    /// The tenant's visible projects in creation order, `limit` (1..=[`MAX_PAGE`]) at a time.
    async fn list(
        &self,
        tenant: &TenantContext,
        filter: ProjectFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<ProjectPage, StoreError>;
    /// Marks a project archived (idempotent) and returns it.
    async fn archive(&self, tenant: &TenantContext, id: &str) -> Result<Project, StoreError>;
    /// Deletes a project, all its tasks and its counters if `confirm_name` equals its name, and
    /// takes it out of the creation order.
    async fn delete(
        &self,
        tenant: &TenantContext,
        id: &str,
        confirm_name: &str,
    ) -> Result<DeletedProject, StoreError>;
    /// Creates a task in a visible, non-archived project; refused with
    /// [`StoreError::LimitReached`] when the project has `tasks_per_project` tasks.
    async fn create_task(&self, tenant: &TenantContext, new: NewTask) -> Result<Task, StoreError>;
    /// The tasks of a visible project in creation order, filtered, `limit` at a time.
    async fn list_tasks(
        &self,
        tenant: &TenantContext,
        project_id: &str,
        filter: &TaskFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<TaskPage, StoreError>;
    /// Applies a [`TaskPatch::normalised`] patch to a visible task and returns the task.
    async fn update_task(
        &self,
        tenant: &TenantContext,
        task_id: &str,
        patch: &TaskPatch,
    ) -> Result<Task, StoreError>;
    /// `(project count, summed counters)` of one visible project, or with `None` of every visible
    /// project that is not archived (see [`counters`]).
    async fn counters_in_scope(
        &self,
        tenant: &TenantContext,
        project_id: Option<&str>,
    ) -> Result<(u64, Counters), StoreError>;
    /// `"memory"` or `"redis"`, for logs.
    fn kind(&self) -> &'static str;
}
