//! What `usage export` has written out, so that exporting the same events again is a decision.
//!
//! Stripe drops a repeated meter event identifier only within 24 hours: a re-export a day later
//! bills every event again. So each event an export wrote out (its file fsynced and in place) is
//! recorded in a set per UTC day of the event, `{mcp-edge:usage-events}:exported:<YYYY-MM-DD>`
//! (the stream's hash tag), kept [`RECORD_TTL_SECS`]: Stripe refuses events older than 35 days, so
//! a record need not outlive that. An export that would write a recorded event out again is
//! refused unless asked with `--again`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use redis::aio::ConnectionManager;

use super::day::day_of_millis;
use super::event::UsageEvent;

/// Prefix of the per-day sets of exported event ids.
pub const EXPORTED_PREFIX: &str = "{mcp-edge:usage-events}:exported:";
/// How long an export is remembered: longer than the 35 days Stripe accepts an event's timestamp.
pub const RECORD_TTL_SECS: u64 = 40 * 24 * 60 * 60;

fn key(day: NaiveDate) -> String {
    format!("{EXPORTED_PREFIX}{}", day.format("%Y-%m-%d"))
}

/// The event ids of `events`, grouped by the key of their day.
fn by_day<'e>(events: &[&'e UsageEvent]) -> BTreeMap<String, Vec<&'e str>> {
    let mut days: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for event in events {
        let day = day_of_millis(event.timestamp_ms).unwrap_or_default();
        days.entry(key(day)).or_default().push(&event.event_id);
    }
    days
}

/// The ids among `events` that an earlier export wrote out.
pub async fn exported_before(
    conn: &mut ConnectionManager,
    events: &[&UsageEvent],
) -> redis::RedisResult<Vec<String>> {
    let mut seen = Vec::new();
    for (key, ids) in by_day(events) {
        let found: Vec<bool> = redis::cmd("SMISMEMBER")
            .arg(&key)
            .arg(&ids)
            .query_async(conn)
            .await?;
        seen.extend(
            ids.iter()
                .zip(found)
                .filter(|(_, found)| *found)
                .map(|(id, _)| (*id).to_owned()),
        );
    }
    Ok(seen)
}

/// Records `events` as written out.
pub async fn record(
    conn: &mut ConnectionManager,
    events: &[&UsageEvent],
) -> redis::RedisResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (key, ids) in by_day(events) {
        pipe.cmd("SADD").arg(&key).arg(&ids).ignore();
        pipe.cmd("EXPIRE").arg(&key).arg(RECORD_TTL_SECS).ignore();
    }
    pipe.query_async(conn).await
}
