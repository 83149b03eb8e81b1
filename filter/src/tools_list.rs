//! Rewriting `tools/list` results so that a token sees only the tools it may call.
//!
//! The backend lists its whole catalogue; the edge knows the token. Responses come as JSON (one
//! response or a batch of them) or as a `text/event-stream` whose `data:` lines carry JSON-RPC
//! messages. Only responses whose `id` belongs to a `tools/list` request of this exchange are
//! touched. A body the edge cannot read is replaced by an error (fail closed). A filtered list is
//! this token's own: where the result carries cache hints (MCP 2026-07-28), its `cacheScope`
//! becomes `private`, so no intermediary serves one token's list to another.

use serde_json::Value;

use crate::sse::{Event, EventSplitter};

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

/// Rewrites a `text/event-stream` answer as it streams: each complete event goes on at once.
/// Every event's data must be empty or JSON (a client with a more lenient JSON reader could
/// otherwise still find a tool list in it); an event carrying a response to one of `ids` is
/// rewritten (its other lines kept, its data filtered, LF line ends), every other event passes
/// byte for byte. Events are split as clients split them ([`crate::sse`]).
#[derive(Debug)]
pub struct SseFilter {
    events: EventSplitter,
}

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
        ids: &[Value],
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<u8>, RewriteError> {
        let err = |e: crate::sse::SseError| RewriteError(e.to_string());
        let mut out = Vec::with_capacity(chunk.len());
        let events = self.events.push(chunk).map_err(err)?;
        if self.events.take_bom() {
            out.extend_from_slice("\u{FEFF}".as_bytes());
        }
        for event in events {
            filter_event(&event, true, ids, keep, &mut out)?;
        }
        if end && let Some(tail) = self.events.finish().map_err(err)? {
            // Clients drop an event the stream's end cuts off; a lenient one may not.
            filter_event(&tail, false, ids, keep, &mut out)?;
        }
        Ok(out)
    }
}

/// Appends `event` to `out`, rewritten when it answers one of `ids` (`complete`: it ended with
/// an empty line, which the rewritten event keeps).
fn filter_event(
    event: &Event,
    complete: bool,
    ids: &[Value],
    keep: &dyn Fn(&str) -> bool,
    out: &mut Vec<u8>,
) -> Result<(), RewriteError> {
    let data = event.data().unwrap_or_default();
    if data.trim().is_empty() {
        // No data, or empty data (an event that only primes a reconnection).
        out.extend_from_slice(&event.raw);
        return Ok(());
    }
    let mut v: Value =
        serde_json::from_str(&data).map_err(|_| RewriteError("event data is not JSON".into()))?;
    if !filter_value(&mut v, ids, keep) {
        out.extend_from_slice(&event.raw);
        return Ok(());
    }
    for line in &event.lines {
        if Event::field(line).is_none_or(|(name, _)| name != "data") {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.push(b'\n');
    if complete {
        out.push(b'\n');
    }
    Ok(())
}

/// Rewrites a whole SSE body (see [`SseFilter`]).
pub fn filter_sse(
    body: &[u8],
    ids: &[Value],
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<u8>, RewriteError> {
    SseFilter::new(usize::MAX).push(body, true, ids, keep)
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
        let whole = filter_sse(stream, &[json!(5)], &keep).unwrap();
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
                out.extend(
                    f.push(&stream[from..cut], false, &[json!(5)], &keep)
                        .unwrap(),
                );
                from = cut;
            }
            out.extend(f.push(&stream[from..], true, &[json!(5)], &keep).unwrap());
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
        let out = f.push(note.as_bytes(), false, &[json!(5)], &keep).unwrap();
        assert_eq!(out, note.as_bytes(), "a notification is not held back");
        // Half an event waits for its end; past the limit the stream fails.
        assert!(
            f.push(b"data: {\"id\":", false, &[json!(5)], &keep)
                .unwrap()
                .is_empty()
        );
        let big = [b' '; 64];
        assert!(f.push(&big, false, &[json!(5)], &keep).is_err());
    }

    #[test]
    fn unknown_content_type_fails_closed() {
        assert!(filter_response("text/html", b"<p>", &[json!(1)], &keep).is_err());
    }
}
