//! The tool catalogue as data: one [`ToolFacts`] record per tool, declared next to its handler
//! (`projects.rs`, `tasks.rs`, `analytics.rs`, `usage.rs`) and collected in
//! [`TOOL_FACTS`](super::TOOL_FACTS).
//!
//! The record is the only place a tool's scope, billing and annotations are written down: the
//! router takes the annotations `tools/list` shows from it, metering asks it what is billable, and
//! `cargo xtask sync-config` writes the filter's `tool_scopes` (envoy.yaml, docker/envoy.yaml) and
//! the scopes the authorization server grants (authz/directory.json) from it. A tool's scope is any
//! scope string (`mcp:billing` as well as the contract's three), never derived from annotations.

use std::collections::BTreeMap;

use mcp_edge_contract::scopes;
use rmcp::model::ToolAnnotations;

use super::TOOL_FACTS;

/// Everything the edge, metering and clients need to know about one tool besides its schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolFacts {
    /// The tool's name (its handler function's name).
    pub name: &'static str,
    /// The OAuth scope a token needs to call it.
    pub scope: &'static str,
    /// Whether a successful call counts against the daily quota and is billed.
    pub billable: bool,
    /// What clients may assume about it (the MCP tool annotations).
    pub annotations: Annotations,
}

/// A tool's MCP annotations, every hint explicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Annotations {
    pub title: &'static str,
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

impl Annotations {
    /// Reads only; repeating it changes nothing.
    pub const fn read_only(title: &'static str) -> Self {
        Self::closed(title, true, false, true)
    }

    /// Adds something new on each call.
    pub const fn additive(title: &'static str) -> Self {
        Self::closed(title, false, false, false)
    }

    /// Changes something; repeating the same call changes nothing more.
    pub const fn idempotent_write(title: &'static str) -> Self {
        Self::closed(title, false, false, true)
    }

    /// Removes something for good.
    pub const fn destructive(title: &'static str) -> Self {
        Self::closed(title, false, true, false)
    }

    /// Touches nothing outside the tenant's own data.
    const fn closed(
        title: &'static str,
        read_only: bool,
        destructive: bool,
        idempotent: bool,
    ) -> Self {
        Self {
            title,
            read_only,
            destructive,
            idempotent,
            open_world: false,
        }
    }

    /// As rmcp carries them in a `Tool`.
    pub fn to_rmcp(self) -> ToolAnnotations {
        ToolAnnotations::from_raw(
            Some(self.title.to_owned()),
            Some(self.read_only),
            Some(self.destructive),
            Some(self.idempotent),
            Some(self.open_world),
        )
    }
}

/// Every tool's record.
pub fn all() -> impl Iterator<Item = &'static ToolFacts> {
    TOOL_FACTS.iter().flat_map(|module| module.iter())
}

/// The record of the tool called `name`.
pub fn facts(name: &str) -> Option<&'static ToolFacts> {
    all().find(|facts| facts.name == name)
}

/// Whether a call of `name` is billable (a tool without a record is).
pub fn is_billable(name: &str) -> bool {
    facts(name).is_none_or(|facts| facts.billable)
}

/// Tool name → the scope it needs, for every tool (sorted by name): the filter's `tool_scopes`.
pub fn tool_scopes() -> BTreeMap<&'static str, &'static str> {
    all().map(|facts| (facts.name, facts.scope)).collect()
}

/// The scopes this resource knows: the contract's read, write and admin, then every other scope a
/// tool needs, sorted. The protected resource metadata and the authorization server offer these.
pub fn scopes_supported() -> Vec<&'static str> {
    let standard = [scopes::READ, scopes::WRITE, scopes::ADMIN];
    let mut extra: Vec<&'static str> = all()
        .map(|facts| facts.scope)
        .filter(|scope| !standard.contains(scope))
        .collect();
    extra.sort_unstable();
    extra.dedup();
    standard.into_iter().chain(extra).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::ProjectTools;

    #[test]
    fn every_routed_tool_has_exactly_one_record() {
        let mut routed: Vec<String> = ProjectTools::catalogue()
            .into_iter()
            .map(|tool| tool.name.to_string())
            .collect();
        routed.sort_unstable();
        let mut recorded: Vec<&str> = all().map(|facts| facts.name).collect();
        recorded.sort_unstable();
        let before = recorded.len();
        recorded.dedup();
        assert_eq!(recorded.len(), before, "a tool has two records");
        assert_eq!(recorded, routed);
    }

    #[test]
    fn listed_annotations_are_the_records() {
        for tool in ProjectTools::catalogue() {
            let facts = facts(&tool.name).expect("record");
            assert_eq!(
                tool.annotations,
                Some(facts.annotations.to_rmcp()),
                "{}",
                tool.name
            );
        }
    }

    #[test]
    fn annotations_agree_with_the_scope() {
        for facts in all() {
            let a = facts.annotations;
            assert!(!facts.scope.is_empty(), "{}", facts.name);
            assert!(!a.title.is_empty(), "{}", facts.name);
            if a.read_only {
                assert!(!a.destructive && a.idempotent, "{}", facts.name);
            }
            // The contract's three scopes follow the annotations (read-only → read, destructive →
            // admin, other writes → write); any other scope is the record's own choice.
            let rule = if a.read_only {
                scopes::READ
            } else if a.destructive {
                scopes::ADMIN
            } else {
                scopes::WRITE
            };
            if [scopes::READ, scopes::WRITE, scopes::ADMIN].contains(&facts.scope) {
                assert_eq!(facts.scope, rule, "{}", facts.name);
            }
        }
    }

    #[test]
    fn scope_map_and_billing_come_from_the_records() {
        let map = tool_scopes();
        assert_eq!(map.len(), all().count());
        for facts in all() {
            assert_eq!(map[facts.name], facts.scope);
            assert_eq!(is_billable(facts.name), facts.billable, "{}", facts.name);
        }
        assert!(is_billable("some_future_tool"));
        assert_eq!(
            scopes_supported()[..3],
            [scopes::READ, scopes::WRITE, scopes::ADMIN]
        );
        for scope in map.values() {
            assert!(scopes_supported().contains(scope), "{scope}");
        }
    }
}
