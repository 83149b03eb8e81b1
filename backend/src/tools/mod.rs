//! The MCP tools the backend serves, written with rmcp's `#[tool]` macros, one module per area
//! ([`projects`], [`tasks`], [`analytics`], [`usage`]); each tool's scope, billing and annotations
//! in one [`ToolFacts`] record beside its handler, collected in [`TOOL_FACTS`] ([`catalogue`]).
//!
//! Every `tools/call` looks up its verified tenant once ([`Tenant`]) and hands it to the tool. A
//! call runs at most once per request id ([`Metering::claim`]); a billable call goes through
//! [`crate::metering`]: admitted against the daily quota before it runs, settled (durable usage
//! event or refund) before its result is returned. Before any of that, the call's tenant must hold
//! the tool's catalogue scope ([`scope_check`]), whatever the edge decided.

pub mod analytics;
pub mod catalogue;
pub mod failure;
pub mod projects;
pub mod schema;
pub mod scope_check;
pub mod tasks;
pub mod tenant;
pub mod usage;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolRequestParams, CallToolResponse};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use crate::metering::Metering;
use crate::store::ProjectStore;
use crate::telemetry::CallSpan;

pub use catalogue::{Annotations, ToolFacts, is_billable, scopes_supported, tool_scopes};
pub use failure::{DEFAULT_PAGE, ToolFailure};
pub use tenant::Tenant;

/// Every tool's record, one list per tool module: what [`ProjectTools`] serves (a test checks).
pub const TOOL_FACTS: &[&[ToolFacts]] = &[
    ProjectTools::PROJECT_TOOLS,
    ProjectTools::TASK_TOOLS,
    ProjectTools::ANALYTICS_TOOLS,
    ProjectTools::USAGE_TOOLS,
];

/// The MCP server: project, task and analytics tools over a [`ProjectStore`].
#[derive(Clone)]
pub struct ProjectTools {
    store: Arc<dyn ProjectStore>,
    metering: Metering,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for ProjectTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectTools")
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
}

impl ProjectTools {
    pub fn new(store: Arc<dyn ProjectStore>, metering: Metering) -> Self {
        Self {
            store,
            metering,
            tool_router: Self::router(),
        }
    }

    fn router() -> ToolRouter<Self> {
        let mut router = Self::project_router()
            + Self::task_router()
            + Self::analytics_router()
            + Self::usage_router();
        for route in router.map.values_mut() {
            schema::drop_integer_formats(&mut route.attr);
            route.attr.annotations =
                catalogue::facts(&route.attr.name).map(|facts| facts.annotations.to_rmcp());
        }
        router
    }

    /// Every tool this server offers, as listed by `tools/list`.
    pub fn catalogue() -> Vec<rmcp::model::Tool> {
        Self::router().list_all()
    }

    /// Runs the tool `request` names through the router.
    async fn run(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }
}

#[tool_handler(router = self.tool_router, name = "mcp-edge-backend", instructions = "Project tracker of your organisation. Projects: list_projects (paginated with nextCursor), get_project, create_project, archive_project (keeps it, hides it), delete_project (permanent, needs the exact name). Tasks of a project: list_tasks (filter by status or assignee, paginated), create_task, update_task (title, description, status todo/in_progress/done, priority, due date YYYY-MM-DD), assign_task (by email). get_analytics counts tasks per status, priority and assignee and finds overdue ones. get_usage tells how much of today's quota of billable calls is left. Every call only ever sees your organisation's data, narrowed to your team when your access is team-scoped.")]
impl ServerHandler for ProjectTools {
    /// Runs the tool; a billable one only within its tenant's daily quota (see [`crate::metering`]).
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let span = CallSpan::of_call(&context);
        let name = request.name.clone();
        let result = self.metered_call(request, context).await;
        if let Some(span) = span {
            span.record(&name, &result);
        }
        result
    }
}

impl ProjectTools {
    /// A tool call after its tenant's checks: scope, replay, quota; its usage event settled.
    async fn metered_call(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.clone();
        if !self.tool_router.has_route(&name) {
            return self.run(request, context).await; // rmcp's own answer to an unknown tool
        }
        let tenant = Tenant::of_call(&context)?;
        // The edge checked the scope already; checked again from the catalogue, so a wrong
        // `tool_scopes` in the edge's configuration opens no tool (nothing claimed, nothing billed).
        scope_check::require_scope(&tenant, &name)?;
        let call_id = context.id.to_string();
        self.metering.claim(&tenant, &call_id).await?;
        tenant.clone().hand_over(&mut context);
        if !is_billable(&name) {
            return self.run(request, context).await;
        }
        let admission = self.metering.admit(&tenant, &call_id).await?;
        let result = self.run(request, context).await;
        let succeeded = match &result {
            Ok(CallToolResponse::Complete(r)) => r.is_error != Some(true),
            _ => false,
        };
        // The usage event is durable before the result goes out; if it cannot be, no result does.
        self.metering
            .settle(admission, &tenant, &name, succeeded)
            .await?;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> rmcp::model::Tool {
        ProjectTools::catalogue()
            .into_iter()
            .find(|t| t.name == name)
            .expect(name)
    }

    fn input(name: &str) -> serde_json::Value {
        serde_json::Value::Object((*tool(name).input_schema).clone())
    }

    #[tokio::test]
    async fn instructions_name_every_tool() {
        let tools = ProjectTools::new(
            Arc::new(crate::store::MemoryStore::new()),
            Metering::in_memory(),
        );
        let instructions = tools.get_info().instructions.expect("instructions");
        let words: Vec<&str> = instructions
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        for facts in catalogue::all() {
            assert!(words.contains(&facts.name), "{}", facts.name);
        }
    }

    #[test]
    fn tools_have_descriptions_schemas_and_output_schemas() {
        let catalogue = ProjectTools::catalogue();
        assert_eq!(catalogue.len(), catalogue::all().count());
        for tool in catalogue {
            assert!(
                tool.description.as_deref().is_some_and(|d| d.len() > 80),
                "{}",
                tool.name
            );
            let output = tool.output_schema.as_ref().expect("output schema");
            assert_eq!(
                output.get("type"),
                Some(&serde_json::json!("object")),
                "{}",
                tool.name
            );
            let schema = serde_json::Value::Object((*tool.input_schema).clone());
            assert_eq!(schema["type"], "object", "{}", tool.name);
            // Flat: no references to shared definitions, and no unknown fields (no tenant_id).
            assert!(schema.get("$defs").is_none(), "{}: {schema}", tool.name);
            assert!(
                !schema.to_string().contains("$ref"),
                "{}: {schema}",
                tool.name
            );
            assert_eq!(schema["additionalProperties"], false, "{}", tool.name);
            assert!(
                schema["properties"].get("tenant_id").is_none(),
                "{}",
                tool.name
            );
            for (field, property) in schema["properties"].as_object().expect("properties") {
                assert!(property["description"].is_string(), "{}.{field}", tool.name);
            }
        }
    }

    #[test]
    fn input_schemas_carry_limits() {
        let create = input("create_task");
        let p = &create["properties"];
        assert_eq!(p["title"]["maxLength"], 200, "{create}");
        assert_eq!(p["title"]["minLength"], 1);
        assert_eq!(p["description"]["maxLength"], 5000);
        assert_eq!(p["assignee_email"]["format"], "email");
        assert_eq!(p["due_date"]["format"], "date");
        assert_eq!(p["due_date"]["pattern"], crate::store::DATE_PATTERN);
        assert_eq!(
            p["priority"]["enum"],
            serde_json::json!(["low", "medium", "high", "urgent"])
        );
        assert_eq!(p["priority"]["default"], "medium");
        assert_eq!(
            create["required"],
            serde_json::json!(["project_id", "title"])
        );

        let update = input("update_task");
        assert_eq!(
            update["properties"]["status"]["enum"],
            serde_json::json!(["todo", "in_progress", "done"]),
            "{update}"
        );
        assert_eq!(update["required"], serde_json::json!(["task_id"]));

        let list = input("list_tasks");
        assert_eq!(list["properties"]["limit"]["maximum"], 100, "{list}");
        assert_eq!(list["properties"]["limit"]["minimum"], 1);
        assert_eq!(
            list["properties"]["status"]["enum"],
            serde_json::json!(["todo", "in_progress", "done"])
        );

        let delete = input("delete_project");
        assert_eq!(
            delete["required"],
            serde_json::json!(["project_id", "confirm_name"])
        );
        assert_eq!(
            input("list_projects")["properties"]["include_archived"]["type"],
            "boolean"
        );
    }
}
