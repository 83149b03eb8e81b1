//! Task tools: list, create, update, assign.

use mcp_edge_contract::scopes;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{Json, tool, tool_router};
use serde::{Deserialize, Serialize};

use super::ProjectTools;
use super::catalogue::{Annotations, ToolFacts};
use super::failure::{ToolFailure, page_cursor, page_limit};
use super::schema::drop_null_defaults;
use super::tenant::Tenant;
use crate::store::validation::normalise_email;
use crate::store::{NewTask, Priority, Task, TaskFilter, TaskPatch, TaskStatus};

/// Input of `list_tasks`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = drop_null_defaults)]
pub struct ListTasksInput {
    /// The id of the project whose tasks to list (from `list_projects`).
    #[schemars(length(max = 64))]
    pub project_id: String,
    /// Only tasks with this status.
    #[serde(default)]
    #[schemars(with = "TaskStatus")]
    pub status: Option<TaskStatus>,
    /// Only tasks assigned to this email address (case-insensitive).
    #[serde(default)]
    #[schemars(with = "String", email, length(max = 254))]
    pub assignee_email: Option<String>,
    /// Opaque cursor from the `nextCursor` of a previous `list_tasks` result. Omit it to get the
    /// first page.
    #[serde(default)]
    #[schemars(with = "String", length(max = 64))]
    pub cursor: Option<String>,
    /// How many tasks to return, from 1 to 100. Defaults to 20.
    #[serde(default)]
    #[schemars(with = "u32", range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

/// Input of `create_task`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = drop_null_defaults)]
pub struct CreateTaskInput {
    /// The id of the project to add the task to (from `list_projects`); it must not be archived.
    #[schemars(length(max = 64))]
    pub project_id: String,
    /// Short title of the task: 1 to 200 characters, no line breaks.
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// Optional details, in Markdown (up to 5000 characters).
    #[serde(default)]
    #[schemars(with = "String", length(max = 5000))]
    pub description: Option<String>,
    /// Optional email address of the person who should do the task.
    #[serde(default)]
    #[schemars(with = "String", email, length(max = 254))]
    pub assignee_email: Option<String>,
    /// How urgent the task is. Defaults to medium.
    #[serde(default)]
    pub priority: Priority,
    /// Optional due date, ISO 8601 calendar date `YYYY-MM-DD` (e.g. `2025-03-31`).
    #[serde(default)]
    #[schemars(with = "String", regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), extend("format" = "date"))]
    pub due_date: Option<String>,
}

/// Input of `update_task`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = drop_null_defaults)]
pub struct UpdateTaskInput {
    /// The id of the task to change (from `list_tasks` or `create_task`), e.g.
    /// `tsk_0123456789abcdef0123456789abcdef`.
    #[schemars(length(max = 64))]
    pub task_id: String,
    /// New title: 1 to 200 characters, no line breaks.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1, max = 200))]
    pub title: Option<String>,
    /// New description in Markdown (up to 5000 characters); an empty string removes it.
    #[serde(default)]
    #[schemars(with = "String", length(max = 5000))]
    pub description: Option<String>,
    /// New status.
    #[serde(default)]
    #[schemars(with = "TaskStatus")]
    pub status: Option<TaskStatus>,
    /// New priority.
    #[serde(default)]
    #[schemars(with = "Priority")]
    pub priority: Option<Priority>,
    /// New due date, ISO 8601 calendar date `YYYY-MM-DD`.
    #[serde(default)]
    #[schemars(with = "String", regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), extend("format" = "date"))]
    pub due_date: Option<String>,
}

/// Input of `assign_task`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = drop_null_defaults)]
pub struct AssignTaskInput {
    /// The id of the task to assign (from `list_tasks` or `create_task`).
    #[schemars(length(max = 64))]
    pub task_id: String,
    /// Email address of the person who should do the task.
    #[schemars(email, length(max = 254))]
    pub assignee_email: String,
}

/// Result of `list_tasks`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskList {
    /// Tasks in creation order (oldest first).
    pub tasks: Vec<Task>,
    /// Present when more tasks follow: pass it as `cursor` to get the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Result of `create_task`, `update_task` and `assign_task`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskResult {
    pub task: Task,
}

#[tool_router(router = task_router, vis = "pub(super)")]
impl ProjectTools {
    /// The records of this module's tools.
    pub(super) const TASK_TOOLS: &[ToolFacts] = &[
        Self::LIST_TASKS,
        Self::CREATE_TASK,
        Self::UPDATE_TASK,
        Self::ASSIGN_TASK,
    ];

    const LIST_TASKS: ToolFacts = ToolFacts {
        name: "list_tasks",
        scope: scopes::READ,
        billable: false,
        annotations: Annotations::read_only("List tasks"),
    };

    #[tool(
        description = "List the tasks of one project, oldest first, optionally only those with a \
given status or assignee. Use it to see what is planned or in progress, or to find a task's id \
before update_task or assign_task. Returns {tasks: [{id, projectId, title, description?, status, \
priority, assigneeEmail?, dueDate?, createdAt, updatedAt, createdBy}], nextCursor?}; when \
nextCursor is present, call again with it as `cursor` (and the same filters) for the next page."
    )]
    async fn list_tasks(
        &self,
        Parameters(input): Parameters<ListTasksInput>,
        tenant: Tenant,
    ) -> Result<Json<TaskList>, ToolFailure> {
        let limit = page_limit(input.limit)?;
        let cursor = page_cursor(input.cursor.as_deref())?;
        let filter = TaskFilter {
            status: input.status,
            assignee_email: input
                .assignee_email
                .as_deref()
                .map(normalise_email)
                .transpose()?,
        };
        let page = self
            .store
            .list_tasks(&tenant, &input.project_id, &filter, cursor.as_ref(), limit)
            .await?;
        Ok(Json(TaskList {
            tasks: page.tasks,
            next_cursor: page.next_cursor.map(|c| c.encode()),
        }))
    }

    const CREATE_TASK: ToolFacts = ToolFacts {
        name: "create_task",
        scope: scopes::WRITE,
        billable: true,
        annotations: Annotations::additive("Create task"),
    };

    #[tool(
        description = "Add a task to a project (status todo). Use it when the user asks to track a \
piece of work. Each call creates another task. due_date must be YYYY-MM-DD; the project must not \
be archived. Returns {task: {id, projectId, title, description?, status, priority, \
assigneeEmail?, dueDate?, createdAt, updatedAt, createdBy}}."
    )]
    async fn create_task(
        &self,
        Parameters(input): Parameters<CreateTaskInput>,
        tenant: Tenant,
    ) -> Result<Json<TaskResult>, ToolFailure> {
        let new = NewTask {
            project_id: input.project_id,
            title: input.title,
            description: input.description,
            assignee_email: input.assignee_email,
            priority: input.priority,
            due_date: input.due_date,
        };
        let task = self.store.create_task(&tenant, new).await?;
        tracing::info!(tenant_id = %tenant.tenant_id, task_id = %task.id, "created task");
        Ok(Json(TaskResult { task }))
    }

    const UPDATE_TASK: ToolFacts = ToolFacts {
        name: "update_task",
        scope: scopes::WRITE,
        billable: true,
        annotations: Annotations::idempotent_write("Update task"),
    };

    #[tool(
        description = "Change a task's title, description, status, priority or due date; fields \
you leave out stay as they are. Use it to move a task along (todo → in_progress → done) or to \
edit it; use assign_task to change who does it. Repeating the same call changes nothing. Returns \
{task} as it is after the change."
    )]
    async fn update_task(
        &self,
        Parameters(input): Parameters<UpdateTaskInput>,
        tenant: Tenant,
    ) -> Result<Json<TaskResult>, ToolFailure> {
        let patch = TaskPatch {
            title: input.title,
            description: input.description,
            status: input.status,
            priority: input.priority,
            due_date: input.due_date,
            assignee_email: None,
        }
        .normalised()?;
        let task = self
            .store
            .update_task(&tenant, &input.task_id, &patch)
            .await?;
        tracing::info!(tenant_id = %tenant.tenant_id, task_id = %task.id, "updated task");
        Ok(Json(TaskResult { task }))
    }

    const ASSIGN_TASK: ToolFacts = ToolFacts {
        name: "assign_task",
        scope: scopes::WRITE,
        billable: true,
        annotations: Annotations::idempotent_write("Assign task"),
    };

    #[tool(
        description = "Assign a task to a person by email address (replacing any previous \
assignee). Use it when the user says who should do a task. Assigning to the current assignee \
changes nothing. Returns {task} as it is after the change."
    )]
    async fn assign_task(
        &self,
        Parameters(input): Parameters<AssignTaskInput>,
        tenant: Tenant,
    ) -> Result<Json<TaskResult>, ToolFailure> {
        let patch = TaskPatch {
            assignee_email: Some(input.assignee_email),
            ..TaskPatch::default()
        }
        .normalised()?;
        let task = self
            .store
            .update_task(&tenant, &input.task_id, &patch)
            .await?;
        tracing::info!(tenant_id = %tenant.tenant_id, task_id = %task.id, "assigned task");
        Ok(Json(TaskResult { task }))
    }
}
