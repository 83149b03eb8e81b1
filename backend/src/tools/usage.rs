//! The `get_usage` tool: how much of today's daily quota the caller's organisation has left.

use mcp_edge_contract::scopes;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{Json, tool, tool_router};
use serde::Deserialize;

use super::ProjectTools;
use super::catalogue::{Annotations, ToolFacts};
use super::failure::ToolFailure;
use super::tenant::Tenant;
use crate::metering::UsageToday;

/// Input of `get_usage`: nothing (the organisation is the caller's).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = empty_properties)]
pub struct GetUsageInput {}

/// Gives the schema of an input without fields an explicit empty `properties` object.
fn empty_properties(schema: &mut schemars::Schema) {
    if schema.get("properties").is_none() {
        schema.insert("properties".into(), serde_json::json!({}));
    }
}

#[tool_router(router = usage_router, vis = "pub(super)")]
impl ProjectTools {
    /// The records of this module's tools.
    pub(super) const USAGE_TOOLS: &[ToolFacts] = &[Self::GET_USAGE];

    const GET_USAGE: ToolFacts = ToolFacts {
        name: "get_usage",
        scope: scopes::READ,
        billable: false,
        annotations: Annotations::read_only("Get today's usage"),
    };

    #[tool(
        description = "Show how much of today's quota of billable tool calls your organisation has \
left. Billable: create/update/assign/archive/delete tools and get_analytics; reading projects and \
tasks and this tool are free. Returns {tier, limit (null = unlimited), used, remaining (null = \
unlimited), resetsAt (next midnight UTC, RFC 3339), resetsInSeconds}. Call it before a long run of \
changes, or when a call fails with a quota error."
    )]
    async fn get_usage(
        &self,
        Parameters(GetUsageInput {}): Parameters<GetUsageInput>,
        tenant: Tenant,
    ) -> Result<Json<UsageToday>, ToolFailure> {
        self.metering
            .usage(&tenant)
            .await
            .map(Json)
            .map_err(ToolFailure::Protocol)
    }
}
