//! The MCP tools the backend serves, written with rmcp's `#[tool]` macros.
//!
//! Each tool takes the verified [`TenantContext`] from the HTTP request (rmcp's Streamable HTTP
//! server puts the request's `http::request::Parts` into the `RequestContext` extensions, and
//! [`crate::gateway_auth`] put the tenant into the parts' extensions). A call without one fails as
//! an internal error: there is no default tenant.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Json, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};

use crate::store::{Cursor, NewProject, Project, ProjectStore, StoreError};
use crate::tenant::TenantContext;

/// Page size of `list_projects` when the caller gives none.
pub const DEFAULT_PAGE: u32 = 20;

/// Input of `list_projects`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListProjectsInput {
    /// Opaque cursor from the `nextCursor` of a previous `list_projects` result. Omit it to get the
    /// first page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// How many projects to return, from 1 to 100. Defaults to 20.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

/// Input of `create_project`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectInput {
    /// Name of the new project: 1 to 200 characters, no line breaks.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// Optional longer description of the project (up to 2000 characters).
    #[serde(default)]
    #[schemars(length(max = 2000))]
    pub description: Option<String>,
}

/// Input of `get_project`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetProjectInput {
    /// The project's id as returned by `list_projects` or `create_project`, e.g.
    /// `prj_0123456789abcdef0123456789abcdef`.
    pub project_id: String,
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

/// Result of `create_project` and `get_project`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProjectResult {
    pub project: Project,
}

/// How a tool call fails: a protocol error (JSON-RPC error) or a tool error (`isError: true`, with a
/// message the agent can act on).
#[derive(Debug)]
pub enum ToolFailure {
    Protocol(ErrorData),
    Tool(String),
}

impl IntoCallToolResult for ToolFailure {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        match self {
            Self::Protocol(error) => Err(error),
            Self::Tool(message) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into())
            }
        }
    }
}

impl From<StoreError> for ToolFailure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::InvalidCursor => {
                Self::Protocol(ErrorData::invalid_params(error.to_string(), None))
            }
            StoreError::InvalidInput(message) => Self::Tool(format!("Invalid input: {message}.")),
            StoreError::Backend(message) => {
                tracing::error!(error = %message, "project store failed");
                Self::Protocol(ErrorData::internal_error(
                    "project storage is unavailable; try again later",
                    None,
                ))
            }
        }
    }
}

/// The verified tenant of the HTTP request behind this tool call.
pub fn tenant_of(ctx: &RequestContext<RoleServer>) -> Result<TenantContext, ToolFailure> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<TenantContext>())
        .cloned()
        .ok_or_else(|| {
            tracing::error!("tool call without a verified tenant context");
            ToolFailure::Protocol(ErrorData::internal_error(
                "no verified tenant context for this request",
                None,
            ))
        })
}

/// The MCP server: project tools over a [`ProjectStore`].
#[derive(Clone)]
pub struct ProjectTools {
    store: Arc<dyn ProjectStore>,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for ProjectTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectTools")
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
}

#[tool_router]
impl ProjectTools {
    pub fn new(store: Arc<dyn ProjectStore>) -> Self {
        Self {
            store,
            tool_router: Self::tool_router(),
        }
    }

    /// Every tool this server offers, as listed by `tools/list`.
    pub fn catalogue() -> Vec<rmcp::model::Tool> {
        Self::tool_router().list_all()
    }

    #[tool(
        description = "List the projects of your organisation, oldest first. Use it to find a \
project or its id. Returns {projects: [{id, name, description?, team?, createdAt, createdBy}], \
nextCursor?}; when nextCursor is present, call again with it as `cursor` for the next page.",
        annotations(
            title = "List projects",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_projects(
        &self,
        Parameters(input): Parameters<ListProjectsInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<ProjectList>, ToolFailure> {
        let tenant = tenant_of(&ctx)?;
        let limit = input.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=100).contains(&limit) {
            return Err(ToolFailure::Protocol(ErrorData::invalid_params(
                "limit must be between 1 and 100",
                None,
            )));
        }
        let cursor = input.cursor.as_deref().map(Cursor::decode).transpose()?;
        let page = self
            .store
            .list(&tenant, cursor.as_ref(), limit as usize)
            .await?;
        tracing::info!(tenant_id = %tenant.tenant_id, count = page.projects.len(), "listed projects");
        Ok(Json(ProjectList {
            projects: page.projects,
            next_cursor: page.next_cursor.map(|c| c.encode()),
        }))
    }

    #[tool(
        description = "Create a new project in your organisation, owned by your team. Use it when \
the user asks to start or add a project. Each call creates another project, even with the same \
name. Returns {project: {id, name, description?, team?, createdAt, createdBy}}.",
        annotations(
            title = "Create project",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_project(
        &self,
        Parameters(input): Parameters<CreateProjectInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<ProjectResult>, ToolFailure> {
        let tenant = tenant_of(&ctx)?;
        let project = self
            .store
            .create(
                &tenant,
                NewProject {
                    name: input.name,
                    description: input.description,
                },
            )
            .await?;
        tracing::info!(tenant_id = %tenant.tenant_id, project_id = %project.id, "created project");
        Ok(Json(ProjectResult { project }))
    }

    #[tool(
        description = "Get one project of your organisation by its id (from list_projects or \
create_project). Returns {project: {id, name, description?, team?, createdAt, createdBy}}; an \
unknown id gives an error result telling you to list projects to find the right id.",
        annotations(
            title = "Get project",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_project(
        &self,
        Parameters(input): Parameters<GetProjectInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<ProjectResult>, ToolFailure> {
        let tenant = tenant_of(&ctx)?;
        match self.store.get(&tenant, &input.project_id).await? {
            Some(project) => Ok(Json(ProjectResult { project })),
            None => Err(ToolFailure::Tool(format!(
                "No project with id {:?} exists in your organisation. Call list_projects to see the \
available projects and their ids.",
                input.project_id
            ))),
        }
    }
}

#[tool_handler(router = self.tool_router, name = "mcp-edge-backend", instructions = "Project tools for your organisation. Use list_projects to see existing projects (paginated with nextCursor), get_project to read one by id, and create_project to add one. Every call only ever sees the projects of the caller's own organisation.")]
impl ServerHandler for ProjectTools {}

/// The scope a tool needs, from its annotations (ARCHITECTURE.md, "Token claims"): read-only →
/// `mcp:read`, destructive → `mcp:admin`, any other write → `mcp:write`. Missing hints take the MCP
/// defaults (not read-only, destructive).
pub fn required_scope(tool: &rmcp::model::Tool) -> &'static str {
    let annotations = tool.annotations.as_ref();
    let read_only = annotations.and_then(|a| a.read_only_hint).unwrap_or(false);
    let destructive = annotations.and_then(|a| a.destructive_hint).unwrap_or(true);
    if read_only {
        "mcp:read"
    } else if destructive {
        "mcp:admin"
    } else {
        "mcp:write"
    }
}

/// Tool name → required scope, for every tool in the catalogue (sorted by name).
pub fn tool_scopes() -> std::collections::BTreeMap<String, &'static str> {
    ProjectTools::catalogue()
        .iter()
        .map(|tool| (tool.name.to_string(), required_scope(tool)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_maps_to_scopes() {
        let scopes = tool_scopes();
        assert_eq!(scopes.get("list_projects"), Some(&"mcp:read"));
        assert_eq!(scopes.get("get_project"), Some(&"mcp:read"));
        assert_eq!(scopes.get("create_project"), Some(&"mcp:write"));
        assert_eq!(scopes.len(), 3);
    }

    #[test]
    fn tools_have_descriptions_schemas_and_output_schemas() {
        for tool in ProjectTools::catalogue() {
            assert!(
                tool.description.as_deref().is_some_and(|d| d.len() > 40),
                "{}",
                tool.name
            );
            assert!(tool.output_schema.is_some(), "{}", tool.name);
            let schema = serde_json::Value::Object((*tool.input_schema).clone());
            assert_eq!(schema["type"], "object", "{}", tool.name);
        }
    }
}
