//! The analytics tool: task counts of one project or of everything the caller can see.

use mcp_edge_contract::scopes;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{Json, tool, tool_router};
use serde::{Deserialize, Serialize};

use super::ProjectTools;
use super::catalogue::{Annotations, ToolFacts};
use super::failure::ToolFailure;
use super::schema::drop_null_defaults;
use super::tenant::Tenant;
use crate::store::{TaskCounts, counts_from};

/// Input of `get_analytics`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = drop_null_defaults)]
pub struct GetAnalyticsInput {
    /// Count only this project's tasks (archived or not). Omit it to count the tasks of every
    /// active (not archived) project you can see.
    #[serde(default)]
    #[schemars(with = "String", length(max = 64))]
    pub project_id: Option<String>,
}

/// Result of `get_analytics`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsResult {
    /// The project counted, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(flatten)]
    pub counts: TaskCounts,
}

#[tool_router(router = analytics_router, vis = "pub(super)")]
impl ProjectTools {
    /// The records of this module's tools.
    pub(super) const ANALYTICS_TOOLS: &[ToolFacts] = &[Self::GET_ANALYTICS];

    const GET_ANALYTICS: ToolFacts = ToolFacts {
        name: "get_analytics",
        scope: scopes::READ,
        billable: true,
        annotations: Annotations::read_only("Get task analytics"),
    };

    #[tool(
        description = "Summarise tasks: counts per status and per priority, how many are overdue \
(not done and due before today, UTC), and per assignee (total, open, overdue). Use it for status \
reports and workload questions instead of paging through list_tasks. Give project_id for one \
project, or omit it for all active projects you can see. Returns {projectId?, projectCount, \
taskCount, byStatus: {todo, in_progress, done}, byPriority: {low, medium, high, urgent}, overdue, \
byAssignee: {<email>: {total, open, overdue}}, unassigned, asOf}."
    )]
    async fn get_analytics(
        &self,
        Parameters(input): Parameters<GetAnalyticsInput>,
        tenant: Tenant,
    ) -> Result<Json<AnalyticsResult>, ToolFailure> {
        let (projects, counters) = self
            .store
            .counters_in_scope(&tenant, input.project_id.as_deref())
            .await?;
        let today = chrono::Utc::now().date_naive();
        Ok(Json(AnalyticsResult {
            project_id: input.project_id,
            counts: counts_from(projects, &counters, today),
        }))
    }
}
