//! The MCP tools the backend serves, written with rmcp's `#[tool]` macros, one module per area
//! ([`projects`], [`tasks`], [`analytics`], [`usage`]); each tool's scope, billing and annotations
//! in one [`ToolFacts`] record beside its handler, collected in [`TOOL_FACTS`] ([`catalogue`]).
//!
//! The tracker is one [`ToolSource`] of the backend's: [`crate::sources::ToolServer`] checks the
//! scope, the call id and the quota of every call, then hands the verified [`Tenant`] to the tool.

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
use rmcp::{ErrorData, RoleServer};

use crate::metering::Metering;
use crate::sources::{SourceTool, ToolSource};
use crate::store::ProjectStore;

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
}

/// What the server's `instructions` say of the demo tools.
pub const INSTRUCTIONS: &str = "Project tracker of your organisation. Projects: list_projects (paginated with nextCursor), get_project, create_project, archive_project (keeps it, hides it), delete_project (permanent, needs the exact name). Tasks of a project: list_tasks (filter by status or assignee, paginated), create_task, update_task (title, description, status todo/in_progress/done, priority, due date YYYY-MM-DD), assign_task (by email). get_analytics counts tasks per status, priority and assignee and finds overdue ones. get_usage tells how much of today's quota of billable calls is left. Every call only ever sees your organisation's data, narrowed to your team when your access is team-scoped.";

/// The demo project tracker as one source among the backend's: its tools' records
/// ([`TOOL_FACTS`]), and a call run through rmcp's router with the verified tenant handed over
/// for each tool's `Tenant` parameter.
#[async_trait::async_trait]
impl ToolSource for ProjectTools {
    fn label(&self) -> &str {
        "demo"
    }

    fn instructions(&self) -> Option<String> {
        Some(INSTRUCTIONS.to_string())
    }

    fn tools(&self) -> Vec<SourceTool> {
        self.tool_router
            .list_all()
            .into_iter()
            .filter_map(|tool| {
                // A routed tool without a record is not served (fail closed; a test checks none is).
                let facts = catalogue::facts(&tool.name)?;
                Some(SourceTool {
                    tool,
                    scope: facts.scope.to_string(),
                    billable: facts.billable,
                })
            })
            .collect()
    }

    async fn call(
        &self,
        tenant: Tenant,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        tenant.hand_over(&mut context);
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
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
        let instructions = tools.instructions().expect("instructions");
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
