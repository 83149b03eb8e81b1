//! The rule that turns a third-party MCP server's `tools/list` into the edge's `tool_scopes`
//! (`cargo xtask tool-scopes`), and the comparison `--check` reports. Pure: no I/O.
//!
//! The rule (docs/third-party-servers.md, ARCHITECTURE.md "Token claims"): a read-only tool needs
//! `mcp:read`, a destructive one `mcp:admin`, any other `mcp:write`. The hints are read with the
//! defaults of the MCP specification's `ToolAnnotations` (modelcontextprotocol/modelcontextprotocol,
//! schema/2025-11-25/schema.ts): `readOnlyHint` "Default: false"; `destructiveHint` "Default: true",
//! "meaningful only when `readOnlyHint == false`". So a tool without annotations, or with a hint that is not a
//! JSON boolean, needs `mcp:admin`: when the server says nothing the edge assumes the worst. The
//! same schema warns that annotations are hints a client must not trust from an untrusted server;
//! the generated map is a starting policy to review (the command prints every change it makes).

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use mcp_edge_contract::scopes;
use serde_json::Value;

/// What the rule reads of one listed tool: its name and its two hints as the server sent them
/// (`None`: absent, or not a JSON boolean).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolHints {
    pub name: String,
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
}

impl ToolHints {
    /// One entry of a `ListToolsResult`'s `tools`. Fails on an entry without a non-empty string
    /// `name` (the edge could not name it in a policy).
    pub fn from_listed(tool: &Value) -> Result<Self> {
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .with_context(|| format!("a listed tool has no name: {tool}"))?;
        let hint = |key: &str| tool.get("annotations")?.get(key)?.as_bool();
        Ok(Self {
            name: name.to_string(),
            read_only: hint("readOnlyHint"),
            destructive: hint("destructiveHint"),
        })
    }

    /// The scope a token needs to call this tool.
    pub fn required_scope(&self) -> &'static str {
        required_scope(self.read_only, self.destructive)
    }
}

/// The rule, with the specification's defaults for absent hints: read-only → `mcp:read`,
/// destructive → `mcp:admin`, anything else → `mcp:write`.
pub fn required_scope(read_only: Option<bool>, destructive: Option<bool>) -> &'static str {
    if read_only.unwrap_or(false) {
        scopes::READ
    } else if destructive.unwrap_or(true) {
        scopes::ADMIN
    } else {
        scopes::WRITE
    }
}

/// Tool name → required scope for every listed tool. Fails when a name is listed twice (two
/// tools the edge could not tell apart).
pub fn tool_scopes(tools: &[ToolHints]) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for tool in tools {
        if map
            .insert(tool.name.clone(), tool.required_scope().to_string())
            .is_some()
        {
            bail!("the server lists the tool {:?} twice", tool.name);
        }
    }
    Ok(map)
}

/// `supported` with every scope of `needed` it lacks added at the end, in `needed`'s order (the
/// filter refuses a `tool_scopes` that names a scope missing from `prm.scopes_supported`).
pub fn scopes_supported_with<'a>(
    supported: &[String],
    needed: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let mut out = supported.to_vec();
    for scope in needed {
        if !out.contains(scope) {
            out.push(scope.clone());
        }
    }
    out
}

/// Where a configuration's `tool_scopes` and a server's tools part ways.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Tools the server lists that the configuration does not name, with the scope they need.
    pub missing: Vec<(String, String)>,
    /// Tools the configuration names that the server does not list, with their configured scope.
    pub extra: Vec<(String, String)>,
    /// Tools in both with another scope: (name, configured, what the rule says).
    pub changed: Vec<(String, String, String)>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }

    /// One line per difference, missing first, then extra, then changed, each sorted by name.
    pub fn lines(&self) -> Vec<String> {
        let missing = self.missing.iter().map(|(tool, scope)| {
            format!("missing: {tool} ({scope}): the server lists it, the configuration does not")
        });
        let extra = self.extra.iter().map(|(tool, scope)| {
            format!(
                "extra: {tool} ({scope}): the configuration names it, the server does not list it"
            )
        });
        let changed = self.changed.iter().map(|(tool, configured, rule)| {
            format!(
                "scope: {tool} is {configured} in the configuration, its annotations say {rule}"
            )
        });
        missing.chain(extra).chain(changed).collect()
    }
}

impl Drift {
    /// The same differences as changes written into the configuration: added, removed, changed.
    pub fn change_lines(&self) -> Vec<String> {
        let added = (self.missing.iter()).map(|(tool, scope)| format!("added: {tool} ({scope})"));
        let removed = (self.extra.iter()).map(|(tool, scope)| format!("removed: {tool} ({scope})"));
        let changed = (self.changed.iter())
            .map(|(tool, was, now)| format!("changed: {tool} from {was} to {now}"));
        added.chain(removed).chain(changed).collect()
    }
}

/// How `configured` (a configuration's `tool_scopes`) differs from `generated` (the server's).
pub fn drift(configured: &BTreeMap<String, String>, generated: &BTreeMap<String, String>) -> Drift {
    let mut drift = Drift::default();
    for (tool, scope) in generated {
        match configured.get(tool) {
            None => drift.missing.push((tool.clone(), scope.clone())),
            Some(have) if have != scope => {
                drift
                    .changed
                    .push((tool.clone(), have.clone(), scope.clone()))
            }
            Some(_) => {}
        }
    }
    for (tool, scope) in configured {
        if !generated.contains_key(tool) {
            drift.extra.push((tool.clone(), scope.clone()));
        }
    }
    drift
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn hints(tool: Value) -> ToolHints {
        ToolHints::from_listed(&tool).expect("a named tool")
    }

    /// A tool → scope map from pairs.
    pub(crate) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_rule_with_the_specification_defaults() {
        let cases = [
            // (readOnlyHint, destructiveHint) → scope
            ((Some(true), None), scopes::READ),
            ((Some(true), Some(true)), scopes::READ),
            ((Some(true), Some(false)), scopes::READ),
            ((Some(false), Some(false)), scopes::WRITE),
            ((None, Some(false)), scopes::WRITE),
            ((Some(false), Some(true)), scopes::ADMIN),
            ((Some(false), None), scopes::ADMIN),
            ((None, Some(true)), scopes::ADMIN),
            ((None, None), scopes::ADMIN),
        ];
        for ((read_only, destructive), scope) in cases {
            assert_eq!(
                required_scope(read_only, destructive),
                scope,
                "{read_only:?} {destructive:?}"
            );
        }
    }

    #[test]
    fn listed_tools_are_read_fail_safe() {
        let read = hints(json!({"name": "r", "annotations": {"readOnlyHint": true}}));
        assert_eq!(read.required_scope(), scopes::READ);
        let write = hints(json!({"name": "w", "annotations": {"destructiveHint": false}}));
        assert_eq!(write.required_scope(), scopes::WRITE);
        // No annotations, empty annotations, or hints that are not booleans: the defaults.
        for tool in [
            json!({"name": "a"}),
            json!({"name": "a", "annotations": {}}),
            json!({"name": "a", "annotations": null}),
            json!({"name": "a", "annotations": {"readOnlyHint": "true", "destructiveHint": 0}}),
        ] {
            assert_eq!(
                hints(tool.clone()).required_scope(),
                scopes::ADMIN,
                "{tool}"
            );
        }
        for bad in [
            json!({}),
            json!({"name": ""}),
            json!({"name": 3}),
            json!("x"),
        ] {
            assert!(ToolHints::from_listed(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_map_of_every_tool_and_no_name_twice() {
        let tools = [
            hints(json!({"name": "b", "annotations": {"readOnlyHint": true}})),
            hints(json!({"name": "a"})),
        ];
        assert_eq!(
            tool_scopes(&tools).expect("distinct"),
            map(&[("a", scopes::ADMIN), ("b", scopes::READ)])
        );
        let twice = [hints(json!({"name": "a"})), hints(json!({"name": "a"}))];
        let err = tool_scopes(&twice).expect_err("twice").to_string();
        assert!(err.contains("\"a\" twice"), "{err}");
    }

    #[test]
    fn scopes_supported_gains_only_what_it_lacks() {
        let supported = vec!["mcp:read".to_string(), "mcp:billing".to_string()];
        let needed = map(&[("a", "mcp:admin"), ("b", "mcp:read"), ("c", "mcp:admin")]);
        assert_eq!(
            scopes_supported_with(&supported, needed.values()),
            ["mcp:read", "mcp:billing", "mcp:admin"]
        );
    }

    #[test]
    fn drift_names_missing_extra_and_changed_tools() {
        let configured = map(&[
            ("gone", "mcp:read"),
            ("same", "mcp:read"),
            ("moved", "mcp:read"),
        ]);
        let generated = map(&[
            ("new", "mcp:write"),
            ("same", "mcp:read"),
            ("moved", "mcp:admin"),
        ]);
        let d = drift(&configured, &generated);
        assert_eq!(
            d.lines(),
            [
                "missing: new (mcp:write): the server lists it, the configuration does not",
                "extra: gone (mcp:read): the configuration names it, the server does not list it",
                "scope: moved is mcp:read in the configuration, its annotations say mcp:admin",
            ]
        );
        assert_eq!(
            d.change_lines(),
            [
                "added: new (mcp:write)",
                "removed: gone (mcp:read)",
                "changed: moved from mcp:read to mcp:admin",
            ]
        );
        assert!(!d.is_empty());
        assert!(drift(&generated, &generated).is_empty());
    }
}
