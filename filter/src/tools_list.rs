//! Rewriting `tools/list` results so that a token sees only the tools it may call.
//!
//! The backend lists its whole catalogue; the edge knows the token. Responses come as JSON (one
//! response or a batch of them) or as a `text/event-stream` whose `data:` lines carry JSON-RPC
//! messages. Only responses whose `id` belongs to a `tools/list` request of this exchange are
//! touched. A body the edge cannot read is replaced by an error (fail closed). A filtered list is
//! this token's own: where the result carries cache hints (MCP 2026-07-28), its `cacheScope`
//! becomes `private`, so no intermediary serves one token's list to another.

use serde_json::Value;

/// Filters one JSON-RPC message (or a batch) in place. Returns whether anything matched.
fn filter_value(v: &mut Value, ids: &[Value], keep: &dyn Fn(&str) -> bool) -> bool {
    match v {
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |acc, i| filter_value(i, ids, keep) | acc),
        Value::Object(obj) => {
            let ours = obj.get("id").is_some_and(|id| ids.contains(id));
            if !ours {
                return false;
            }
            if let Some(result) = obj.get_mut("result").and_then(Value::as_object_mut) {
                if let Some(Value::Array(tools)) = result.get_mut("tools") {
                    tools.retain(|t| t.get("name").and_then(Value::as_str).is_some_and(keep));
                }
                if result.contains_key("cacheScope") || result.contains_key("ttlMs") {
                    result.insert("cacheScope".into(), Value::String("private".into()));
                }
            }
            true
        }
        _ => false,
    }
}

/// Why a response could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteError(pub String);

/// Rewrites a JSON body.
pub fn filter_json(
    body: &[u8],
    ids: &[Value],
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<u8>, RewriteError> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| RewriteError(format!("response is not JSON: {e}")))?;
    filter_value(&mut v, ids, keep);
    serde_json::to_vec(&v).map_err(|e| RewriteError(e.to_string()))
}

/// Rewrites an SSE body: every event's `data` is parsed and filtered; other fields are kept.
/// The stream is read as clients read it (a leading BOM is skipped; CRLF, LF and a lone CR end a
/// line), and data that is neither empty nor JSON fails the rewrite: a client with a more lenient
/// JSON reader could still find a tool list in it.
pub fn filter_sse(
    body: &[u8],
    ids: &[Value],
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<u8>, RewriteError> {
    let text =
        std::str::from_utf8(body).map_err(|_| RewriteError("event stream is not UTF-8".into()))?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(normalized.len());
    for event in normalized.split_inclusive("\n\n") {
        let mut data = Vec::new();
        let mut other = Vec::new();
        for line in event.lines() {
            if let Some(d) = line.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d));
            } else if !line.is_empty() {
                other.push(line);
            }
        }
        for line in &other {
            out.push_str(line);
            out.push('\n');
        }
        if !data.is_empty() {
            let joined = data.join("\n");
            match serde_json::from_str::<Value>(&joined) {
                Ok(mut v) => {
                    filter_value(&mut v, ids, keep);
                    out.push_str("data: ");
                    out.push_str(&v.to_string());
                    out.push('\n');
                }
                Err(_) if !joined.trim().is_empty() => {
                    return Err(RewriteError("event data is not JSON".into()));
                }
                // Empty data (an event that only primes a reconnection): pass it on.
                Err(_) => {
                    for d in data {
                        out.push_str("data: ");
                        out.push_str(d);
                        out.push('\n');
                    }
                }
            }
        }
        if event.ends_with("\n\n") {
            out.push('\n');
        }
    }
    Ok(out.into_bytes())
}

/// Rewrites a response body by its content type.
pub fn filter_response(
    content_type: &str,
    body: &[u8],
    ids: &[Value],
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<u8>, RewriteError> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => filter_json(body, ids, keep),
        "text/event-stream" => filter_sse(body, ids, keep),
        other => Err(RewriteError(format!(
            "unexpected content type {other:?} for tools/list"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keep(name: &str) -> bool {
        name != "delete_project"
    }

    fn tools() -> Value {
        json!([{"name": "list_projects"}, {"name": "delete_project"}, {"name": "create_project"}])
    }

    #[test]
    fn json_single_and_batch() {
        let body = json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": tools()}}).to_string();
        let out: Value =
            serde_json::from_slice(&filter_json(body.as_bytes(), &[json!(2)], &keep).unwrap())
                .unwrap();
        assert_eq!(
            out["result"]["tools"],
            json!([{"name": "list_projects"}, {"name": "create_project"}])
        );
        // another id is left alone
        let out: Value =
            serde_json::from_slice(&filter_json(body.as_bytes(), &[json!(3)], &keep).unwrap())
                .unwrap();
        assert_eq!(out["result"]["tools"].as_array().unwrap().len(), 3);
        let batch = json!([{"jsonrpc": "2.0", "id": 1, "result": {}}, {"jsonrpc": "2.0", "id": "t", "result": {"tools": tools()}}]).to_string();
        let out: Value =
            serde_json::from_slice(&filter_json(batch.as_bytes(), &[json!("t")], &keep).unwrap())
                .unwrap();
        assert_eq!(out[1]["result"]["tools"].as_array().unwrap().len(), 2);
        assert!(filter_json(b"nope", &[json!(1)], &keep).is_err());
    }

    #[test]
    fn a_filtered_list_is_never_publicly_cacheable() {
        let body = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools(), "ttlMs": 0, "cacheScope": "public"}}).to_string();
        let out: Value =
            serde_json::from_slice(&filter_json(body.as_bytes(), &[json!(1)], &keep).unwrap())
                .unwrap();
        assert_eq!(out["result"]["cacheScope"], "private");
        let plain = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools()}}).to_string();
        let out: Value =
            serde_json::from_slice(&filter_json(plain.as_bytes(), &[json!(1)], &keep).unwrap())
                .unwrap();
        assert!(
            out["result"].get("cacheScope").is_none(),
            "no cache hints added for older protocols"
        );
    }

    #[test]
    fn sse_events() {
        let msg = json!({"jsonrpc": "2.0", "id": 5, "result": {"tools": tools()}}).to_string();
        let body = format!("event: message\r\nid: 1\r\ndata: {msg}\r\n\r\n: keep-alive\n\n");
        let out = String::from_utf8(
            filter_response(
                "text/event-stream; charset=utf-8",
                body.as_bytes(),
                &[json!(5)],
                &keep,
            )
            .unwrap(),
        )
        .unwrap();
        assert!(out.starts_with("event: message\nid: 1\ndata: "), "{out}");
        assert!(!out.contains("delete_project"), "{out}");
        assert!(out.contains("create_project"));
        assert!(out.contains(": keep-alive\n\n"));
    }

    #[test]
    fn sse_lines_end_as_clients_end_them() {
        // Caught by the `tools_list` fuzz target's invariant: after a BOM, or with lines ended by a lone CR,
        // the edge saw no `data:` line (or no JSON) and passed the list on unfiltered, while a
        // client (WHATWG event stream rules) read the whole list.
        let msg = json!({"jsonrpc": "2.0", "id": 5, "result": {"tools": tools()}}).to_string();
        let (head, tail) = msg.split_at(msg.find("\"result\"").unwrap());
        for body in [
            format!("\u{FEFF}data: {msg}\n\n"),
            format!("data: {head}\rdata: {tail}\r\r"),
            format!("data: {msg}\r\r"),
        ] {
            let out = filter_sse(body.as_bytes(), &[json!(5)], &keep).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("delete_project"), "{body:?} -> {out:?}");
            assert!(out.contains("create_project"), "{out:?}");
        }
    }

    #[test]
    fn sse_data_that_is_not_json_fails_closed() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for data in [
            "{\"id\":5,\"result\":{\"tools\":[]},\"x\":\"\\ud800\"}",
            deep.as_str(),
        ] {
            let body = format!("data: {data}\n\n");
            assert!(
                filter_sse(body.as_bytes(), &[json!(5)], &keep).is_err(),
                "{data}"
            );
        }
        let priming = "id: 0\ndata:\n\n";
        let out = filter_sse(priming.as_bytes(), &[json!(5)], &keep).unwrap();
        assert_eq!(out, b"id: 0\ndata: \n\n");
    }

    #[test]
    fn unknown_content_type_fails_closed() {
        assert!(filter_response("text/html", b"<p>", &[json!(1)], &keep).is_err());
    }
}
