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

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use rmcp::model::{CallToolRequestParams, CallToolResponse, Tool};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use crate::metering::Metering;
use crate::openapi::{OpenApiSource, Warning};
use crate::store::ProjectStore;
use crate::tools::{ProjectTools, Tenant};

pub use config::{SourcesError, SourcesFile, load_sources};
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

/// The registry of every tool served with the sources file at `path` (the demo alone without
/// one): the demo's over `store` unless the file turns it off, then each OpenAPI source's. Each
/// operation left out is handed to `warn` with its source's name. Fails, naming the file, on an
/// invalid file or document or two tools of one name. Call it within a Tokio runtime when
/// `metering` needs one (the in-memory metering starts its delivery task on it).
pub fn build_registry(
    path: Option<&Path>,
    store: Arc<dyn ProjectStore>,
    metering: Metering,
    warn: &dyn Fn(&str, &Warning),
) -> anyhow::Result<ToolRegistry> {
    let Some(path) = path else {
        return Ok(ToolRegistry::demo(store, metering));
    };
    let (file, loaded) = load_sources(path).map_err(|e| match e {
        // A document's error names the document; say which sources file named it.
        SourcesError::Document(e) => anyhow::anyhow!("{}: {e}", path.display()),
        other => anyhow::anyhow!(other),
    })?;
    let mut sources: Vec<Arc<dyn ToolSource>> = Vec::new();
    if file.demo {
        sources.push(Arc::new(ProjectTools::new(store, metering)));
    }
    for source in loaded {
        for warning in &source.warnings {
            warn(&source.config.name, warning);
        }
        let name = source.config.name.clone();
        sources.push(Arc::new(
            OpenApiSource::new(source).with_context(|| format!("{}: {name}", path.display()))?,
        ));
    }
    ToolRegistry::new(sources).with_context(|| path.display().to_string())
}
