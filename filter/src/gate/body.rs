//! The verdict on a complete JSON-RPC body: protocol rules, then the tool policy.

use mcp_edge_contract::codes;
use serde_json::Value;

use crate::config::EdgeConfig;
use crate::jsonrpc::{Message, Payload, parse_payload};
use crate::policy::{PayloadVerdict, Refusal};
use crate::protocol;
use crate::reply;
use crate::routing_headers::KeptRouting;

use super::{Admitted, Denial};

/// What the edge learned from an allowed body, for logs and for the response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BodySummary {
    /// The first message's method (`batch` for a batch).
    pub method: String,
    /// The tool of a single `tools/call`.
    pub tool: Option<String>,
    /// Each tool the body calls (`tools/call`, in a batch too) and how many times, in order.
    pub tool_calls: Vec<(String, u64)>,
    /// Ids of `tools/list` requests: their responses are filtered.
    pub tools_list_ids: Vec<Value>,
    /// What the body costs against the rate limit: one per request or notification.
    pub cost: u64,
}

/// The headers `Mcp-Method` / `Mcp-Name` (MCP 2026-07-28) and `MCP-Protocol-Version`, when sent.
pub struct RoutingHeaders<'a> {
    pub names: &'a KeptRouting,
    pub protocol_version: Option<&'a [u8]>,
}

fn summary(payload: &Payload) -> BodySummary {
    let messages = payload.messages();
    BodySummary {
        method: if payload.is_batch() {
            "batch".into()
        } else {
            messages
                .first()
                .and_then(Message::method)
                .unwrap_or("response")
                .to_string()
        },
        tool: match payload {
            Payload::Single(m) => m.tool_name().map(str::to_string),
            Payload::Batch(_) => None,
        },
        tool_calls: messages.iter().filter_map(Message::tool_name).fold(
            Vec::new(),
            |mut calls: Vec<(String, u64)>, tool| {
                match calls.iter_mut().find(|(t, _)| t == tool) {
                    Some((_, n)) => *n += 1,
                    None => calls.push((tool.to_string(), 1)),
                }
                calls
            },
        ),
        tools_list_ids: messages
            .iter()
            .filter(|m| m.method() == Some("tools/list"))
            .filter_map(|m| m.id().cloned())
            .collect(),
        cost: (messages.iter().filter(|m| m.method().is_some()).count() as u64).max(1),
    }
}

/// What a body asks for, for the access log of a refused request (`None` if it does not parse).
pub fn describe_body(body: &[u8]) -> Option<BodySummary> {
    parse_payload(body).ok().map(|p| summary(&p))
}

/// The error object(s) of a refused payload: one per request id (the refused ones with their
/// reason, the others saying why they were not run), as one object or a batch.
fn refusal_body(payload: &Payload, code: i32, reasons: &[(Option<Value>, String)]) -> Value {
    let reason_for = |id: Option<&Value>| {
        reasons
            .iter()
            .find(|(rid, _)| rid.as_ref() == id)
            .map(|(_, r)| r.clone())
    };
    match payload {
        Payload::Single(m) => {
            let msg = reason_for(m.id())
                .unwrap_or_else(|| reasons.first().map(|(_, r)| r.clone()).unwrap_or_default());
            reply::jsonrpc_error_object(m.id(), code, &msg)
        }
        Payload::Batch(ms) => {
            let first = reasons.first().map(|(_, r)| r.clone()).unwrap_or_default();
            Value::Array(
                ms.iter()
                    .filter_map(|m| m.id().filter(|_| m.method().is_some()))
                    .map(|id| {
                        let msg = reason_for(Some(id)).unwrap_or_else(|| {
                            format!("Not run: another message in this batch was refused ({first})")
                        });
                        reply::jsonrpc_error_object(Some(id), code, &msg)
                    })
                    .collect(),
            )
        }
    }
}

fn bad_request(code: i32, message: String, id: Option<&Value>, reason: &'static str) -> Denial {
    Denial::BadRequest {
        code,
        message,
        id: id.cloned(),
        reason,
    }
}

/// Judges the complete body of an authenticated POST against the protocol and the policy.
pub fn judge_body(
    cfg: &EdgeConfig,
    admitted: &Admitted,
    routing: &RoutingHeaders<'_>,
    body: &[u8],
) -> Result<BodySummary, Denial> {
    let payload = parse_payload(body).map_err(|e| {
        let reason = if e.code == codes::PARSE_ERROR {
            "parse_error"
        } else {
            "invalid_request"
        };
        let message = format!("Invalid JSON-RPC: {}", e.message);
        bad_request(e.code, message, e.id.as_ref(), reason)
    })?;
    let first_id = payload.messages().first().and_then(Message::id);
    protocol::check_batch(&payload, admitted.version)
        .map_err(|m| bad_request(codes::INVALID_REQUEST, m, None, "batch"))?;
    protocol::check_kept_routing_headers(&payload, admitted.version, routing.names)
        .and_then(|()| protocol::check_meta_version(&payload, routing.protocol_version))
        .map_err(|m| bad_request(codes::HEADER_MISMATCH, m, first_id, "header_mismatch"))?;
    match cfg.policy.judge(&admitted.tenant, &payload) {
        PayloadVerdict::Allow => Ok(summary(&payload)),
        PayloadVerdict::Forbidden { refusals } => {
            let methods_only = refusals
                .iter()
                .all(|(_, r)| matches!(r, Refusal::MethodNotAllowed { .. }));
            let reasons: Vec<_> = refusals
                .iter()
                .map(|(id, r)| (id.clone(), r.message()))
                .collect();
            let body = refusal_body(&payload, codes::FORBIDDEN, &reasons);
            Err(Denial::Forbidden { body, methods_only })
        }
        PayloadVerdict::InsufficientScope { scopes, ids } => {
            let needed = scopes.into_iter().collect::<Vec<_>>().join(" ");
            let message = format!(
                "This call needs the scope(s) {needed}, which this access token does not have: obtain a token with them and retry."
            );
            let reasons: Vec<_> = ids.into_iter().map(|id| (id, message.clone())).collect();
            let body = refusal_body(&payload, codes::INSUFFICIENT_SCOPE, &reasons);
            Err(Denial::InsufficientScope { needed, body })
        }
    }
}

#[cfg(test)]
mod body_tests {
    use super::*;
    use crate::config::parse_config;
    use crate::gate::Outcome;
    use crate::gate::response::rewrite_whole;
    use crate::protocol::ProtocolVersion;
    use crate::reply::Reply;
    use crate::tenant::TenantContext;
    use mcp_edge_contract::Identity;
    use serde_json::json;

    /// The verdict as the client sees it.
    fn judge(
        cfg: &EdgeConfig,
        a: &Admitted,
        routing: &RoutingHeaders<'_>,
        body: &[u8],
    ) -> Result<BodySummary, (Reply, Outcome)> {
        judge_body(cfg, a, routing, body).map_err(|d| (d.reply(Some(cfg)), d.outcome()))
    }

    fn cfg() -> EdgeConfig {
        let v = json!({
            "resource": "https://mcp.example/mcp",
            "issuers": ["https://as"],
            "jwks": {"remote": {"cluster": "c", "path": "/jwks", "authority": "as"}},
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write", "mcp:admin"]},
            "tool_scopes": {"list_projects": "mcp:read", "create_project": "mcp:write", "delete_project": "mcp:admin"},
            "allowed_origins": ["http://localhost:6274"]
        });
        parse_config(v.to_string().as_bytes(), &|_| None).unwrap()
    }

    fn admitted(scopes: &[&str], allowed: Option<&[&str]>, version: ProtocolVersion) -> Admitted {
        Admitted {
            tenant: crate::caller::Caller::new(TenantContext {
                identity: Identity {
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                    ..Identity::example("t")
                },
                allowed_tools: allowed.map(|a| a.iter().map(|s| s.to_string()).collect()),
            }),
            version,
        }
    }

    const NO_ROUTING: RoutingHeaders<'static> = RoutingHeaders {
        names: &KeptRouting::NONE,
        protocol_version: None,
    };

    fn call(id: u32, tool: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
        )
    }

    fn status(r: &Result<BodySummary, (Reply, Outcome)>) -> u32 {
        r.as_ref().map_or_else(|(r, _)| r.status, |_| 200)
    }

    #[test]
    fn allowed_call_is_summarised() {
        let a = admitted(&["mcp:read"], None, ProtocolVersion::V2025_06_18);
        let s = judge(&cfg(), &a, &NO_ROUTING, call(1, "list_projects").as_bytes()).unwrap();
        assert_eq!(s.method, "tools/call");
        assert_eq!(s.tool.as_deref(), Some("list_projects"));
        let s = judge(
            &cfg(),
            &a,
            &NO_ROUTING,
            br#"{"jsonrpc":"2.0","id":"L","method":"tools/list"}"#,
        )
        .unwrap();
        assert_eq!(s.tools_list_ids, vec![json!("L")]);
    }

    #[test]
    fn forbidden_and_step_up() {
        let a = admitted(
            &["mcp:read", "mcp:write"],
            Some(&["list_projects"]),
            ProtocolVersion::V2025_06_18,
        );
        let r = judge(
            &cfg(),
            &a,
            &NO_ROUTING,
            call(4, "create_project").as_bytes(),
        );
        let (reply, outcome) = r.unwrap_err();
        assert_eq!((reply.status, outcome), (403, Outcome::ToolNotAllowed));
        assert!(
            reply.header("www-authenticate").is_none(),
            "no step-up for allowed_tools"
        );
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["id"], 4);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("create_project")
        );

        let a = admitted(
            &["mcp:read", "mcp:write"],
            None,
            ProtocolVersion::V2025_11_25,
        );
        let (reply, outcome) = judge(
            &cfg(),
            &a,
            &NO_ROUTING,
            call(5, "delete_project").as_bytes(),
        )
        .unwrap_err();
        assert_eq!((reply.status, outcome), (403, Outcome::InsufficientScope));
        let h = reply.header("www-authenticate").unwrap();
        assert!(
            h.contains("error=\"insufficient_scope\"") && h.contains("scope=\"mcp:admin\""),
            "{h}"
        );
    }

    #[test]
    fn batches() {
        let body = format!(
            "[{},{}]",
            call(1, "list_projects"),
            call(2, "delete_project")
        );
        let old = admitted(
            &["mcp:read"],
            Some(&["list_projects"]),
            ProtocolVersion::V2025_03_26,
        );
        let (reply, _) = judge(&cfg(), &old, &NO_ROUTING, body.as_bytes()).unwrap_err();
        assert_eq!(reply.status, 403);
        let errors: Value = serde_json::from_slice(&reply.body).unwrap();
        let ids: Vec<_> = errors
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].clone())
            .collect();
        assert_eq!(ids, vec![json!(1), json!(2)], "an error per id");
        let new = admitted(&["mcp:read"], None, ProtocolVersion::V2025_06_18);
        let ok_batch = format!(
            "[{},{}]",
            call(1, "list_projects"),
            call(2, "list_projects")
        );
        assert_eq!(
            status(&judge(&cfg(), &new, &NO_ROUTING, ok_batch.as_bytes())),
            400
        );
        assert!(judge(&cfg(), &old, &NO_ROUTING, ok_batch.as_bytes()).is_ok());
    }

    #[test]
    fn smuggling_attempts() {
        let a = admitted(
            &["mcp:read", "mcp:write"],
            Some(&["list_projects"]),
            ProtocolVersion::V2025_06_18,
        );
        let c = cfg();
        let dup_method = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"create_project"}}"#;
        assert_eq!(status(&judge(&c, &a, &NO_ROUTING, dup_method)), 400);
        let dup_name = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects","name":"create_project"}}"#;
        assert_eq!(status(&judge(&c, &a, &NO_ROUTING, dup_name)), 400);
        let escaped = br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"cre\u0061te_project"}}"#;
        assert_eq!(status(&judge(&c, &a, &NO_ROUTING, escaped)), 403);
        let names = KeptRouting::new(Some(b"tools/call"), Some(b"list_projects"));
        let routing = RoutingHeaders {
            names: &names,
            protocol_version: None,
        };
        let (reply, _) = judge(&c, &a, &routing, call(3, "create_project").as_bytes()).unwrap_err();
        assert_eq!(reply.status, 400);
        assert_eq!(
            serde_json::from_slice::<Value>(&reply.body).unwrap()["error"]["code"],
            -32020
        );
        assert!(judge(&c, &a, &routing, call(3, "list_projects").as_bytes()).is_ok());
        assert_eq!(status(&judge(&c, &a, &NO_ROUTING, b"\xef\xbb\xbf{}")), 400);
        assert_eq!(status(&judge(&c, &a, &NO_ROUTING, b"")), 400);
    }

    #[test]
    fn tools_list_is_filtered_for_the_token() {
        let a = admitted(&["mcp:read"], None, ProtocolVersion::V2025_06_18);
        let body = json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"list_projects"},{"name":"create_project"},{"name":"delete_project"}]}});
        let out = rewrite_whole(
            &cfg(),
            &a.tenant,
            "application/json",
            &[json!(1)],
            body.to_string().as_bytes(),
        )
        .expect("rewritten");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"], json!([{"name": "list_projects"}]));
        let out = rewrite_whole(
            &cfg(),
            &a.tenant,
            "application/json",
            &[json!(1)],
            b"tools, garbled",
        )
        .expect("an error body");
        assert!(String::from_utf8_lossy(&out).contains("-32603"));
    }
}
