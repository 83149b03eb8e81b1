//! JSON-RPC 2.0 messages as MCP uses them, read strictly from a POST body.
//!
//! A body is one message or a batch. Each message is a request (`method` + `id`), a notification
//! (`method`, no `id`) or a response to the server (`id` + exactly one of `result`/`error`).
//! Anything else is refused before any decision is taken on it.

use mcp_edge_contract::codes;
use mcp_edge_contract::limits::MAX_JSONRPC_ID_BYTES;
use serde_json::{Map, Value};

use crate::strict_json::parse_strict;

/// One JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        params: Option<Map<String, Value>>,
    },
    Notification {
        method: String,
        params: Option<Map<String, Value>>,
    },
    Response {
        id: Value,
    },
}

impl Message {
    pub fn id(&self) -> Option<&Value> {
        match self {
            Self::Request { id, .. } | Self::Response { id } => Some(id),
            Self::Notification { .. } => None,
        }
    }

    pub fn method(&self) -> Option<&str> {
        match self {
            Self::Request { method, .. } | Self::Notification { method, .. } => Some(method),
            Self::Response { .. } => None,
        }
    }

    pub fn params(&self) -> Option<&Map<String, Value>> {
        match self {
            Self::Request { params, .. } | Self::Notification { params, .. } => params.as_ref(),
            Self::Response { .. } => None,
        }
    }

    /// `params.name` of a `tools/call` request.
    pub fn tool_name(&self) -> Option<&str> {
        match self {
            Self::Request { method, params, .. } if method == "tools/call" => {
                params.as_ref()?.get("name")?.as_str()
            }
            _ => None,
        }
    }
}

/// A POST body: one message or a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Single(Message),
    Batch(Vec<Message>),
}

impl Payload {
    pub fn messages(&self) -> &[Message] {
        match self {
            Self::Single(m) => std::slice::from_ref(m),
            Self::Batch(ms) => ms,
        }
    }

    pub fn is_batch(&self) -> bool {
        matches!(self, Self::Batch(_))
    }
}

/// Why a body is not acceptable JSON-RPC; `id` is the request's id when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i32,
    pub message: String,
    pub id: Option<Value>,
}

fn invalid(message: impl Into<String>, id: Option<&Value>) -> RpcError {
    RpcError {
        code: codes::INVALID_REQUEST,
        message: message.into(),
        id: id.cloned(),
    }
}

fn valid_id(id: &Value) -> bool {
    match id {
        Value::String(s) => s.len() <= MAX_JSONRPC_ID_BYTES,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

fn message_from(value: Value) -> Result<Message, RpcError> {
    let Value::Object(mut obj) = value else {
        return Err(invalid("a JSON-RPC message must be an object", None));
    };
    let id = obj.remove("id");
    if let Some(id) = &id
        && !valid_id(id)
    {
        return Err(invalid(
            format!("`id` must be an integer or a string of at most {MAX_JSONRPC_ID_BYTES} bytes"),
            None,
        ));
    }
    if obj.remove("jsonrpc") != Some(Value::String("2.0".into())) {
        return Err(invalid("`jsonrpc` must be \"2.0\"", id.as_ref()));
    }
    let params = match obj.remove("params") {
        None => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => return Err(invalid("`params` must be an object", id.as_ref())),
    };
    match obj.remove("method") {
        Some(Value::String(method)) => {
            if obj.contains_key("result") || obj.contains_key("error") {
                return Err(invalid(
                    "a request cannot carry `result` or `error`",
                    id.as_ref(),
                ));
            }
            Ok(match id {
                Some(id) => Message::Request { id, method, params },
                None => Message::Notification { method, params },
            })
        }
        Some(_) => Err(invalid("`method` must be a string", id.as_ref())),
        None => {
            let has_result = obj.contains_key("result");
            let has_error = obj.contains_key("error");
            match id {
                Some(id) if has_result != has_error && params.is_none() => {
                    Ok(Message::Response { id })
                }
                _ => Err(invalid(
                    "not a JSON-RPC request, notification or response",
                    id.as_ref(),
                )),
            }
        }
    }
}

/// Parses a POST body strictly into a payload.
pub fn parse_payload(body: &[u8]) -> Result<Payload, RpcError> {
    let value = parse_strict(body).map_err(|e| RpcError {
        code: codes::PARSE_ERROR,
        message: format!("the body is not acceptable JSON: {e}"),
        id: None,
    })?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(invalid("an empty batch is not a request", None));
            }
            items
                .into_iter()
                .map(message_from)
                .collect::<Result<Vec<_>, _>>()
                .map(Payload::Batch)
        }
        other => message_from(other).map(Payload::Single),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: &str) -> Result<Payload, RpcError> {
        parse_payload(v.as_bytes())
    }

    #[test]
    fn kinds_of_messages() {
        let p = parse(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects"}}"#,
        )
        .unwrap();
        assert_eq!(p.messages()[0].tool_name(), Some("list_projects"));
        assert_eq!(p.messages()[0].id(), Some(&json!(1)));
        let p = parse(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(p.messages()[0], Message::Notification { .. }));
        let p = parse(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert!(matches!(p.messages()[0], Message::Response { .. }));
        let p =
            parse(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"x"}]"#)
                .unwrap();
        assert!(p.is_batch());
        assert_eq!(p.messages().len(), 2);
    }

    #[test]
    fn escaped_names_are_judged_as_plain() {
        let p = parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"de\u006cete_project"}}"#).unwrap();
        assert_eq!(p.messages()[0].tool_name(), Some("delete_project"));
    }

    #[test]
    fn malformed_messages_are_refused() {
        let cases = [
            (r#"{"id":1,"method":"ping"}"#, codes::INVALID_REQUEST),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
                codes::INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#,
                codes::INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["x"]}"#,
                codes::INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}"#,
                codes::INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                codes::INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                codes::INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
                codes::INVALID_REQUEST,
            ),
            (r#"{"jsonrpc":"2.0","id":1}"#, codes::INVALID_REQUEST),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
                codes::INVALID_REQUEST,
            ),
            (r#"[]"#, codes::INVALID_REQUEST),
            (r#"[1]"#, codes::INVALID_REQUEST),
            (r#""x""#, codes::INVALID_REQUEST),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
                codes::PARSE_ERROR,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
                codes::PARSE_ERROR,
            ),
            ("\u{feff}{}", codes::PARSE_ERROR),
            ("{", codes::PARSE_ERROR),
        ];
        for (body, code) in cases {
            assert_eq!(parse(body).unwrap_err().code, code, "{body}");
        }
    }

    #[test]
    fn string_ids_are_capped_and_never_echoed_when_too_long() {
        let body = |id: &str| format!(r#"{{"jsonrpc":"2.0","id":"{id}","method":"ping"}}"#);
        let longest = "i".repeat(MAX_JSONRPC_ID_BYTES);
        assert!(parse(&body(&longest)).is_ok());
        let multibyte = "\u{e9}".repeat(MAX_JSONRPC_ID_BYTES / 2); // 2 bytes each
        assert!(parse(&body(&multibyte)).is_ok());
        for too_long in [
            "i".repeat(MAX_JSONRPC_ID_BYTES + 1),
            "\u{e9}".repeat(MAX_JSONRPC_ID_BYTES / 2 + 1),
            "i".repeat(300 * 1024),
        ] {
            let e = parse(&body(&too_long)).unwrap_err();
            assert_eq!(e.code, codes::INVALID_REQUEST);
            assert_eq!(e.id, None, "a refused id is not echoed");
            let in_batch = format!(
                r#"[{{"jsonrpc":"2.0","id":1,"method":"ping"}},{}]"#,
                body(&too_long)
            );
            assert_eq!(parse(&in_batch).unwrap_err().code, codes::INVALID_REQUEST);
        }
        let big_integer = format!(r#"{{"jsonrpc":"2.0","id":{},"method":"ping"}}"#, u64::MAX);
        assert!(parse(&big_integer).is_ok(), "integers as before");
    }

    #[test]
    fn errors_carry_the_id_when_known() {
        let e = parse(r#"{"jsonrpc":"2.0","id":9,"method":"x","params":[]}"#).unwrap_err();
        assert_eq!(e.id, Some(json!(9)));
    }
}
