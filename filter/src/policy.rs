//! `ToolPolicy`: which JSON-RPC messages a TenantContext may send.
//!
//! - `tools/call`: the tool must be known to the policy (its required scope comes from the plugin
//!   configuration's `tool_scopes`, kept in step with the backend's catalogue) and, when the token
//!   has `allowed_tools`, be listed there; the token must hold the tool's scope.
//! - every other method of the MCP versions the edge accepts has a default ([`DEFAULT_METHODS`],
//!   reviewed in docs/protocol.md): the lifecycle (`initialize`, `server/discover`, `ping`),
//!   `tools/list`, `logging/setLevel`, the tasks methods, notifications and responses need a valid
//!   token; `resources/*`, `prompts/*` and `completion/complete` need `mcp:read`;
//!   `subscriptions/listen` needs `mcp:read` when it subscribes to resources.
//! - `method_scopes` in the configuration overrides a default (to require a scope) and adds
//!   methods; any other method is denied.
//!
//! A denied message denies the whole payload (a batch is judged as one).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::jsonrpc::{Message, Payload};
use crate::tenant::TenantContext;

pub const READ_SCOPE: &str = mcp_edge_contract::scopes::READ;

/// Methods served by default (besides `tools/call`, `resources/*`, `prompts/*` and
/// notifications) → the scope they need (`None`: a valid token is enough).
pub const DEFAULT_METHODS: &[(&str, Option<&str>)] = &[
    // Lifecycle: what a client sends first (`server/discover` from 2026-07-28 on).
    ("initialize", None),
    ("server/discover", None),
    ("ping", None),
    // The answer is filtered to the tools this token may call.
    ("tools/list", None),
    // The level of log messages sent back to this caller (2025-03-26 to 2025-11-25).
    ("logging/setLevel", None),
    // Completes prompt or resource-template arguments: reads what prompts and resources do.
    ("completion/complete", Some(READ_SCOPE)),
    // Change notifications (2026-07-28); resource subscriptions need `mcp:read` (see below).
    ("subscriptions/listen", None),
    // Tasks (2025-11-25 core, then the tasks extension): the `tools/call` that created a task was
    // authorized; the server binds tasks to their caller.
    ("tasks/get", None),
    ("tasks/result", None),
    ("tasks/list", None),
    ("tasks/cancel", None),
    ("tasks/update", None),
];

/// Whether a `subscriptions/listen` asks for `notifications/resources/updated` of some URIs.
fn listens_to_resources(m: &Message) -> bool {
    m.params()
        .and_then(|p| p.get("notifications"))
        .and_then(|n| n.get("resourceSubscriptions"))
        .and_then(Value::as_array)
        .is_some_and(|uris| !uris.is_empty())
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolPolicy {
    /// tool name → the scope it needs.
    pub tool_scopes: BTreeMap<String, String>,
    /// extra method → the scope it needs (`None`: a valid token is enough).
    pub method_scopes: BTreeMap<String, Option<String>>,
}

/// Why a message is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The tool is unknown or not in the token's `allowed_tools`: another token would not help.
    ToolNotAllowed { tool: String, unknown: bool },
    /// `tools/call` without a tool name.
    MissingToolName,
    /// The method is not served at the edge.
    MethodNotAllowed { method: String },
    /// The token lacks a scope: a token with it would help (step-up).
    InsufficientScope { scope: String },
}

/// The verdict on a whole payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadVerdict {
    Allow,
    /// 403 without a challenge; `refusals` lists each refused message with its id.
    Forbidden {
        refusals: Vec<(Option<Value>, Refusal)>,
    },
    /// 403 with the `insufficient_scope` challenge naming every scope in `scopes`.
    InsufficientScope {
        scopes: BTreeSet<String>,
        ids: Vec<Option<Value>>,
    },
}

impl ToolPolicy {
    /// Whether this token may call `tool` (used to filter `tools/list` too).
    pub fn may_call(&self, tenant: &TenantContext, tool: &str) -> bool {
        self.tool_allowed(tenant, tool).is_ok()
            && self
                .tool_scopes
                .get(tool)
                .is_some_and(|s| tenant.has_scope(s))
    }

    fn tool_allowed(&self, tenant: &TenantContext, tool: &str) -> Result<&str, Refusal> {
        let Some(scope) = self.tool_scopes.get(tool) else {
            return Err(Refusal::ToolNotAllowed {
                tool: tool.to_string(),
                unknown: true,
            });
        };
        if let Some(allowed) = &tenant.allowed_tools
            && !allowed.iter().any(|t| t == tool)
        {
            return Err(Refusal::ToolNotAllowed {
                tool: tool.to_string(),
                unknown: false,
            });
        }
        Ok(scope)
    }

    /// The scope a message needs, or why it is refused whatever the scopes.
    fn required_scope<'a>(
        &'a self,
        tenant: &TenantContext,
        m: &'a Message,
    ) -> Result<Option<&'a str>, Refusal> {
        let Some(method) = m.method() else {
            return Ok(None); // a response to a server request
        };
        if method == "tools/call" {
            let tool = m.tool_name().ok_or(Refusal::MissingToolName)?;
            return self.tool_allowed(tenant, tool).map(Some);
        }
        if let Some(scope) = self.method_scopes.get(method) {
            return Ok(scope.as_deref());
        }
        if let Some((_, scope)) = DEFAULT_METHODS.iter().find(|(name, _)| *name == method) {
            return Ok(match *scope {
                None if method == "subscriptions/listen" && listens_to_resources(m) => {
                    Some(READ_SCOPE)
                }
                scope => scope,
            });
        }
        match method {
            _ if method.starts_with("notifications/") => Ok(None),
            _ if method.starts_with("resources/") || method.starts_with("prompts/") => {
                Ok(Some(READ_SCOPE))
            }
            _ => Err(Refusal::MethodNotAllowed {
                method: method.to_string(),
            }),
        }
    }

    /// Judges every message of a payload.
    pub fn judge(&self, tenant: &TenantContext, payload: &Payload) -> PayloadVerdict {
        let mut refusals = Vec::new();
        let mut missing = BTreeSet::new();
        let mut missing_ids = Vec::new();
        for m in payload.messages() {
            match self.required_scope(tenant, m) {
                Err(r) => refusals.push((m.id().cloned(), r)),
                Ok(Some(scope)) if !tenant.has_scope(scope) => {
                    missing.insert(scope.to_string());
                    missing_ids.push(m.id().cloned());
                }
                Ok(_) => {}
            }
        }
        if !refusals.is_empty() {
            PayloadVerdict::Forbidden { refusals }
        } else if !missing.is_empty() {
            PayloadVerdict::InsufficientScope {
                scopes: missing,
                ids: missing_ids,
            }
        } else {
            PayloadVerdict::Allow
        }
    }
}

impl Refusal {
    /// A sentence an agent can repeat to a person.
    pub fn message(&self) -> String {
        match self {
            Self::ToolNotAllowed {
                tool,
                unknown: true,
            } => format!(
                "This edge has no policy for the tool \"{tool}\" (its tool_scopes do not name \
                 it), so it refuses it; the server behind it may have the tool."
            ),
            Self::ToolNotAllowed {
                tool,
                unknown: false,
            } => {
                format!(
                    "The tool \"{tool}\" is not allowed for this access token (not in its allowed_tools)."
                )
            }
            Self::MissingToolName => "tools/call needs params.name, the tool to call.".into(),
            Self::MethodNotAllowed { method } => {
                format!("The method \"{method}\" is not served by this MCP server.")
            }
            Self::InsufficientScope { scope } => format!("This call needs the scope \"{scope}\"."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::parse_payload;
    use crate::tenant::Tier;
    use mcp_edge_contract::Identity;

    fn policy() -> ToolPolicy {
        ToolPolicy {
            tool_scopes: [
                ("list_projects", "mcp:read"),
                ("create_project", "mcp:write"),
                ("delete_project", "mcp:admin"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
            method_scopes: [
                ("vendor/custom".to_string(), None),
                (
                    "logging/setLevel".to_string(),
                    Some("mcp:admin".to_string()),
                ),
            ]
            .into(),
        }
    }

    fn tenant(scopes: &[&str], allowed: Option<&[&str]>) -> TenantContext {
        TenantContext {
            identity: Identity {
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                tier: Tier::Free,
                ..Identity::example("t")
            },
            allowed_tools: allowed.map(|a| a.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn call(id: u32, tool: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}"}}}}"#
        )
    }

    fn judge(t: &TenantContext, body: &str) -> PayloadVerdict {
        policy().judge(t, &parse_payload(body.as_bytes()).unwrap())
    }

    #[test]
    fn tool_calls() {
        let rw = tenant(&["mcp:read", "mcp:write"], None);
        assert_eq!(judge(&rw, &call(1, "list_projects")), PayloadVerdict::Allow);
        assert_eq!(
            judge(&rw, &call(1, "create_project")),
            PayloadVerdict::Allow
        );
        assert!(
            matches!(judge(&rw, &call(1, "delete_project")), PayloadVerdict::InsufficientScope { scopes, .. } if scopes.contains("mcp:admin"))
        );
        let PayloadVerdict::Forbidden { refusals } = judge(&rw, &call(1, "drop_database")) else {
            panic!("a tool the edge has no policy for is refused");
        };
        // Says what the edge knows, not what the server has (issue 22).
        assert_eq!(
            refusals[0].1.message(),
            "This edge has no policy for the tool \"drop_database\" (its tool_scopes do not \
             name it), so it refuses it; the server behind it may have the tool."
        );
        let only_list = tenant(
            &["mcp:read", "mcp:write", "mcp:admin"],
            Some(&["list_projects"]),
        );
        assert_eq!(
            judge(&only_list, &call(1, "list_projects")),
            PayloadVerdict::Allow
        );
        assert!(matches!(
            judge(&only_list, &call(1, "create_project")),
            PayloadVerdict::Forbidden { .. }
        ));
        let none = tenant(&["mcp:read"], Some(&[]));
        assert!(matches!(
            judge(&none, &call(1, "list_projects")),
            PayloadVerdict::Forbidden { .. }
        ));
        assert!(matches!(
            judge(
                &rw,
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#
            ),
            PayloadVerdict::Forbidden { .. }
        ));
    }

    #[test]
    fn other_methods() {
        let nothing = tenant(&[], None);
        for m in [
            "initialize",
            "server/discover",
            "ping",
            "tools/list",
            "subscriptions/listen",
            "tasks/get",
            "notifications/initialized",
            "notifications/cancelled",
            "vendor/custom",
        ] {
            assert_eq!(
                judge(
                    &nothing,
                    &format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{m}"}}"#)
                ),
                PayloadVerdict::Allow,
                "{m}"
            );
        }
        assert_eq!(
            judge(&nothing, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            PayloadVerdict::Allow
        );
        for m in ["resources/list", "prompts/get", "completion/complete"] {
            assert!(
                matches!(
                    judge(
                        &nothing,
                        &format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{m}"}}"#)
                    ),
                    PayloadVerdict::InsufficientScope { .. }
                ),
                "{m}"
            );
        }
        assert!(matches!(
            judge(
                &nothing,
                r#"{"jsonrpc":"2.0","id":1,"method":"admin/shutdown"}"#
            ),
            PayloadVerdict::Forbidden { .. }
        ));
    }

    #[test]
    fn defaults_serve_every_version_and_method_scopes_restrict_them() {
        let default = ToolPolicy {
            method_scopes: BTreeMap::new(),
            ..policy()
        };
        let nothing = tenant(&[], None);
        let read = tenant(&["mcp:read"], None);
        let request = |m: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{m}"}}"#);
        let verdict = |p: &ToolPolicy, t: &TenantContext, body: &str| {
            p.judge(t, &parse_payload(body.as_bytes()).unwrap())
        };
        assert_eq!(
            verdict(&default, &nothing, &request("logging/setLevel")),
            PayloadVerdict::Allow
        );
        assert!(matches!(
            verdict(&default, &nothing, &request("completion/complete")),
            PayloadVerdict::InsufficientScope { scopes, .. } if scopes.contains("mcp:read")
        ));
        assert_eq!(
            verdict(&default, &read, &request("completion/complete")),
            PayloadVerdict::Allow
        );
        // Listening for resource updates reads resources; list changes do not.
        let listen = |filter: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{{"notifications":{filter}}}}}"#
            )
        };
        assert_eq!(
            verdict(&default, &nothing, &listen(r#"{"toolsListChanged":true}"#)),
            PayloadVerdict::Allow
        );
        assert_eq!(
            verdict(
                &default,
                &nothing,
                &listen(r#"{"resourceSubscriptions":[]}"#)
            ),
            PayloadVerdict::Allow
        );
        assert!(matches!(
            verdict(
                &default,
                &nothing,
                &listen(r#"{"resourceSubscriptions":["x://a"]}"#)
            ),
            PayloadVerdict::InsufficientScope { .. }
        ));
        assert_eq!(
            verdict(
                &default,
                &read,
                &listen(r#"{"resourceSubscriptions":["x://a"]}"#)
            ),
            PayloadVerdict::Allow
        );
        // method_scopes wins over a default (policy() asks mcp:admin for logging/setLevel).
        assert!(matches!(
            verdict(&policy(), &read, &request("logging/setLevel")),
            PayloadVerdict::InsufficientScope { scopes, .. } if scopes.contains("mcp:admin")
        ));
        // Every method a client sends in the reviewed schemas is served by default.
        for m in [
            "initialize",
            "server/discover",
            "ping",
            "tools/list",
            "logging/setLevel",
            "completion/complete",
            "subscriptions/listen",
            "resources/list",
            "resources/templates/list",
            "resources/read",
            "resources/subscribe",
            "resources/unsubscribe",
            "prompts/list",
            "prompts/get",
            "tasks/get",
            "tasks/result",
            "tasks/list",
            "tasks/cancel",
            "tasks/update",
        ] {
            assert_eq!(
                verdict(&default, &read, &request(m)),
                PayloadVerdict::Allow,
                "{m}"
            );
        }
    }

    #[test]
    fn one_denied_element_denies_the_batch_with_every_id() {
        let rw = tenant(&["mcp:read", "mcp:write"], Some(&["list_projects"]));
        let body = format!(
            "[{},{}]",
            call(1, "list_projects"),
            call(2, "create_project")
        );
        match judge(&rw, &body) {
            PayloadVerdict::Forbidden { refusals } => {
                assert_eq!(refusals.len(), 1);
                assert_eq!(refusals[0].0, Some(serde_json::json!(2)));
            }
            other => panic!("{other:?}"),
        }
        let admin_needed = format!(
            "[{},{}]",
            call(1, "delete_project"),
            call(2, "create_project")
        );
        let rw_all = tenant(&["mcp:read"], None);
        match judge(&rw_all, &admin_needed) {
            PayloadVerdict::InsufficientScope { scopes, ids } => {
                assert_eq!(
                    scopes.into_iter().collect::<Vec<_>>(),
                    vec!["mcp:admin", "mcp:write"]
                );
                assert_eq!(ids.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn may_call_for_tools_list() {
        let p = policy();
        let rw = tenant(&["mcp:read", "mcp:write"], None);
        assert!(p.may_call(&rw, "list_projects"));
        assert!(!p.may_call(&rw, "delete_project"));
        assert!(!p.may_call(&rw, "unknown"));
        let only = tenant(&["mcp:read", "mcp:write"], Some(&["create_project"]));
        assert!(!p.may_call(&only, "list_projects"));
        assert!(p.may_call(&only, "create_project"));
    }
}
