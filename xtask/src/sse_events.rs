//! Reads the events of a `text/event-stream` body as it arrives, for the MCP client of
//! `cargo xtask tool-scopes` ([`crate::mcp_lister`]): a Streamable HTTP server may answer a POST
//! with an SSE stream instead of one JSON object, and send notifications (or requests) before the
//! answer. Follows the WHATWG event stream format: lines end with CRLF, LF or CR; `data:` lines of
//! one event are joined with LF; an empty line ends the event; comments (`:`) and the other fields
//! (`event`, `id`, `retry`) are skipped, as the client only needs each event's data. Pure.

/// The events' data so far, fed chunk by chunk.
#[derive(Debug, Default)]
pub struct SseEvents {
    /// Bytes of a line not yet ended.
    pending: Vec<u8>,
    /// The `data` lines of the event being read.
    data: Vec<String>,
}

impl SseEvents {
    /// Feeds `chunk` and returns the data of every event it completes, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        let mut at = 0;
        while at < self.pending.len() {
            let end_len = match self.pending[at] {
                b'\n' => 1,
                b'\r' => match self.pending.get(at + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    // A CR that ends the chunk may be the first half of a CRLF: wait.
                    None => break,
                },
                _ => {
                    at += 1;
                    continue;
                }
            };
            let line = String::from_utf8_lossy(&self.pending[start..at]).into_owned();
            self.line(&line, &mut events);
            at += end_len;
            start = at;
        }
        self.pending.drain(..start);
        events
    }

    /// How many bytes wait for the end of their line.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                events.push(self.data.join("\n"));
                self.data.clear();
            }
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            self.data.push(value.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_with_every_line_ending_and_field() {
        let mut sse = SseEvents::default();
        let body = ": comment\r\nevent: message\r\nid: 1\r\ndata: {\"a\":\r\ndata:1}\r\n\r\n\
                    retry: 5\n\ndata: two\rdata: lines\r\rdata: unfinished";
        assert_eq!(sse.push(body.as_bytes()), ["{\"a\":\n1}", "two\nlines"]);
        assert_eq!(sse.pending_len(), "data: unfinished".len());
        assert_eq!(sse.push(b"\n\n"), ["unfinished"]);
    }

    #[test]
    fn chunks_split_anywhere_give_the_same_events() {
        let body = b"data: {\"id\":1}\r\n\r\n: keep-alive\r\n\r\ndata: x\r\n\r\n";
        for cut in 0..body.len() {
            let mut sse = SseEvents::default();
            let mut events = sse.push(&body[..cut]);
            events.extend(sse.push(&body[cut..]));
            assert_eq!(events, ["{\"id\":1}", "x"], "cut at {cut}");
        }
    }
}
