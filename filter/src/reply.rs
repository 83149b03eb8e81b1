//! Local replies: the HTTP status, headers and JSON-RPC error body a denied client sees.
//!
//! Every error body is a JSON-RPC error object carrying the request's `id` (or `null` when the
//! body was not read), with a message an agent can repeat to a person. The codes below are ours:
//! they lie in JSON-RPC's implementation-defined range and avoid -32000 and -32001, which the
//! TypeScript SDK uses. They are the contract's ([`mcp_edge_contract::codes`]); docs/errors.md
//! lists them.

use mcp_edge_contract::codes;
use serde_json::{Value, json};

/// A complete local reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The JSON-RPC error body.
pub fn jsonrpc_error_body(id: Option<&Value>, code: i32, message: &str) -> Vec<u8> {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": {"code": code, "message": message},
    })
    .to_string()
    .into_bytes()
}

/// One JSON-RPC error response object.
pub fn jsonrpc_error_object(id: Option<&Value>, code: i32, message: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": {"code": code, "message": message},
    })
}

/// A JSON-RPC error response object without an id, with `error.data`.
pub fn jsonrpc_error_with_data(code: i32, message: &str, data: Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": Value::Null,
        "error": {"code": code, "message": message, "data": data},
    })
}

/// A reply whose body is the given JSON (an error object or a batch of them).
pub fn json_reply(status: u32, body: &Value, extra_headers: Vec<(String, String)>) -> Reply {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(extra_headers);
    Reply {
        status,
        headers,
        body: body.to_string().into_bytes(),
    }
}

/// A JSON-RPC error reply with extra headers.
pub fn jsonrpc_error(
    status: u32,
    code: i32,
    message: &str,
    extra_headers: Vec<(String, String)>,
) -> Reply {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(extra_headers);
    Reply {
        status,
        headers,
        body: jsonrpc_error_body(None, code, message),
    }
}

/// Makes a value safe inside a quoted-string of an auth-param (RFC 9110 §11.2).
fn quoted(value: &str) -> String {
    let clean: String = value
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    format!("\"{clean}\"")
}

/// What went wrong with authentication, for the 401 challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unauthenticated {
    /// No credentials at all: the challenge carries no `error` (RFC 6750 §3.1).
    NoToken,
    /// A token was sent and refused.
    InvalidToken { description: String },
}

/// 403 with `WWW-Authenticate: Bearer error="insufficient_scope", scope="…", resource_metadata="…"`:
/// a token with these scopes would be allowed (step-up authorization).
pub fn insufficient_scope(resource_metadata_url: &str, scopes: &str, body: &Value) -> Reply {
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", scope={}, resource_metadata={}, error_description={}",
        quoted(scopes),
        quoted(resource_metadata_url),
        quoted(&format!("this call needs the scopes {scopes}"))
    );
    json_reply(403, body, vec![("www-authenticate".to_string(), challenge)])
}

/// 401 with `WWW-Authenticate: Bearer resource_metadata="…", scope="…"[, error="invalid_token"]`.
pub fn unauthorized(resource_metadata_url: &str, scope: &str, why: &Unauthenticated) -> Reply {
    let mut challenge = format!(
        "Bearer resource_metadata={}, scope={}",
        quoted(resource_metadata_url),
        quoted(scope)
    );
    let message = match why {
        Unauthenticated::NoToken => {
            "Authentication required: send an OAuth access token for this MCP server as `Authorization: Bearer <token>`; the WWW-Authenticate header says where to get one.".to_string()
        }
        Unauthenticated::InvalidToken { description } => {
            challenge.push_str(", error=\"invalid_token\", error_description=");
            challenge.push_str(&quoted(description));
            format!("Invalid access token: {description}. Obtain a new token and retry.")
        }
    };
    jsonrpc_error(
        401,
        codes::UNAUTHORIZED,
        &message,
        vec![("www-authenticate".to_string(), challenge)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Reply) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn no_token_challenge_has_no_error() {
        let r = unauthorized(
            "https://h/.well-known/oauth-protected-resource/mcp",
            "mcp:read",
            &Unauthenticated::NoToken,
        );
        assert_eq!(r.status, 401);
        let h = r.header("WWW-Authenticate").unwrap();
        assert_eq!(
            h,
            "Bearer resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:read\""
        );
        let b = body(&r);
        assert_eq!(b["jsonrpc"], "2.0");
        assert_eq!(b["id"], Value::Null);
        assert_eq!(b["error"]["code"], codes::UNAUTHORIZED);
    }

    #[test]
    fn insufficient_scope_challenge() {
        let body = jsonrpc_error_object(Some(&json!(3)), codes::INSUFFICIENT_SCOPE, "needs admin");
        let r = insufficient_scope(
            "https://h/.well-known/oauth-protected-resource/mcp",
            "mcp:admin",
            &body,
        );
        assert_eq!(r.status, 403);
        let h = r.header("www-authenticate").unwrap();
        assert!(h.starts_with("Bearer error=\"insufficient_scope\", scope=\"mcp:admin\", resource_metadata=\"https://h/"), "{h}");
        assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap()["id"], 3);
    }

    #[test]
    fn invalid_token_challenge() {
        let r = unauthorized(
            "u",
            "s",
            &Unauthenticated::InvalidToken {
                description: "bad \"sig\"\n".into(),
            },
        );
        let h = r.header("www-authenticate").unwrap();
        assert!(h.contains("error=\"invalid_token\""), "{h}");
        assert!(h.ends_with("error_description=\"bad sig\""), "{h}");
        assert!(
            body(&r)["error"]["message"]
                .as_str()
                .unwrap()
                .contains("bad \"sig\"")
        );
    }
}
