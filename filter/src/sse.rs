//! Splitting a `text/event-stream` into events as they arrive, the way a client reads it.
//!
//! The edge rewrites one event of a streamed `tools/list` answer and passes every other event on
//! as soon as it is complete, so it must see the same events a client sees: the WHATWG HTML "event
//! stream interpretation" rules. One leading BOM is dropped; a line ends with CRLF, LF or a lone CR
//! (a CR at the end of a chunk ends its line at once; an LF that follows it in the next chunk
//! belongs to it); an empty line ends an event; `data` lines join with LF. Bytes are kept as they
//! came, so an event the edge does not change is passed on byte for byte. Only an incomplete
//! trailing event is held, and at most `max_event` bytes of it.

use std::ops::Range;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why a stream could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// One event is larger than the limit: holding it would let the upstream fill the edge's memory.
    EventTooLarge(usize),
    /// An event is not UTF-8 (a client would read replacement characters where the edge reads none).
    NotUtf8,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EventTooLarge(max) => write!(f, "an event is larger than {max} bytes"),
            Self::NotUtf8 => f.write_str("event stream is not UTF-8"),
        }
    }
}

/// One event: its bytes as received (terminating empty line included when it had one) and its
/// non-empty lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub raw: Vec<u8>,
    pub lines: Vec<String>,
}

impl Event {
    /// The field name and value of a line (`None` for a comment).
    pub fn field(line: &str) -> Option<(&str, &str)> {
        if line.starts_with(':') {
            return None;
        }
        Some(match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        })
    }

    /// The event's data as a client dispatches it: every `data` line joined by LF; `None` when
    /// the event has no `data` line (a client dispatches nothing).
    pub fn data(&self) -> Option<String> {
        let mut data: Option<String> = None;
        for (name, value) in self.lines.iter().filter_map(|l| Self::field(l)) {
            if name == "data" {
                let d = data.get_or_insert_with(String::new);
                d.push_str(value);
                d.push('\n');
            }
        }
        data.map(|mut d| {
            d.pop(); // the LF after the last data line
            d
        })
    }
}

/// The splitter's state between chunks.
#[derive(Debug)]
pub struct EventSplitter {
    max_event: usize,
    /// The bytes of the current, incomplete event.
    pending: Vec<u8>,
    /// How far `pending` has been scanned.
    scanned: usize,
    /// Where the line being scanned starts in `pending`.
    line_start: usize,
    /// The current event's non-empty lines so far, as ranges of `pending`.
    lines: Vec<Range<usize>>,
    /// The last line ended with a CR: an LF right after it belongs to that line end.
    after_cr: bool,
    /// Whether the start of the stream was checked for a BOM.
    bom_checked: bool,
    /// The stream began with a BOM, not yet reported by [`Self::take_bom`].
    bom: bool,
}

impl EventSplitter {
    /// `max_event`: the most bytes an incomplete event may hold before the stream is refused.
    pub fn new(max_event: usize) -> Self {
        Self {
            max_event,
            pending: Vec::new(),
            scanned: 0,
            line_start: 0,
            lines: Vec::new(),
            after_cr: false,
            bom_checked: false,
            bom: false,
        }
    }

    /// Whether the stream began with a BOM (once). Whoever passes the events on must send it
    /// first: without it, a second BOM at the start of the first event would become the one a
    /// client drops, and `\u{FEFF}data:` (no field a client knows) would read as `data:`.
    pub fn take_bom(&mut self) -> bool {
        std::mem::take(&mut self.bom)
    }

    /// Takes the next chunk; returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        self.pending.extend_from_slice(chunk);
        if !self.bom_checked {
            if self.pending.len() < BOM.len() && BOM.starts_with(&self.pending) {
                return Ok(Vec::new());
            }
            if self.pending.starts_with(BOM) {
                self.pending.drain(..BOM.len());
                self.bom = true;
            }
            self.bom_checked = true;
        }
        let mut events = Vec::new();
        let mut event_start = 0;
        let mut i = self.scanned;
        while i < self.pending.len() {
            let b = self.pending[i];
            i += 1;
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                self.line_start = i;
                continue;
            }
            if b != b'\n' && b != b'\r' {
                continue;
            }
            self.after_cr = b == b'\r';
            let line = self.line_start..i - 1;
            self.line_start = i;
            if !line.is_empty() {
                self.lines.push(line);
                continue;
            }
            events.push(self.event(event_start..i)?);
            event_start = i;
        }
        self.pending.drain(..event_start);
        self.scanned = self.pending.len();
        self.line_start -= event_start;
        for line in &mut self.lines {
            *line = line.start - event_start..line.end - event_start;
        }
        if self.pending.len() > self.max_event {
            return Err(SseError::EventTooLarge(self.max_event));
        }
        Ok(events)
    }

    /// The end of the stream: what is left, an event without its closing empty line, if any.
    pub fn finish(&mut self) -> Result<Option<Event>, SseError> {
        if !self.bom_checked && !self.pending.is_empty() {
            return Err(SseError::NotUtf8); // a stream cut inside its BOM
        }
        if self.line_start < self.pending.len() {
            self.lines.push(self.line_start..self.pending.len());
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let end = self.pending.len();
        let event = self.event(0..end)?;
        self.pending.clear();
        self.scanned = 0;
        self.line_start = 0;
        Ok(Some(event))
    }

    /// The event in `pending[range]`, with the lines collected so far (which lie inside it).
    fn event(&mut self, range: Range<usize>) -> Result<Event, SseError> {
        let lines = std::mem::take(&mut self.lines)
            .into_iter()
            .map(|l| {
                std::str::from_utf8(&self.pending[l])
                    .map(str::to_owned)
                    .map_err(|_| SseError::NotUtf8)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let raw = self.pending[range].to_vec();
        Ok(Event { raw, lines })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(stream: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<Event>) {
        let mut s = EventSplitter::new(1 << 20);
        let mut events = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
            events.extend(s.push(&stream[from..cut]).unwrap());
            from = cut;
        }
        (events, s.finish().unwrap())
    }

    #[test]
    fn events_end_at_an_empty_line_whatever_the_line_ends() {
        let stream = b"\xEF\xBB\xBFevent: a\r\ndata: 1\r\n\r\n: c\rdata:2\r\rid: 7\ndata\ndata: 3\n\ndata: tail";
        let (events, tail) = split_all(stream, &[]);
        assert_eq!(events.len(), 3);
        // The event ends at its empty line's CR; the LF after it travels with the next event.
        assert_eq!(events[0].raw, b"event: a\r\ndata: 1\r\n\r");
        assert_eq!(events[0].lines, ["event: a", "data: 1"]);
        assert_eq!(events[0].data().as_deref(), Some("1"));
        assert_eq!(events[1].raw, b"\n: c\rdata:2\r\r");
        assert_eq!(events[1].data().as_deref(), Some("2"));
        assert_eq!(events[2].data().as_deref(), Some("\n3"));
        let tail = tail.unwrap();
        assert_eq!(tail.raw, b"data: tail");
        assert_eq!(tail.data().as_deref(), Some("tail"));
    }

    #[test]
    fn an_lf_after_a_cr_in_the_next_chunk_belongs_to_the_cr() {
        // "data: 1\r" | "\n\r" | "\n..." : one event, then nothing extra.
        let stream = b"data: 1\r\n\r\ndata: 2\r\n\r\n";
        for cut in 0..=stream.len() {
            let (events, tail) = split_all(stream, &[cut]);
            let data: Vec<_> = events.iter().map(Event::data).collect();
            assert_eq!(data, [Some("1".into()), Some("2".into())], "cut at {cut}");
            let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
            let tail_raw = tail.map(|t| t.raw).unwrap_or_default();
            assert_eq!([raw, tail_raw].concat(), stream, "cut at {cut}");
        }
    }

    #[test]
    fn the_bom_is_dropped_only_at_the_start_even_when_cut() {
        let stream = b"\xEF\xBB\xBFdata: x\n\n\xEF\xBB\xBFdata: y\n\n";
        for cut in 0..=4 {
            let (events, _) = split_all(stream, &[cut]);
            assert_eq!(events[0].data().as_deref(), Some("x"));
            assert!(
                events[1].lines[0].starts_with('\u{FEFF}'),
                "only the first BOM"
            );
        }
        let mut s = EventSplitter::new(100);
        s.push(b"\xEF\xBB").unwrap();
        assert_eq!(s.finish(), Err(SseError::NotUtf8));
    }

    #[test]
    fn only_the_first_of_two_boms_is_dropped_and_it_is_reported() {
        let mut s = EventSplitter::new(100);
        let events = s.push(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n").unwrap();
        assert!(s.take_bom());
        assert!(!s.take_bom(), "reported once");
        assert_eq!(
            events[0].data(),
            None,
            "a field named BOM + data is not data"
        );
        assert_eq!(events[0].raw, b"\xEF\xBB\xBFdata: x\n\n");
    }

    #[test]
    fn an_oversized_event_and_bytes_that_are_not_utf8_are_refused() {
        let mut s = EventSplitter::new(16);
        assert_eq!(s.push(b"data: 0123456789\n\n").unwrap().len(), 1);
        assert_eq!(
            s.push(b"data: 0123456789abcdef"),
            Err(SseError::EventTooLarge(16))
        );
        let mut s = EventSplitter::new(100);
        assert_eq!(s.push(b"data: \xFF\n\n"), Err(SseError::NotUtf8));
    }
}
