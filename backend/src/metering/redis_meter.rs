//! Quota counters and the usage stream in Redis. Every operation is one Lua script, so a check and
//! its increment, or an event and its idempotency marker, are never separated.
//!
//! Keys: the tenant's day counter `mcp-edge:tenant:{len}:{tenant}:quota:{YYYY-MM-DD}` (see
//! [`quota_day`](super::keys::quota_day)), the stream
//! [`USAGE_STREAM`], per delivered event the marker `mcp-edge:usage-event-ids:{event_id}`
//! (kept [`EVENT_ID_TTL_SECS`]), and per counted call the marker
//! `mcp-edge:usage-reserved:{event_id}` (kept as long as the day counter): a call is counted once
//! whether its reservation's answer was lost or it ran uncounted and its event counts it later.
//!
//! The connection is made lazily and reconnects on its own with short timeouts, so the backend
//! starts while Redis is down and a dead Redis is noticed within about a second.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::day::COUNTER_TTL_SECS;
use super::event::SpoolRecord;
use super::meter_store::{MeterError, MeterStore, Reservation};

/// The Redis stream of usage events.
pub const USAGE_STREAM: &str = "mcp-edge:usage-events";
/// Prefix of the per-event idempotency markers.
pub const EVENT_ID_PREFIX: &str = "mcp-edge:usage-event-ids:";
/// How long an event's idempotency marker is kept: far longer than the window between delivering
/// an outbox event and removing it from the outbox.
pub const EVENT_ID_TTL_SECS: u64 = 7 * 24 * 60 * 60;
/// Prefix of the per-call reservation markers.
pub const RESERVED_PREFIX: &str = "mcp-edge:usage-reserved:";

/// `KEYS` counter, the call's reservation marker; `ARGV` limit (-1: none), ttl. Returns
/// `{1, used}` after counting the call (or when it was counted before), `{0, used}` when the limit
/// is reached.
const RESERVE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {1, used}
end
local limit = tonumber(ARGV[1])
if limit >= 0 and used >= limit then
  return {0, used}
end
used = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
return {1, used}
";

/// `KEYS` counter; `ARGV` floor, ttl. Raises the counter to the floor if it is lower; returns the
/// count after.
const RAISE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if used < floor then
  redis.call('SET', KEYS[1], floor, 'EX', ARGV[2])
  return floor
end
return used
";

/// `KEYS` counter, the call's reservation marker. Takes the call's reservation back, if it holds
/// one, never below zero.
const REFUND: &str = r"
if redis.call('DEL', KEYS[2]) == 0 then
  return 0
end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used > 0 then
  redis.call('DECR', KEYS[1])
end
return 1
";

/// `KEYS` stream, the event's idempotency marker, the day counter, the call's reservation marker;
/// `ARGV` marker ttl, counter ttl, then field/value pairs. Adds the event once per event id, and
/// counts its call unless it holds a reservation; returns 1 if added, 0 if it was a duplicate.
const DELIVER: &str = r"
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
if redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return 1
";

static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE));
static REFUND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REFUND));
static RAISE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RAISE));
static DELIVER_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DELIVER));

#[derive(Clone)]
pub struct RedisMeter {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMeter").finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> MeterError {
    MeterError(e.to_string())
}

impl RedisMeter {
    /// A meter on `url`, connecting on first use (the backend starts even while Redis is down).
    pub fn lazy(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self { conn })
    }
}

#[async_trait]
impl MeterStore for RedisMeter {
    async fn reserve(
        &self,
        key: &str,
        limit: Option<u64>,
        event_id: &str,
    ) -> Result<Reservation, MeterError> {
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let (granted, used): (i64, i64) = RESERVE_SCRIPT
            .key(key)
            .key(format!("{RESERVED_PREFIX}{event_id}"))
            .arg(limit)
            .arg(COUNTER_TTL_SECS)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let used = u64::try_from(used).unwrap_or(0);
        Ok(if granted == 1 {
            Reservation::Granted { used }
        } else {
            Reservation::Exhausted { used }
        })
    }

    async fn raise_to(&self, key: &str, floor: u64) -> Result<u64, MeterError> {
        let used: i64 = RAISE_SCRIPT
            .key(key)
            .arg(floor)
            .arg(COUNTER_TTL_SECS)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    async fn refund(&self, key: &str, event_id: &str) -> Result<(), MeterError> {
        REFUND_SCRIPT
            .key(key)
            .key(format!("{RESERVED_PREFIX}{event_id}"))
            .invoke_async::<i64>(&mut self.conn.clone())
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn used(&self, key: &str) -> Result<u64, MeterError> {
        let used: Option<u64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(used.unwrap_or(0))
    }

    async fn deliver(&self, record: &SpoolRecord, quota_key: &str) -> Result<bool, MeterError> {
        let mut invocation = DELIVER_SCRIPT.prepare_invoke();
        invocation
            .key(USAGE_STREAM)
            .key(format!("{EVENT_ID_PREFIX}{}", record.event.event_id))
            .key(quota_key)
            .key(format!("{RESERVED_PREFIX}{}", record.event.event_id))
            .arg(EVENT_ID_TTL_SECS)
            .arg(COUNTER_TTL_SECS);
        for (field, value) in record.event.to_fields() {
            invocation.arg(field).arg(value);
        }
        let added: i64 = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(added == 1)
    }

    async fn claim_once(&self, key: &str, ttl_secs: u64) -> Result<bool, MeterError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg("1")
            .arg("NX")
            .arg("EX")
            .arg(ttl_secs)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
