//! Every source's tools under one name space: which source runs a tool, the scope it needs and
//! whether it is billed. Built once at start-up; two tools with one name refuse the start, naming
//! both sources, rather than one silently hiding the other.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mcp_edge_contract::scopes;
use rmcp::model::Tool;

use super::{SourceTool, ToolSource};
use crate::metering::Metering;
use crate::store::ProjectStore;
use crate::tools::ProjectTools;

/// What the server knows of one tool besides its definition.
#[derive(Debug, Clone)]
pub struct ToolEntry {
    /// Index into [`ToolRegistry::sources`].
    pub source: usize,
    pub scope: String,
    pub billable: bool,
}

/// The sources and their tools.
pub struct ToolRegistry {
    sources: Vec<Arc<dyn ToolSource>>,
    tools: Vec<Tool>,
    entries: HashMap<String, ToolEntry>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<&str> = self.sources.iter().map(|s| s.label()).collect();
        f.debug_struct("ToolRegistry")
            .field("sources", &labels)
            .field("tools", &self.tools.len())
            .finish()
    }
}

/// Two sources (or one twice) offer a tool of the same name.
#[derive(Debug, thiserror::Error)]
#[error(
    "the tool {name:?} is offered by {first} and by {second}; rename one (operations.<id>.name)"
)]
pub struct NameCollision {
    pub name: String,
    pub first: String,
    pub second: String,
}

impl ToolRegistry {
    /// The registry of `sources`, in their order (`tools/list` lists the first source's first).
    pub fn new(sources: Vec<Arc<dyn ToolSource>>) -> Result<Self, NameCollision> {
        let mut tools = Vec::new();
        let mut entries: HashMap<String, ToolEntry> = HashMap::new();
        for (index, source) in sources.iter().enumerate() {
            for SourceTool {
                tool,
                scope,
                billable,
            } in source.tools()
            {
                let name = tool.name.to_string();
                if let Some(earlier) = entries.get(&name) {
                    return Err(NameCollision {
                        name,
                        first: sources[earlier.source].label().to_string(),
                        second: source.label().to_string(),
                    });
                }
                entries.insert(
                    name,
                    ToolEntry {
                        source: index,
                        scope,
                        billable,
                    },
                );
                tools.push(tool);
            }
        }
        Ok(Self {
            sources,
            tools,
            entries,
        })
    }

    /// The demo project tracker alone, over `store`.
    pub fn demo(store: Arc<dyn ProjectStore>, metering: Metering) -> Self {
        Self::new(vec![Arc::new(ProjectTools::new(store, metering))])
            .expect("the demo's tool names are distinct (a test checks)")
    }

    /// Every tool, as `tools/list` answers.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The tool called `name`, if any source offers it.
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|tool| tool.name == name)
    }

    /// What the server enforces about the tool called `name`.
    pub fn entry(&self, name: &str) -> Option<&ToolEntry> {
        self.entries.get(name)
    }

    /// The source that runs `entry`'s tool.
    pub fn source(&self, entry: &ToolEntry) -> &Arc<dyn ToolSource> {
        &self.sources[entry.source]
    }

    /// The sources, in order.
    pub fn sources(&self) -> &[Arc<dyn ToolSource>] {
        &self.sources
    }

    /// Tool name → the scope it needs (sorted by name): the filter's `tool_scopes`.
    pub fn tool_scopes(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|(name, entry)| (name.clone(), entry.scope.clone()))
            .collect()
    }

    /// The contract's read, write and admin scopes, then every other scope a tool needs, sorted.
    pub fn scopes_supported(&self) -> Vec<String> {
        scopes_supported(self.entries.values().map(|e| e.scope.as_str()))
    }
}

/// The contract's three scopes, then the other ones of `needed`, sorted and once each.
pub fn scopes_supported<'a>(needed: impl Iterator<Item = &'a str>) -> Vec<String> {
    let standard = [scopes::READ, scopes::WRITE, scopes::ADMIN];
    let mut extra: Vec<&str> = needed.filter(|s| !standard.contains(s)).collect();
    extra.sort_unstable();
    extra.dedup();
    standard
        .into_iter()
        .chain(extra)
        .map(String::from)
        .collect()
}
