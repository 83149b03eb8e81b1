//! Rewriting `tools/list` results so that a token sees only the tools it may call.
//!
//! The backend lists its whole catalogue; the edge knows the token. A list can reach a client on
//! any response, not only on the answer to the POST that asked: a resumed stream (`GET` with
//! `Last-Event-ID`) replays it, a client that reuses a JSON-RPC id gets it on another request's
//! stream, a server may answer any request with one. So every JSON-RPC result the edge passes on,
//! whatever its id, that has the shape of a `ListToolsResult` (`result.tools` an array) is
//! filtered. Responses come as JSON (one message or a batch) or as a `text/event-stream` whose
//! `data:` lines carry JSON-RPC messages. Bytes that cannot name a `tools` member
//! ([`may_list_tools`]) pass as they came; the rest must be JSON, else the body is replaced by an
//! error (fail closed: a client with a more lenient JSON reader could still find a list in it). A
//! filtered list is this token's own: where the result carries cache hints (MCP 2026-07-28), its
//! `cacheScope` becomes `private`, so no intermediary serves one token's list to another.

use serde_json::Value;

use crate::sse::{Event, EventSplitter};

/// Whether `bytes` might hold a `tools` member, read by any JSON reader: the name spelt out (in
/// any case), or written with escapes (a backslash), or text that is not plain UTF-8 JSON (a NUL:
/// UTF-16 or UTF-32 text). Bytes without any of these cannot, so they need no parsing.
pub fn may_list_tools(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| matches!(b, b'\\' | 0))
        || bytes.windows(5).any(|w| w.eq_ignore_ascii_case(b"tools"))
}

/// Filters one JSON-RPC message (or a batch) in place: every result whose `tools` is an array.
/// Returns whether anything was filtered.
fn filter_value(v: &mut Value, keep: &dyn Fn(&str) -> bool) -> bool {
    match v {
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |acc, i| filter_value(i, keep) | acc),
        Value::Object(obj) => {
            let Some(result) = obj.get_mut("result").and_then(Value::as_object_mut) else {
                return false;
            };
            let Some(Value::Array(tools)) = result.get_mut("tools") else {
                return false;
            };
            tools.retain(|t| t.get("name").and_then(Value::as_str).is_some_and(keep));
            if result.contains_key("cacheScope") || result.contains_key("ttlMs") {
                result.insert("cacheScope".into(), Value::String("private".into()));
            }
            true
        }
        _ => false,
    }
}

/// Why a response could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteError(pub String);

/// Filters JSON text: `None` when it passes as it came (no list in it), else the rewritten text.
fn filter_json_text(
    text: &[u8],
    keep: &dyn Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>, RewriteError> {
    if !may_list_tools(text) {
        return Ok(None);
    }
    let mut v: Value = serde_json::from_slice(text)
        .map_err(|e| RewriteError(format!("response is not JSON: {e}")))?;
    if !filter_value(&mut v, keep) {
        return Ok(None);
    }
    serde_json::to_vec(&v)
        .map(Some)
        .map_err(|e| RewriteError(e.to_string()))
}

/// Rewrites a JSON body; `None` when it passes as it came.
pub fn filter_json(
    body: &[u8],
    keep: &dyn Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>, RewriteError> {
    filter_json_text(body, keep)
}

/// Rewrites a `text/event-stream` as it streams: each complete event goes on at once. An event
/// whose data holds a tool list is rewritten (its other lines kept, its data filtered); every
/// event `id` is handed to `bind_id` and goes on as what it returns (the line is dropped on
/// `None`); an event with neither passes byte for byte. Events are split as clients split them
/// ([`crate::sse`]).
#[derive(Debug)]
pub struct SseFilter {
    events: EventSplitter,
}

/// What the client gets for an event's `id`: `None` drops the line.
pub type BindId<'a> = &'a dyn Fn(&str) -> Option<String>;

impl SseFilter {
    /// `max_event`: the most bytes one event may take (held until it is complete).
    pub fn new(max_event: usize) -> Self {
        Self {
            events: EventSplitter::new(max_event),
        }
    }

    /// The bytes to send on for this chunk (`end`: the stream's last).
    pub fn push(
        &mut self,
        chunk: &[u8],
        end: bool,
        keep: &dyn Fn(&str) -> bool,
        bind_id: BindId<'_>,
    ) -> Result<Vec<u8>, RewriteError> {
        let err = |e: crate::sse::SseError| RewriteError(e.to_string());
        let mut out = Vec::with_capacity(chunk.len());
        let events = self.events.push(chunk).map_err(err)?;
        if self.events.take_bom() {
            out.extend_from_slice("\u{FEFF}".as_bytes());
        }
        for event in events {
            filter_event(&event, true, keep, bind_id, &mut out)?;
        }
        if end && let Some(tail) = self.events.finish().map_err(err)? {
            // Clients drop an event the stream's end cuts off; a lenient one may not.
            filter_event(&tail, false, keep, bind_id, &mut out)?;
        }
        Ok(out)
    }
}

/// The id a client keeps for an `id` field's value: `None` for one it ignores (a NUL in it), and
/// an empty value (which resets the client's last event id) is kept as it is.
fn rebound_id(value: &str, bind_id: BindId<'_>) -> Option<String> {
    if value.contains('\0') {
        return None;
    }
    if value.is_empty() {
        return Some(String::new());
    }
    bind_id(value)
}

/// Appends `event` to `out`, rewritten when it holds a tool list or an `id` (`complete`: it ended
/// with an empty line, which the rewritten event keeps).
fn filter_event(
    event: &Event,
    complete: bool,
    keep: &dyn Fn(&str) -> bool,
    bind_id: BindId<'_>,
    out: &mut Vec<u8>,
) -> Result<(), RewriteError> {
    let data = event.data().unwrap_or_default();
    let filtered = if data.trim().is_empty() {
        // No data, or empty data (an event that only primes a reconnection).
        None
    } else {
        filter_json_text(data.as_bytes(), keep)
            .map_err(|_| RewriteError("event data is not JSON".into()))?
    };
    let has_id = event
        .lines
        .iter()
        .any(|l| Event::field(l).is_some_and(|(name, _)| name == "id"));
    if filtered.is_none() && !has_id {
        out.extend_from_slice(&event.raw);
        return Ok(());
    }
    for line in &event.lines {
        match Event::field(line) {
            Some(("id", value)) => {
                if let Some(id) = rebound_id(value, bind_id) {
                    out.extend_from_slice(b"id: ");
                    out.extend_from_slice(id.as_bytes());
                    out.push(b'\n');
                }
                continue;
            }
            Some(("data", _)) if filtered.is_some() => continue,
            _ => out.extend_from_slice(line.as_bytes()),
        }
        out.push(b'\n');
    }
    if let Some(json) = filtered {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&json);
        out.push(b'\n');
    }
    if complete {
        out.push(b'\n');
    }
    Ok(())
}

/// Rewrites a whole SSE body (see [`SseFilter`]).
pub fn filter_sse(
    body: &[u8],
    keep: &dyn Fn(&str) -> bool,
    bind_id: BindId<'_>,
) -> Result<Vec<u8>, RewriteError> {
    SseFilter::new(usize::MAX).push(body, true, keep, bind_id)
}

/// The media type of a `Content-Type` value, lowercased, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether a media type is JSON (`application/json`, or a `+json` type).
pub fn is_json(media: &str) -> bool {
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Rewrites a whole response body by its content type; `None` when it passes as it came. A body
/// that is neither JSON nor an event stream is refused (for an answer that must be a list).
pub fn filter_response(
    content_type: &str,
    body: &[u8],
    keep: &dyn Fn(&str) -> bool,
    bind_id: BindId<'_>,
) -> Result<Option<Vec<u8>>, RewriteError> {
    let media = media_type(content_type);
    match media.as_str() {
        "text/event-stream" => filter_sse(body, keep, bind_id).map(Some),
        json if is_json(json) => filter_json(body, keep),
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

    /// Ids go on as they came (the edge's binding is tested in the gate).
    fn same_id(id: &str) -> Option<String> {
        Some(id.to_string())
    }

    fn tools() -> Value {
        json!([{"name": "list_projects"}, {"name": "delete_project"}, {"name": "create_project"}])
    }

    fn json_out(body: &str) -> Value {
        let out = filter_json(body.as_bytes(), &keep)
            .unwrap()
            .expect("rewritten");
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn json_single_and_batch_whatever_the_id() {
        for id in [json!(2), json!("t"), Value::Null] {
            let body = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools()}});
            let out = json_out(&body.to_string());
            assert_eq!(
                out["result"]["tools"],
                json!([{"name": "list_projects"}, {"name": "create_project"}])
            );
        }
        let batch = json!([{"jsonrpc": "2.0", "id": 1, "result": {}}, {"jsonrpc": "2.0", "id": "t", "result": {"tools": tools()}}]).to_string();
        let out = json_out(&batch);
        assert_eq!(out[1]["result"]["tools"].as_array().unwrap().len(), 2);
        assert!(filter_json(b"tools?", &keep).is_err());
    }

    #[test]
    fn bodies_without_a_list_pass_as_they_came() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":"not an array"}}"#,
            r#"{"jsonrpc":"2.0","method":"sampling/createMessage","params":{"tools":[{"name":"delete_project"}]}}"#,
            "not JSON at all",
        ] {
            assert_eq!(filter_json(body.as_bytes(), &keep), Ok(None), "{body}");
        }
    }

    #[test]
    fn a_list_spelt_with_escapes_or_in_utf16_is_read_or_refused() {
        let escaped =
            r#"{"jsonrpc":"2.0","id":1,"result":{"tool\u0073":[{"name":"delete_project"}]}}"#;
        assert!(may_list_tools(escaped.as_bytes()));
        let out = json_out(escaped);
        assert_eq!(out["result"]["tools"], json!([]));
        let utf16: Vec<u8> =
            r#"{"result":{"tools":[]}}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert!(may_list_tools(&utf16));
        assert!(filter_json(&utf16, &keep).is_err());
        assert!(may_list_tools(b"{\"TOOLS\": 1}"));
        assert!(!may_list_tools(b"{\"tool\": \"s\"}"));
    }

    #[test]
    fn a_filtered_list_is_never_publicly_cacheable() {
        let body = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools(), "ttlMs": 0, "cacheScope": "public"}}).to_string();
        assert_eq!(json_out(&body)["result"]["cacheScope"], "private");
        let plain = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools()}}).to_string();
        assert!(
            json_out(&plain)["result"].get("cacheScope").is_none(),
            "no cache hints added for older protocols"
        );
    }

    #[test]
    fn sse_events() {
        let msg = json!({"jsonrpc": "2.0", "id": 5, "result": {"tools": tools()}}).to_string();
        let body = format!("event: message\r\nid: 1\r\ndata: {msg}\r\n\r\n: keep-alive\n\n");
        let out = filter_response(
            "text/event-stream; charset=utf-8",
            body.as_bytes(),
            &keep,
            &same_id,
        )
        .unwrap()
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("event: message\nid: 1\ndata: "), "{out}");
        assert!(!out.contains("delete_project"), "{out}");
        assert!(out.contains("create_project"));
        assert!(out.contains(": keep-alive\n\n"));
    }

    #[test]
    fn event_ids_are_bound_and_ignored_ones_dropped() {
        let bind = |id: &str| Some(format!("{id}.mac"));
        let note = r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#;
        let body = format!(
            "id: s1_0\nretry: 100\ndata:\n\nid\ndata: {note}\n\nid: a\0b\ndata: {note}\n\n: c\n\n"
        );
        let out = String::from_utf8(filter_sse(body.as_bytes(), &keep, &bind).unwrap()).unwrap();
        assert_eq!(
            out,
            format!(
                "id: s1_0.mac\nretry: 100\ndata:\n\nid: \ndata: {note}\n\ndata: {note}\n\n: c\n\n"
            )
        );
        let none = |_: &str| None;
        let out = filter_sse(b"id: 7\ndata: {}\n\n", &keep, &none).unwrap();
        assert_eq!(
            out, b"data: {}\n\n",
            "an id that cannot be bound is dropped"
        );
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
            let out = filter_sse(body.as_bytes(), &keep, &same_id).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("delete_project"), "{body:?} -> {out:?}");
            assert!(out.contains("create_project"), "{out:?}");
        }
    }

    #[test]
    fn sse_data_that_may_hold_a_list_and_is_not_json_fails_closed() {
        let deep = format!("{}\"tools\"{}", "[".repeat(200), "]".repeat(200));
        for data in [
            "{\"id\":5,\"result\":{\"tools\":[]},\"x\":\"\\ud800\"}",
            deep.as_str(),
        ] {
            let body = format!("data: {data}\n\n");
            assert!(
                filter_sse(body.as_bytes(), &keep, &same_id).is_err(),
                "{data}"
            );
        }
        let priming = "data:\n\n: comment\n\n";
        let out = filter_sse(priming.as_bytes(), &keep, &same_id).unwrap();
        assert_eq!(out, priming.as_bytes(), "passed byte for byte");
    }

    /// Every chunking of a stream gives the bytes the whole stream gives: cut at every offset,
    /// and one byte at a time.
    #[test]
    fn a_stream_filters_the_same_whatever_its_chunks() {
        let msg = json!({"jsonrpc": "2.0", "id": 5, "result": {"tools": tools()}}).to_string();
        let (head, tail) = msg.split_at(msg.find("\"result\"").unwrap());
        let note = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#;
        let stream = format!(
            "\u{FEFF}: hello\r\nretry: 10\r\n\r\nevent: message\rdata: {note}\r\r\
             id: 9\r\ndata: {head}\r\ndata: {tail}\r\n\r\ndata: {note}\n\ndata: {msg}"
        );
        let stream = stream.as_bytes();
        let whole = filter_sse(stream, &keep, &same_id).unwrap();
        let text = String::from_utf8(whole.clone()).unwrap();
        assert!(!text.contains("delete_project") && text.contains("create_project"));
        assert!(
            text.starts_with("\u{FEFF}: hello\r\nretry: 10\r\n\r\nevent: message\r"),
            "the BOM passes on: {text}"
        );
        assert_eq!(text.matches("notifications/progress").count(), 2);
        let stream_through = |cuts: &mut dyn Iterator<Item = usize>| {
            let mut f = SseFilter::new(1 << 16);
            let mut out = Vec::new();
            let mut from = 0;
            for cut in cuts {
                out.extend(f.push(&stream[from..cut], false, &keep, &same_id).unwrap());
                from = cut;
            }
            out.extend(f.push(&stream[from..], true, &keep, &same_id).unwrap());
            out
        };
        for cut in 0..=stream.len() {
            assert_eq!(
                stream_through(&mut std::iter::once(cut)),
                whole,
                "cut at {cut}"
            );
        }
        assert_eq!(stream_through(&mut (1..stream.len())), whole);
    }

    #[test]
    fn events_go_on_as_soon_as_they_are_complete() {
        let mut f = SseFilter::new(64);
        let note = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n";
        let out = f.push(note.as_bytes(), false, &keep, &same_id).unwrap();
        assert_eq!(out, note.as_bytes(), "a notification is not held back");
        // Half an event waits for its end; past the limit the stream fails.
        assert!(
            f.push(b"data: {\"id\":", false, &keep, &same_id)
                .unwrap()
                .is_empty()
        );
        let big = [b' '; 64];
        assert!(f.push(&big, false, &keep, &same_id).is_err());
    }

    #[test]
    fn unknown_content_type_fails_closed() {
        assert!(filter_response("text/html", b"<p>", &keep, &same_id).is_err());
        assert!(is_json("application/problem+json") && !is_json("text/json+x"));
    }
}
