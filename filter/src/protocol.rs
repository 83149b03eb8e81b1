//! MCP transport rules that depend on the negotiated protocol version, and the request headers
//! that must agree with the body.
//!
//! | version    | what matters at the edge                                                  |
//! |------------|---------------------------------------------------------------------------|
//! | 2024-11-05 | no batches                                                                |
//! | 2025-03-26 | JSON-RPC batches allowed (≤ 100, distinct ids); also what an absent `MCP-Protocol-Version` means |
//! | 2025-06-18 | no batches                                                                |
//! | 2025-11-25 | no batches (step-up and Origin rules are version independent here)        |
//! | 2026-07-28 | `Mcp-Method` / `Mcp-Name` headers, which must agree with the body          |

use mcp_edge_contract::limits::MAX_BATCH_ELEMENTS;

use crate::jsonrpc::{Message, Payload};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProtocolVersion {
    V2024_11_05,
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    V2026_07_28,
}

impl ProtocolVersion {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "2024-11-05" => Self::V2024_11_05,
            "2025-03-26" => Self::V2025_03_26,
            "2025-06-18" => Self::V2025_06_18,
            "2025-11-25" => Self::V2025_11_25,
            "2026-07-28" => Self::V2026_07_28,
            _ => return None,
        })
    }

    /// Batches came with 2025-03-26 and left with 2025-06-18.
    pub fn allows_batches(self) -> bool {
        self == Self::V2025_03_26
    }
}

/// The version a request speaks: from `MCP-Protocol-Version`; absent means 2025-03-26 (the
/// specification's rule for servers that cannot tell otherwise); an unknown one is an error.
pub fn request_version(header: Option<&[u8]>) -> Result<ProtocolVersion, String> {
    match header {
        None => Ok(ProtocolVersion::V2025_03_26),
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| ProtocolVersion::parse(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unsupported MCP-Protocol-Version {:?}",
                    String::from_utf8_lossy(v)
                )
            }),
    }
}

/// Checks the batch rules of `version`.
pub fn check_batch(payload: &Payload, version: ProtocolVersion) -> Result<(), String> {
    let Payload::Batch(messages) = payload else {
        return Ok(());
    };
    if !version.allows_batches() {
        return Err("JSON-RPC batches are not allowed in this MCP protocol version".into());
    }
    if messages.iter().any(|m| m.method() == Some("initialize")) {
        return Err("initialize must not be part of a batch".into());
    }
    if messages.len() > MAX_BATCH_ELEMENTS {
        return Err(format!(
            "a batch may hold at most {MAX_BATCH_ELEMENTS} messages"
        ));
    }
    // Ids name answers (and usage records): two requests with one id cannot both be answered.
    let mut ids = std::collections::BTreeSet::new();
    for id in messages
        .iter()
        .filter(|m| m.method().is_some())
        .filter_map(Message::id)
    {
        let key = match id {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !ids.insert(key) {
            return Err(format!("the request id {id} appears twice in this batch"));
        }
    }
    Ok(())
}

/// The value `Mcp-Name` must carry for a message: the tool or prompt name, or the resource URI.
fn name_of(message: &Message) -> Option<&str> {
    let params = message.params()?;
    match message.method()? {
        "tools/call" | "prompts/get" => params.get("name")?.as_str(),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            params.get("uri")?.as_str()
        }
        _ => None,
    }
}

/// `Mcp-Method` / `Mcp-Name` must agree with the body when they are sent. Never authorize on them.
pub fn check_routing_headers(
    payload: &Payload,
    mcp_method: Option<&[u8]>,
    mcp_name: Option<&[u8]>,
) -> Result<(), String> {
    if mcp_method.is_none() && mcp_name.is_none() {
        return Ok(());
    }
    let Payload::Single(message) = payload else {
        return Err("Mcp-Method / Mcp-Name cannot describe a batch".into());
    };
    if let Some(m) = mcp_method
        && Some(m) != message.method().map(str::as_bytes)
    {
        return Err("the Mcp-Method header does not match the body's method".into());
    }
    if let Some(n) = mcp_name
        && Some(n) != name_of(message).map(str::as_bytes)
    {
        return Err("the Mcp-Name header does not match the body".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::parse_payload;

    fn p(s: &str) -> Payload {
        parse_payload(s.as_bytes()).unwrap()
    }

    #[test]
    fn version_header() {
        assert_eq!(request_version(None), Ok(ProtocolVersion::V2025_03_26));
        assert_eq!(
            request_version(Some(b"2025-06-18")),
            Ok(ProtocolVersion::V2025_06_18)
        );
        assert!(request_version(Some(b"2099-01-01")).is_err());
        assert!(request_version(Some(b"\xff")).is_err());
    }

    #[test]
    fn batches_by_version() {
        let batch = p(
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
        );
        assert!(check_batch(&batch, ProtocolVersion::V2025_03_26).is_ok());
        assert!(check_batch(&batch, ProtocolVersion::V2025_06_18).is_err());
        assert!(check_batch(&batch, ProtocolVersion::V2026_07_28).is_err());
        assert!(check_batch(&batch, ProtocolVersion::V2024_11_05).is_err());
        let init = p(r#"[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]"#);
        assert!(check_batch(&init, ProtocolVersion::V2025_03_26).is_err());
    }

    #[test]
    fn batches_are_bounded_and_their_ids_distinct() {
        let ping = |id: &str| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let batch_of = |ids: &[&str]| {
            p(&format!(
                "[{}]",
                ids.iter().map(|i| ping(i)).collect::<Vec<_>>().join(",")
            ))
        };
        let hundred: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = hundred.iter().map(String::as_str).collect();
        assert!(check_batch(&batch_of(&refs), ProtocolVersion::V2025_03_26).is_ok());
        let mut over = refs.clone();
        over.push("100");
        assert!(check_batch(&batch_of(&over), ProtocolVersion::V2025_03_26).is_err());
        for twice in [&["1", "1"][..], &["1", r#""1""#], &[r#""a""#, r#""a""#]] {
            let e = check_batch(&batch_of(twice), ProtocolVersion::V2025_03_26).unwrap_err();
            assert!(e.contains("appears twice"), "{twice:?}: {e}");
        }
    }

    #[test]
    fn routing_headers_must_agree() {
        let call = p(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects"}}"#,
        );
        assert!(check_routing_headers(&call, None, None).is_ok());
        assert!(check_routing_headers(&call, Some(b"tools/call"), Some(b"list_projects")).is_ok());
        assert!(check_routing_headers(&call, Some(b"tools/list"), None).is_err());
        assert!(
            check_routing_headers(&call, Some(b"tools/call"), Some(b"delete_project")).is_err()
        );
        assert!(check_routing_headers(&call, None, Some(b"List_projects")).is_err());
        let read =
            p(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"x://a"}}"#);
        assert!(check_routing_headers(&read, Some(b"resources/read"), Some(b"x://a")).is_ok());
        let ping = p(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        assert!(check_routing_headers(&ping, None, Some(b"x")).is_err());
    }
}
