//! MCP transport rules that depend on the negotiated protocol version, and the request headers
//! that must agree with the body. docs/protocol.md reviews every method and header per version.
//!
//! | version    | what matters at the edge                                                  |
//! |------------|---------------------------------------------------------------------------|
//! | 2024-11-05 | no batches                                                                |
//! | 2025-03-26 | JSON-RPC batches allowed (≤ 100, distinct ids); also what an absent `MCP-Protocol-Version` means |
//! | 2025-06-18 | no batches                                                                |
//! | 2025-11-25 | no batches (step-up and Origin rules are version independent here)        |
//! | 2026-07-28 | no sessions, no GET stream, no client responses; `Mcp-Method` (and `Mcp-Name` where the spec defines it) required and equal to the body, `Mcp-Name` possibly `=?base64?…?=` |
//!
//! In every version a body's `_meta["io.modelcontextprotocol/protocolVersion"]`, when present,
//! must equal the `MCP-Protocol-Version` header (the edge judges by the header).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mcp_edge_contract::limits::MAX_BATCH_ELEMENTS;
use serde_json::{Value, json};

use crate::jsonrpc::{Message, Payload};
use crate::routing_headers::KeptRouting;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProtocolVersion {
    V2024_11_05,
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    V2026_07_28,
}

impl ProtocolVersion {
    /// Every version the edge accepts, oldest first (named in the unsupported-version error).
    pub const SUPPORTED: [Self; 5] = [
        Self::V2024_11_05,
        Self::V2025_03_26,
        Self::V2025_06_18,
        Self::V2025_11_25,
        Self::V2026_07_28,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2024_11_05 => "2024-11-05",
            Self::V2025_03_26 => "2025-03-26",
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
            Self::V2026_07_28 => "2026-07-28",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|v| v.as_str() == s)
    }

    /// Batches came with 2025-03-26 and left with 2025-06-18.
    pub fn allows_batches(self) -> bool {
        self == Self::V2025_03_26
    }

    /// From 2026-07-28 on: every request carries its own metadata (no `initialize`, no session, no
    /// GET stream, no JSON-RPC responses from the client) and the standard headers are required.
    pub fn is_stateless(self) -> bool {
        self >= Self::V2026_07_28
    }
}

/// An `MCP-Protocol-Version` the edge does not implement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedVersion {
    /// What the client asked for (lossily decoded).
    pub requested: String,
}

impl UnsupportedVersion {
    pub fn message(&self) -> String {
        format!(
            "Unsupported MCP-Protocol-Version {:?}; this server supports {}.",
            self.requested,
            Self::supported().join(", ")
        )
    }

    fn supported() -> Vec<&'static str> {
        ProtocolVersion::SUPPORTED
            .map(ProtocolVersion::as_str)
            .to_vec()
    }

    /// `error.data` of the specification's `UnsupportedProtocolVersionError` (2026-07-28).
    pub fn data(&self) -> Value {
        json!({"supported": Self::supported(), "requested": self.requested})
    }
}

/// The version a request speaks: from `MCP-Protocol-Version`; absent means 2025-03-26 (the
/// specification's rule for servers that cannot tell otherwise); an unknown one is an error.
pub fn request_version(header: Option<&[u8]>) -> Result<ProtocolVersion, UnsupportedVersion> {
    match header {
        None => Ok(ProtocolVersion::V2025_03_26),
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| ProtocolVersion::parse(s.trim()))
            .ok_or_else(|| UnsupportedVersion {
                requested: String::from_utf8_lossy(v).into_owned(),
            }),
    }
}

/// Checks the batch rules of `version`, and that a 2026-07-28 client sends no responses.
pub fn check_batch(payload: &Payload, version: ProtocolVersion) -> Result<(), String> {
    if version.is_stateless()
        && payload
            .messages()
            .iter()
            .any(|m| matches!(m, Message::Response { .. }))
    {
        return Err(format!(
            "MCP {} clients send no JSON-RPC responses (server requests are embedded in results)",
            version.as_str()
        ));
    }
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

/// The value `Mcp-Name` must carry for a message: the tool or prompt name, the resource URI, or
/// (tasks extension, SEP-2663) the task id.
fn name_of(message: &Message) -> Option<&str> {
    let params = message.params()?;
    match message.method()? {
        "tools/call" | "prompts/get" => params.get("name")?.as_str(),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            params.get("uri")?.as_str()
        }
        "tasks/get" | "tasks/update" | "tasks/cancel" => params.get("taskId")?.as_str(),
        _ => None,
    }
}

/// Methods whose requests must carry `Mcp-Name` from 2026-07-28 on (the transport's table).
const NAME_REQUIRED: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];

const BASE64_PREFIX: &[u8] = b"=?base64?";
const BASE64_SUFFIX: &[u8] = b"?=";

/// The value an `Mcp-Name` header stands for: `=?base64?…?=` decoded (UTF-8), or the plain value,
/// which must be visible ASCII, space or tab.
pub fn decode_name_header(raw: &[u8]) -> Result<String, String> {
    if raw.len() >= BASE64_PREFIX.len() + BASE64_SUFFIX.len()
        && raw.starts_with(BASE64_PREFIX)
        && raw.ends_with(BASE64_SUFFIX)
    {
        let encoded = &raw[BASE64_PREFIX.len()..raw.len() - BASE64_SUFFIX.len()];
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| "the Mcp-Name header is not valid Base64".to_string())?;
        return String::from_utf8(bytes)
            .map_err(|_| "the Mcp-Name header does not decode to UTF-8".to_string());
    }
    if raw.iter().all(|b| matches!(b, b' ' | b'\t' | 0x21..=0x7e)) {
        // Only visible ASCII, so this is UTF-8.
        Ok(String::from_utf8_lossy(raw).into_owned())
    } else {
        Err("the Mcp-Name header carries characters that must be Base64-encoded".into())
    }
}

/// `Mcp-Method` / `Mcp-Name` must agree with the body when they are sent, and from 2026-07-28 on
/// they must be sent (`Mcp-Name` where the specification defines it). Never authorize on them.
#[cfg(test)]
pub fn check_routing_headers(
    payload: &Payload,
    version: ProtocolVersion,
    mcp_method: Option<&[u8]>,
    mcp_name: Option<&[u8]>,
) -> Result<(), String> {
    check_kept_routing_headers(payload, version, &KeptRouting::new(mcp_method, mcp_name))
}

/// [`check_routing_headers`] with the headers as the request kept them.
pub fn check_kept_routing_headers(
    payload: &Payload,
    version: ProtocolVersion,
    routing: &KeptRouting,
) -> Result<(), String> {
    let (mcp_method, mcp_name) = (routing.mcp_method.as_ref(), routing.mcp_name.as_ref());
    let required = match payload {
        Payload::Single(Message::Request { method, .. }) if version.is_stateless() => {
            Some(NAME_REQUIRED.contains(&method.as_str()))
        }
        _ => None,
    };
    if mcp_method.is_none() && mcp_name.is_none() && required.is_none() {
        return Ok(());
    }
    let Payload::Single(message) = payload else {
        return Err("Mcp-Method / Mcp-Name cannot describe a batch".into());
    };
    match mcp_method {
        None if required.is_some() => {
            return Err(format!(
                "MCP {} requests must carry the Mcp-Method header",
                version.as_str()
            ));
        }
        Some(m) if !message.method().is_some_and(|b| m.matches(b.as_bytes())) => {
            return Err("the Mcp-Method header does not match the body's method".into());
        }
        _ => {}
    }
    let body_name = name_of(message);
    match mcp_name {
        None if required == Some(true) && body_name.is_some() => Err(format!(
            "MCP {} {} requests must carry the Mcp-Name header",
            version.as_str(),
            message.method().unwrap_or_default()
        )),
        Some(Err(e)) => Err(e.clone()),
        Some(Ok(n)) if !body_name.is_some_and(|b| n.matches(b.as_bytes())) => {
            Err("the Mcp-Name header does not match the body".into())
        }
        _ => Ok(()),
    }
}

/// The `_meta` key that names the protocol version of a request (2026-07-28).
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// A request's `_meta` protocol version, when it names one, must equal `MCP-Protocol-Version`
/// (which must then be sent): the edge applies the header's rules, the server reads the body's.
pub fn check_meta_version(payload: &Payload, header: Option<&[u8]>) -> Result<(), String> {
    for message in payload.messages() {
        let Some(declared) = message
            .params()
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get(META_PROTOCOL_VERSION))
        else {
            continue;
        };
        let header = header.map(<[u8]>::trim_ascii);
        if declared.as_str().map(str::as_bytes) != header {
            return Err(format!(
                "the MCP-Protocol-Version header does not match _meta[\"{META_PROTOCOL_VERSION}\"] ({declared})"
            ));
        }
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

    const V11: ProtocolVersion = ProtocolVersion::V2025_11_25;
    const V26: ProtocolVersion = ProtocolVersion::V2026_07_28;

    #[test]
    fn routing_headers_must_agree() {
        let call = p(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects"}}"#,
        );
        let check = |payload: &Payload, m: Option<&[u8]>, n: Option<&[u8]>| {
            check_routing_headers(payload, V11, m, n)
        };
        assert!(check(&call, None, None).is_ok());
        assert!(check(&call, Some(b"tools/call"), Some(b"list_projects")).is_ok());
        assert!(check(&call, Some(b"tools/list"), None).is_err());
        assert!(check(&call, Some(b"tools/call"), Some(b"delete_project")).is_err());
        assert!(check(&call, None, Some(b"List_projects")).is_err());
        let read =
            p(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"x://a"}}"#);
        assert!(check(&read, Some(b"resources/read"), Some(b"x://a")).is_ok());
        let ping = p(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        assert!(check(&ping, None, Some(b"x")).is_err());
        let task = p(r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t-1"}}"#);
        assert!(check(&task, Some(b"tasks/get"), Some(b"t-1")).is_ok());
        assert!(check(&task, Some(b"tasks/get"), Some(b"t-2")).is_err());
    }

    #[test]
    fn standard_headers_are_required_from_2026_07_28() {
        let call = p(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects"}}"#,
        );
        let e = check_routing_headers(&call, V26, None, None).unwrap_err();
        assert!(e.contains("Mcp-Method"), "{e}");
        let e = check_routing_headers(&call, V26, Some(b"tools/call"), None).unwrap_err();
        assert!(e.contains("Mcp-Name"), "{e}");
        assert!(
            check_routing_headers(&call, V26, Some(b"tools/call"), Some(b"list_projects")).is_ok()
        );
        let list = p(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert!(check_routing_headers(&list, V26, None, None).is_err());
        assert!(check_routing_headers(&list, V26, Some(b"tools/list"), None).is_ok());
        let discover = p(r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}"#);
        assert!(check_routing_headers(&discover, V26, Some(b"server/discover"), None).is_ok());
        // Notifications have no header rules in 2026-07-28; earlier versions need none at all.
        let note = p(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}"#);
        assert!(check_routing_headers(&note, V26, None, None).is_ok());
        assert!(check_routing_headers(&call, V11, None, None).is_ok());
    }

    #[test]
    fn mcp_name_may_be_base64() {
        let call =
            p(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"Hello, 世界"}}"#);
        let m = Some(&b"tools/call"[..]);
        // The specification's own example value.
        let encoded = b"=?base64?SGVsbG8sIOS4lueVjA==?=";
        assert!(check_routing_headers(&call, V26, m, Some(encoded)).is_ok());
        assert!(check_routing_headers(&call, V26, m, Some("Hello, 世界".as_bytes())).is_err());
        assert!(check_routing_headers(&call, V26, m, Some(b"=?base64?!!!?=")).is_err());
        let other = b"=?base64?bGlzdF9wcm9qZWN0cw==?="; // "list_projects"
        assert!(check_routing_headers(&call, V26, m, Some(other)).is_err());
        let sentinel = p(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"=?base64?literal?="}}"#,
        );
        let encoded = b"=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=";
        assert!(check_routing_headers(&sentinel, V26, m, Some(encoded)).is_ok());
        assert!(check_routing_headers(&sentinel, V26, m, Some(b"=?base64?literal?=")).is_err());
    }

    #[test]
    fn meta_version_must_equal_the_header() {
        let with_meta = |v: &str| {
            p(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"{v}"}}}}}}"#
            ))
        };
        assert!(check_meta_version(&with_meta("2026-07-28"), Some(b"2026-07-28")).is_ok());
        assert!(check_meta_version(&with_meta("2026-07-28"), Some(b"2025-11-25")).is_err());
        assert!(check_meta_version(&with_meta("2026-07-28"), None).is_err());
        let plain = p(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{}}}"#);
        assert!(check_meta_version(&plain, None).is_ok());
        assert!(check_meta_version(&plain, Some(b"2026-07-28")).is_ok());
    }

    #[test]
    fn stateless_clients_send_no_responses() {
        let response = p(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        assert!(check_batch(&response, V26).is_err());
        assert!(check_batch(&response, V11).is_ok());
    }

    #[test]
    fn unsupported_version_names_the_supported_ones() {
        let e = request_version(Some(b"2099-01-01")).unwrap_err();
        assert_eq!(e.data()["requested"], "2099-01-01");
        assert_eq!(e.data()["supported"][4], "2026-07-28");
        assert!(e.message().contains("2025-11-25"));
        for v in ProtocolVersion::SUPPORTED {
            assert_eq!(ProtocolVersion::parse(v.as_str()), Some(v));
        }
    }
}
