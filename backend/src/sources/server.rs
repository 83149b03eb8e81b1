//! The MCP server rmcp serves: every source's tools, and the checks every call goes through
//! whatever its source.
//!
//! A `tools/call` finds its tool in the [`ToolRegistry`], takes its verified tenant once
//! ([`Tenant::of_call`]), checks the tenant holds the tool's scope ([`require_scope`]: the edge's
//! `tool_scopes` may be wrong or stale), claims the call id (a call runs at most once,
//! [`Metering::claim`]), and for a billable tool admits it against the daily quota before it runs
//! and settles its usage event (durable, or refunded) before its result is returned.

use std::sync::Arc;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ResultType, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use super::ToolRegistry;
use crate::metering::Metering;
use crate::telemetry::CallSpan;
use crate::tools::Tenant;
use crate::tools::scope_check::require_scope;

/// The name the server gives itself in `initialize`.
pub const SERVER_NAME: &str = "mcp-edge-backend";

/// The MCP server: the registry's tools, metered.
#[derive(Clone, Debug)]
pub struct ToolServer {
    registry: Arc<ToolRegistry>,
    metering: Metering,
    instructions: Arc<str>,
}

impl ToolServer {
    pub fn new(registry: Arc<ToolRegistry>, metering: Metering) -> Self {
        let instructions = registry
            .sources()
            .iter()
            .filter_map(|source| source.instructions())
            .collect::<Vec<_>>()
            .join("\n\n");
        Self {
            registry,
            metering,
            instructions: instructions.into(),
        }
    }

    /// A tool call after its tenant's checks: scope, replay, quota; its usage event settled.
    async fn metered_call(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let Some(entry) = self.registry.entry(&name) else {
            return Err(ErrorData::invalid_params(
                format!("tool not found: this server has no tool named {name:?}"),
                None,
            ));
        };
        let tenant = Tenant::of_call(&context)?;
        // The edge checked the scope already; checked again here, so a wrong `tool_scopes` in the
        // edge's configuration opens no tool (nothing claimed, nothing billed).
        require_scope(&tenant, &name, &entry.scope)?;
        let call_id = context.id.to_string();
        self.metering.claim(&tenant, &call_id).await?;
        let source = self.registry.source(entry);
        if !entry.billable {
            return source.call(tenant, request, context).await;
        }
        let admission = self.metering.admit(&tenant, &call_id).await?;
        let result = source.call(tenant.clone(), request, context).await;
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

impl ServerHandler for ToolServer {
    fn get_info(&self) -> ServerConfig {
        let config = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(rmcp::model::Implementation::new(
                SERVER_NAME,
                env!("CARGO_PKG_VERSION"),
            ));
        if self.instructions.is_empty() {
            config
        } else {
            config.with_instructions(self.instructions.to_string())
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let cache_hints = context
            .protocol_version()
            .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28);
        Ok(ListToolsResult {
            result_type: Some(ResultType::COMPLETE),
            tools: self.registry.tools().to_vec(),
            meta: None,
            next_cursor: None,
            ttl_ms: cache_hints.then_some(0),
            cache_scope: cache_hints.then_some(CacheScope::Public),
        })
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.registry.tool(name).cloned()
    }

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
