//! The usage stream read in pages, the export checkpoint, and trimming.
//!
//! `usage report` and `usage export` read the stream a page at a time (XRANGE … COUNT) up to the
//! last entry there was when they started, so memory does not grow with the stream and two passes
//! over it see the same events.
//!
//! The export checkpoint (the key [`EXPORTED_UNTIL`]) is the id of the last stream entry an
//! incremental export has written out: every entry up to it was exported. It only moves forward.
//! Redis gives new entries ids above every earlier one, so an entry delivered after an export
//! always lies past its checkpoint. [`trim`] removes entries that are both older than a retention
//! and at or before the checkpoint, so nothing unexported is ever removed.

use redis::aio::ConnectionManager;

use super::event::UsageEvent;

/// Stream entries read per round trip.
pub const PAGE: usize = 1000;
/// The export checkpoint: the id of the last stream entry exported.
pub const EXPORTED_UNTIL: &str = "mcp-edge:usage-exported-until";

/// Sets the checkpoint to `ARGV[1]` unless it already is at or past it (ids compared as
/// `ms-seq` number pairs); returns the checkpoint.
const ADVANCE: &str = r"
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local current = redis.call('GET', KEYS[1])
if current then
  local cm, cs = parse(current)
  local nm, ns = parse(ARGV[1])
  if cm > nm or (cm == nm and cs >= ns) then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
";

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    pub fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The smallest id after this one.
    pub fn successor(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Reads the events of a stream in pages, oldest first, between a start and an end id.
pub struct Pages<'a> {
    conn: &'a mut ConnectionManager,
    stream: &'a str,
    /// The XRANGE start of the next page (`-`, or exclusive `(<id>`).
    next: String,
    /// The last entry to read; `None` once done (or for an empty stream).
    end: Option<String>,
}

/// The id of the stream's last entry, if any.
pub async fn last_id(
    conn: &mut ConnectionManager,
    stream: &str,
) -> redis::RedisResult<Option<String>> {
    let last: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(last.into_iter().next().map(|(id, _)| id))
}

impl<'a> Pages<'a> {
    /// Pages over the entries after `after` (all when `None`) up to `end` (inclusive; nothing
    /// when `None`), e.g. [`last_id`] taken once for several passes.
    pub fn between(
        conn: &'a mut ConnectionManager,
        stream: &'a str,
        after: Option<&str>,
        end: Option<String>,
    ) -> Self {
        Self {
            conn,
            stream,
            next: after.map_or_else(|| "-".to_owned(), |id| format!("({id}")),
            end,
        }
    }

    /// The next page of `(entry id, event)`; `None` when done. Entries that are not events are
    /// skipped with a warning.
    pub async fn next_page(&mut self) -> redis::RedisResult<Option<Vec<(String, UsageEvent)>>> {
        let Some(end) = self.end.clone() else {
            return Ok(None);
        };
        let page: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(self.stream)
            .arg(&self.next)
            .arg(&end)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(self.conn)
            .await?;
        match page.last() {
            Some((last, _)) if page.len() == PAGE && *last != end => {
                self.next = format!("({last}");
            }
            _ => self.end = None,
        }
        if page.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            page.into_iter()
                .filter_map(|(id, fields)| match UsageEvent::from_fields(&fields) {
                    Ok(event) => Some((id, event)),
                    Err(e) => {
                        tracing::warn!(id, error = %e, "skipping a stream entry");
                        None
                    }
                })
                .collect(),
        ))
    }
}

/// The export checkpoint, if an incremental export recorded one.
pub async fn checkpoint(conn: &mut ConnectionManager) -> redis::RedisResult<Option<String>> {
    redis::cmd("GET")
        .arg(EXPORTED_UNTIL)
        .query_async(conn)
        .await
}

/// Moves the checkpoint forward to `id` (never back); the checkpoint after.
pub async fn advance_checkpoint(
    conn: &mut ConnectionManager,
    id: &str,
) -> redis::RedisResult<String> {
    redis::Script::new(ADVANCE)
        .key(EXPORTED_UNTIL)
        .arg(id)
        .invoke_async(conn)
        .await
}

/// What [`trim`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trimmed {
    /// Entries removed.
    pub removed: u64,
    /// Entries before this id are gone (`None`: nothing could be removed).
    pub below: Option<EntryId>,
}

/// Removes the entries of `stream` older than `older_than` (by entry id, that is by delivery
/// time on Redis's clock) that the export checkpoint covers. Without a checkpoint nothing is
/// removed.
pub async fn trim(
    conn: &mut ConnectionManager,
    stream: &str,
    older_than: std::time::Duration,
) -> anyhow::Result<Trimmed> {
    let none = Trimmed {
        removed: 0,
        below: None,
    };
    let Some(exported) = checkpoint(conn).await? else {
        return Ok(none);
    };
    let exported = EntryId::parse(&exported)
        .ok_or_else(|| anyhow::anyhow!("the export checkpoint {exported:?} is not a stream id"))?;
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
    let now_ms = secs * 1000 + micros / 1000;
    let retention_ms = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
    let old = EntryId {
        ms: now_ms.saturating_sub(retention_ms),
        seq: 0,
    };
    let below = old.min(exported.successor());
    let removed: u64 = redis::cmd("XTRIM")
        .arg(stream)
        .arg("MINID")
        .arg(below.to_string())
        .query_async(conn)
        .await?;
    Ok(Trimmed {
        removed,
        below: Some(below),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_order_as_redis_does() {
        let id = |s| EntryId::parse(s).expect("id");
        assert!(id("9-5") < id("10-0") && id("10-0") < id("10-1"));
        assert_eq!(id("10-0").min(id("1-99")), id("1-99"));
        assert_eq!(id("7-3").successor().to_string(), "7-4");
        assert_eq!(
            id(&format!("7-{}", u64::MAX)).successor().to_string(),
            "8-0"
        );
        assert_eq!(EntryId::parse("7"), None);
        assert_eq!(EntryId::parse("a-1"), None);
    }
}
