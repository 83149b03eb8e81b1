//! Project tools: list, get, create, archive, delete.

use mcp_edge_contract::scopes;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{Json, tool, tool_router};
use serde::{Deserialize, Serialize};

use super::ProjectTools;
use super::catalogue::{Annotations, ToolFacts};
use super::failure::{ToolFailure, page_cursor, page_limit};
use super::schema::drop_null_defaults;
use super::tenant::Tenant;
use crate::store::{NewProject, Project, ProjectFilter};

/// Input of `list_projects`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = drop_null_defaults)]
pub struct ListProjectsInput {
    /// Opaque cursor from the `nextCursor` of a previous `list_projects` result. Omit it to get the
    /// first page.
    #[serde(default)]
    #[schemars(with = "String", length(max = 64))]
    pub cursor: Option<String>,
    /// How many projects to return, from 1 to 100. Defaults to 20.
    #[serde(default)]
    #[schemars(with = "u32", range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// Also list archived projects. Defaults to false.
    #[serde(default)]
    pub include_archived: bool,
}

/// Input of `create_project`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = drop_null_defaults)]
pub struct CreateProjectInput {
    /// Name of the new project: 1 to 200 characters, no line breaks.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// Optional longer description of the project (up to 2000 characters).
    #[serde(default)]
    #[schemars(with = "String", length(max = 2000))]
    pub description: Option<String>,
}

/// Input of `get_project` and `archive_project`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = drop_null_defaults)]
pub struct ProjectIdInput {
    /// The project's id as returned by `list_projects` or `create_project`, e.g.
    /// `prj_0123456789abcdef0123456789abcdef`.
    #[schemars(length(max = 64))]
    pub project_id: String,
}

/// Input of `delete_project`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = drop_null_defaults)]
pub struct DeleteProjectInput {
    /// The id of the project to delete, e.g. `prj_0123456789abcdef0123456789abcdef`.
    #[schemars(length(max = 64))]
    pub project_id: String,
    /// The project's exact name, as confirmation that this is the project the user means to
    /// delete. Read it with `get_project`; a mismatch deletes nothing.
    #[schemars(length(min = 1, max = 200))]
    pub confirm_name: String,
}

/// Result of `list_projects`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectList {
    /// Projects in creation order (oldest first).
    pub projects: Vec<Project>,
    /// Present when more projects follow: pass it as `cursor` to get the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Result of `create_project`, `get_project` and `archive_project`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProjectResult {
    pub project: Project,
}

/// Result of `delete_project`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedProjectResult {
    /// The project as it was before it was deleted.
    pub project: Project,
    /// How many of its tasks were deleted with it.
    pub tasks_deleted: u64,
}

#[tool_router(router = project_router, vis = "pub(super)")]
impl ProjectTools {
    /// The records of this module's tools.
    pub(super) const PROJECT_TOOLS: &[ToolFacts] = &[
        Self::LIST_PROJECTS,
        Self::CREATE_PROJECT,
        Self::GET_PROJECT,
        Self::ARCHIVE_PROJECT,
        Self::DELETE_PROJECT,
    ];

    const LIST_PROJECTS: ToolFacts = ToolFacts {
        name: "list_projects",
        scope: scopes::READ,
        billable: false,
        annotations: Annotations::read_only("List projects"),
    };

    #[tool(
        description = "List the projects of your organisation that you can see, oldest first. Use \
it to find a project or its id. Archived projects are left out unless include_archived is true. \
Returns {projects: [{id, name, description?, team?, archived, createdAt, createdBy}], nextCursor?}; \
when nextCursor is present, call again with it as `cursor` for the next page."
    )]
    async fn list_projects(
        &self,
        Parameters(input): Parameters<ListProjectsInput>,
        tenant: Tenant,
    ) -> Result<Json<ProjectList>, ToolFailure> {
        let limit = page_limit(input.limit)?;
        let cursor = page_cursor(input.cursor.as_deref())?;
        let filter = ProjectFilter {
            include_archived: input.include_archived,
        };
        let page = self
            .store
            .list(&tenant, filter, cursor.as_ref(), limit)
            .await?;
        tracing::info!(tenant_id = %tenant.tenant_id, count = page.projects.len(), "listed projects");
        Ok(Json(ProjectList {
            projects: page.projects,
            next_cursor: page.next_cursor.map(|c| c.encode()),
        }))
    }

    const CREATE_PROJECT: ToolFacts = ToolFacts {
        name: "create_project",
        scope: scopes::WRITE,
        billable: true,
        annotations: Annotations::additive("Create project"),
    };

    #[tool(
        description = "Create a new project in your organisation, owned by your team. Use it when \
the user asks to start or add a project. Each call creates another project, even with the same \
name. Returns {project: {id, name, description?, team?, archived, createdAt, createdBy}}."
    )]
    async fn create_project(
        &self,
        Parameters(input): Parameters<CreateProjectInput>,
        tenant: Tenant,
    ) -> Result<Json<ProjectResult>, ToolFailure> {
        let new = NewProject {
            name: input.name,
            description: input.description,
        };
        let project = self.store.create(&tenant, new).await?;
        tracing::info!(tenant_id = %tenant.tenant_id, project_id = %project.id, "created project");
        Ok(Json(ProjectResult { project }))
    }

    const GET_PROJECT: ToolFacts = ToolFacts {
        name: "get_project",
        scope: scopes::READ,
        billable: false,
        annotations: Annotations::read_only("Get project"),
    };

    #[tool(
        description = "Get one project of your organisation by its id (from list_projects or \
create_project). Returns {project: {id, name, description?, team?, archived, createdAt, \
createdBy}}; an unknown id gives an error result telling you to list projects to find the right \
id."
    )]
    async fn get_project(
        &self,
        Parameters(input): Parameters<ProjectIdInput>,
        tenant: Tenant,
    ) -> Result<Json<ProjectResult>, ToolFailure> {
        match self.store.get(&tenant, &input.project_id).await? {
            Some(project) => Ok(Json(ProjectResult { project })),
            None => Err(crate::store::StoreError::ProjectNotFound(input.project_id).into()),
        }
    }

    const ARCHIVE_PROJECT: ToolFacts = ToolFacts {
        name: "archive_project",
        scope: scopes::WRITE,
        billable: true,
        annotations: Annotations::idempotent_write("Archive project"),
    };

    #[tool(
        description = "Archive a project: it keeps its tasks and can still be read with \
get_project and list_tasks, but it no longer shows in list_projects (unless include_archived is \
true) and takes no new tasks. Use it when the user is done with a project but wants to keep it; \
use delete_project only to remove it for good. Archiving an archived project changes nothing. \
Returns {project} with archived: true."
    )]
    async fn archive_project(
        &self,
        Parameters(input): Parameters<ProjectIdInput>,
        tenant: Tenant,
    ) -> Result<Json<ProjectResult>, ToolFailure> {
        let project = self.store.archive(&tenant, &input.project_id).await?;
        tracing::info!(tenant_id = %tenant.tenant_id, project_id = %project.id, "archived project");
        Ok(Json(ProjectResult { project }))
    }

    const DELETE_PROJECT: ToolFacts = ToolFacts {
        name: "delete_project",
        scope: scopes::ADMIN,
        billable: true,
        annotations: Annotations::destructive("Delete project"),
    };

    #[tool(
        description = "Permanently delete a project and all of its tasks. This cannot be undone: \
only call it when the user has explicitly asked to delete this project, and prefer \
archive_project otherwise. confirm_name must be the project's exact name (read it with \
get_project); a mismatch deletes nothing. Returns {project, tasksDeleted}."
    )]
    async fn delete_project(
        &self,
        Parameters(input): Parameters<DeleteProjectInput>,
        tenant: Tenant,
    ) -> Result<Json<DeletedProjectResult>, ToolFailure> {
        let deleted = self
            .store
            .delete(&tenant, &input.project_id, &input.confirm_name)
            .await?;
        tracing::info!(
            tenant_id = %tenant.tenant_id,
            project_id = %deleted.project.id,
            tasks_deleted = deleted.tasks_deleted,
            "deleted project"
        );
        Ok(Json(DeletedProjectResult {
            project: deleted.project,
            tasks_deleted: deleted.tasks_deleted,
        }))
    }
}
