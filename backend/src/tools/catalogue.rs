//! The tool catalogue as data: per tool, the scope it needs (derived from its MCP annotations) and
//! whether a call is billable (for metering).
//!
//! The scope rule is ARCHITECTURE.md's: read-only → `mcp:read`, destructive → `mcp:admin`, any
//! other write → `mcp:write`. The filter gets the same map from its plugin config
//! (`tool_scopes` in envoy.yaml); `mcp-edge-backend --print-tool-scopes` prints it and
//! `tests/policy_in_sync.rs` keeps the two equal.

use std::collections::BTreeMap;

use super::ProjectTools;

pub const SCOPE_READ: &str = "mcp:read";
pub const SCOPE_WRITE: &str = "mcp:write";
pub const SCOPE_ADMIN: &str = "mcp:admin";

/// Whether a call of each tool is billable. Every tool of the catalogue must be named here exactly
/// once (a unit test checks); a tool missing from it counts as billable.
const BILLING: &[(&str, bool)] = &[
    ("archive_project", true),
    ("assign_task", true),
    ("create_project", true),
    ("create_task", true),
    ("delete_project", true),
    ("get_analytics", true),
    ("get_project", false),
    ("get_usage", false),
    ("list_projects", false),
    ("list_tasks", false),
    ("update_task", true),
];

/// One tool of the catalogue, as policy and metering see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSpec {
    pub name: String,
    /// The OAuth scope a token needs to call it.
    pub scope: &'static str,
    /// Whether a successful call counts towards metering.
    pub billable: bool,
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
}

/// The scope a tool needs, from its annotations. Missing hints take the MCP defaults (not
/// read-only, destructive), so an unannotated tool needs `mcp:admin`.
pub fn required_scope(tool: &rmcp::model::Tool) -> &'static str {
    let annotations = tool.annotations.as_ref();
    let read_only = annotations.and_then(|a| a.read_only_hint).unwrap_or(false);
    let destructive = annotations.and_then(|a| a.destructive_hint).unwrap_or(true);
    if read_only {
        SCOPE_READ
    } else if destructive {
        SCOPE_ADMIN
    } else {
        SCOPE_WRITE
    }
}

/// Whether a call of `name` is billable ([`BILLING`]; unknown tools are).
pub fn is_billable(name: &str) -> bool {
    BILLING
        .iter()
        .find(|(tool, _)| *tool == name)
        .is_none_or(|(_, billable)| *billable)
}

/// Every tool of the catalogue, sorted by name.
pub fn tool_specs() -> Vec<ToolSpec> {
    let mut specs: Vec<ToolSpec> = ProjectTools::catalogue()
        .iter()
        .map(|tool| {
            let a = tool.annotations.as_ref();
            ToolSpec {
                name: tool.name.to_string(),
                scope: required_scope(tool),
                billable: is_billable(&tool.name),
                read_only: a.and_then(|a| a.read_only_hint).unwrap_or(false),
                destructive: a.and_then(|a| a.destructive_hint).unwrap_or(true),
                idempotent: a.and_then(|a| a.idempotent_hint).unwrap_or(false),
            }
        })
        .collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    specs
}

/// Tool name → required scope, for every tool in the catalogue (sorted by name).
pub fn tool_scopes() -> BTreeMap<String, &'static str> {
    tool_specs()
        .into_iter()
        .map(|spec| (spec.name, spec.scope))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_map() {
        let expected: BTreeMap<String, &str> = [
            ("archive_project", SCOPE_WRITE),
            ("assign_task", SCOPE_WRITE),
            ("create_project", SCOPE_WRITE),
            ("create_task", SCOPE_WRITE),
            ("delete_project", SCOPE_ADMIN),
            ("get_analytics", SCOPE_READ),
            ("get_project", SCOPE_READ),
            ("get_usage", SCOPE_READ),
            ("list_projects", SCOPE_READ),
            ("list_tasks", SCOPE_READ),
            ("update_task", SCOPE_WRITE),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(tool_scopes(), expected);
    }

    #[test]
    fn billing_table_names_every_tool_once() {
        let mut billing: Vec<&str> = BILLING.iter().map(|(name, _)| *name).collect();
        billing.sort_unstable();
        billing.dedup();
        assert_eq!(billing.len(), BILLING.len(), "a tool is named twice");
        let catalogue: Vec<String> = tool_specs().into_iter().map(|s| s.name).collect();
        assert_eq!(billing, catalogue);
        let billable: Vec<String> = tool_specs()
            .into_iter()
            .filter(|s| s.billable)
            .map(|s| s.name)
            .collect();
        assert_eq!(
            billable,
            [
                "archive_project",
                "assign_task",
                "create_project",
                "create_task",
                "delete_project",
                "get_analytics",
                "update_task"
            ]
        );
        assert!(is_billable("some_future_tool"));
    }

    #[test]
    fn every_tool_is_fully_annotated_and_closed_world() {
        for tool in ProjectTools::catalogue() {
            let a = tool.annotations.as_ref().expect("annotations");
            assert!(a.title.is_some(), "{}", tool.name);
            assert!(a.read_only_hint.is_some(), "{}", tool.name);
            assert!(a.destructive_hint.is_some(), "{}", tool.name);
            assert!(a.idempotent_hint.is_some(), "{}", tool.name);
            assert_eq!(a.open_world_hint, Some(false), "{}", tool.name);
            if a.read_only_hint == Some(true) {
                assert_eq!(a.destructive_hint, Some(false), "{}", tool.name);
                assert_eq!(a.idempotent_hint, Some(true), "{}", tool.name);
            }
        }
        let by_name = |n: &str| tool_specs().into_iter().find(|s| s.name == n).expect(n);
        assert!(by_name("delete_project").destructive);
        for idempotent in ["archive_project", "update_task", "assign_task"] {
            let s = by_name(idempotent);
            assert!(
                s.idempotent && !s.destructive && !s.read_only,
                "{idempotent}"
            );
        }
        for not_idempotent in ["create_project", "create_task", "delete_project"] {
            assert!(!by_name(not_idempotent).idempotent, "{not_idempotent}");
        }
    }

    #[test]
    fn unannotated_tools_need_admin() {
        let tool =
            rmcp::model::Tool::new_with_raw("x", None, std::sync::Arc::new(serde_json::Map::new()));
        assert_eq!(required_scope(&tool), SCOPE_ADMIN);
    }
}
