//! The `get_usage` tool: how much of today's daily quota the caller's organisation has left.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{Json, RoleServer, tool, tool_router};
use serde::Deserialize;

use super::ProjectTools;
use super::failure::{ToolFailure, tenant_of};
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
    #[tool(
        description = "Show how much of today's quota of billable tool calls your organisation has \
left. Billable: create/update/assign/archive/delete tools and get_analytics; reading projects and \
tasks and this tool are free. Returns {tier, limit (null = unlimited), used, remaining (null = \
unlimited), resetsAt (next midnight UTC, RFC 3339), resetsInSeconds}. Call it before a long run of \
changes, or when a call fails with a quota error.",
        annotations(
            title = "Get today's usage",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_usage(
        &self,
        Parameters(GetUsageInput {}): Parameters<GetUsageInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<UsageToday>, ToolFailure> {
        let tenant = tenant_of(&ctx)?;
        self.metering
            .usage(&tenant)
            .await
            .map(Json)
            .map_err(ToolFailure::Protocol)
    }
}
