//! The records the stores keep (projects, tasks) and what callers pass in to create, change, filter
//! and page through them. These types are also the tools' output shapes (camelCase JSON).

use serde::{Deserialize, Serialize};

use super::Cursor;

/// A project as stored and as returned by the tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// Identifier to pass to `get_project`, e.g. `prj_0f6c…`.
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The team that owns the project, from the caller's `team:<name>` data scope when it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// True once `archive_project` was called: hidden from `list_projects` by default, no new tasks.
    #[serde(default)]
    pub archived: bool,
    /// RFC 3339 timestamp (UTC).
    pub created_at: String,
    /// The user id of the creator.
    pub created_by: String,
}

/// Where a task stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum TaskStatus {
    #[default]
    Todo,
    InProgress,
    Done,
}

/// How urgent a task is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Urgent,
}

/// A task of a project, as stored and as returned by the tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Identifier to pass to `update_task` / `assign_task`, e.g. `tsk_0f6c…`.
    pub id: String,
    /// The project the task belongs to.
    pub project_id: String,
    pub title: String,
    /// Markdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub status: TaskStatus,
    pub priority: Priority,
    /// Lower-cased email address of the assignee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee_email: Option<String>,
    /// Due date, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    /// RFC 3339 timestamp (UTC).
    pub created_at: String,
    /// RFC 3339 timestamp (UTC) of the last change that changed something.
    pub updated_at: String,
    /// The user id of the creator.
    pub created_by: String,
}

/// What a caller supplies to create a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    pub name: String,
    pub description: Option<String>,
}

/// What a caller supplies to create a task (checked by [`super::validation::new_task_record`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewTask {
    pub project_id: String,
    pub title: String,
    pub description: Option<String>,
    pub assignee_email: Option<String>,
    pub priority: Priority,
    pub due_date: Option<String>,
}

/// A change to a task: `None` leaves a field as it is. An empty `description` clears it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<TaskStatus>,
    pub priority: Option<Priority>,
    pub due_date: Option<String>,
    pub assignee_email: Option<String>,
}

/// Which projects `list` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProjectFilter {
    pub include_archived: bool,
}

/// Which tasks `list_tasks` returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    /// Compared case-insensitively.
    pub assignee_email: Option<String>,
}

/// One page of a project listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPage {
    pub projects: Vec<Project>,
    /// Present when more projects follow; pass it back to get the next page.
    pub next_cursor: Option<Cursor>,
}

/// One page of a task listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// Present when more tasks follow; pass it back to get the next page.
    pub next_cursor: Option<Cursor>,
}

/// What `delete_project` removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedProject {
    pub project: Project,
    pub tasks_deleted: u64,
}

impl Project {
    /// Whether `tenant` may see this project (its data scope covers the project's team).
    pub fn visible_to(&self, tenant: &crate::tenant::TenantContext) -> bool {
        tenant.can_see_team(self.team.as_deref())
    }
}

impl TaskFilter {
    pub fn matches(&self, task: &Task) -> bool {
        self.status.is_none_or(|s| s == task.status)
            && self.assignee_email.as_deref().is_none_or(|wanted| {
                task.assignee_email
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(wanted))
            })
    }
}
