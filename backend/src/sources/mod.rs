//! Where the backend's tools come from (issue 22): one or more [`ToolSource`]s behind one MCP
//! server ([`ToolServer`]).
//!
//! A source lists tools (each with the scope a token needs and whether a call is billed) and runs
//! a call for a verified [`Tenant`]. The demo project tracker ([`crate::tools::ProjectTools`]) is
//! one source; every OpenAPI document named in the `--tool-sources` file is another
//! ([`crate::openapi::OpenApiSource`]). What applies to every tool whatever its source — the
//! backend's own scope check, exactly-once per call id, the daily quota and the durable usage
//! event — is done once, in [`ToolServer`], so a new source cannot skip it.

pub mod config;
pub mod registry;
pub mod server;

use async_trait::async_trait;
use rmcp::model::{CallToolRequestParams, CallToolResponse, Tool};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use crate::tools::Tenant;

pub use config::{SourcesFile, load_sources};
pub use registry::ToolRegistry;
pub use server::ToolServer;

/// One tool as a source offers it: its definition as `tools/list` shows it, and what the backend
/// enforces about it.
#[derive(Debug, Clone)]
pub struct SourceTool {
    pub tool: Tool,
    /// The OAuth scope a token needs to call it (the edge's `tool_scopes` entry).
    pub scope: String,
    /// Whether a successful call counts against the daily quota and is billed.
    pub billable: bool,
}

/// A provider of tools.
#[async_trait]
pub trait ToolSource: Send + Sync + 'static {
    /// What logs and start-up errors call this source (`demo`, `openapi:notes`).
    fn label(&self) -> &str;

    /// A sentence or two for the server's `instructions`, naming the tools.
    fn instructions(&self) -> Option<String>;

    /// Every tool the source serves.
    fn tools(&self) -> Vec<SourceTool>;

    /// Runs the tool `request` names for `tenant`. The scope, replay and quota checks are done;
    /// `tenant` is the only identity the source may act as.
    async fn call(
        &self,
        tenant: Tenant,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData>;
}
