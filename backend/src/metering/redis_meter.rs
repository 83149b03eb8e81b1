//! Quota counters and the usage stream in Redis, a single server or a Redis Cluster. Every
//! operation is one Lua script, so a check and its increment, or an event and its idempotency
//! marker, are never separated.
//!
//! Keys: the tenant's day counter `{mcp-edge:tenant:{len}:{tenant}}:quota:{YYYY-MM-DD}` (see
//! [`quota_day`](super::keys::quota_day)) and per counted call its marker
//! `<counter>:reserved:{event_id}` (kept as long as the day counter; see
//! [`reserved`](super::keys::reserved)); the stream [`USAGE_STREAM`] and per delivered event its
//! marker `{mcp-edge:usage-events}:event-id:{event_id}` (kept [`EVENT_ID_TTL_SECS`]). Each script
//! touches the keys of one hash tag only — a tenant's counter and markers, or the stream and its
//! markers — so it runs on one slot of a cluster (no CROSSSLOT). Delivering an event is therefore
//! two scripts, each idempotent on its own: count the call unless it holds a reservation, then add
//! the event unless it was added; a delivery cut between them is repeated whole and changes
//! nothing twice. A call is counted once whether its reservation's answer was lost or it ran
//! uncounted and its event counts it later.
//!
//! The connection is made lazily and reconnects on its own with short timeouts, so the backend
//! starts while Redis is down and a dead Redis is noticed within about a second.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use super::day::COUNTER_TTL_SECS;
use super::event::SpoolRecord;
use super::keys::reserved;
use super::meter_store::{MeterError, MeterStore, Reservation};

/// The Redis stream of usage events.
pub const USAGE_STREAM: &str = "mcp-edge:usage-events";
/// Prefix of the per-event idempotency markers: the stream's name as their hash tag, so they share
/// its slot.
pub const EVENT_ID_PREFIX: &str = "{mcp-edge:usage-events}:event-id:";
/// How long an event's idempotency marker is kept: far longer than the window between delivering
/// an outbox event and removing it from the outbox.
pub const EVENT_ID_TTL_SECS: u64 = 7 * 24 * 60 * 60;

/// Connection timeout and answer deadline of the metering Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

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

/// `KEYS` the day counter, the call's reservation marker; `ARGV` ttl. Counts a delivered call that
/// holds no reservation (it ran while the store was down), once; returns 1 if it counted it.
const COUNT_UNRESERVED: &str = r"
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  return 1
end
return 0
";

/// `KEYS` stream, the event's idempotency marker; `ARGV` marker ttl, then field/value pairs. Adds
/// the event once per event id; returns 1 if added, 0 if it was a duplicate.
const ADD_EVENT: &str = r"
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
return 1
";

static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE));
static REFUND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REFUND));
static RAISE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RAISE));
static COUNT_UNRESERVED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(COUNT_UNRESERVED));
static ADD_EVENT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADD_EVENT));

/// One Redis server (through a reconnecting manager) or a Redis Cluster.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[derive(Clone)]
pub struct RedisMeter {
    conn: Connection,
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
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            conn: Connection::Single(conn),
        })
    }

    /// A meter on the Redis Cluster that `nodes` (one or more of its nodes' URLs) belong to,
    /// connecting in the background; commands follow the cluster's slots (MOVED, ASK, failover).
    pub fn lazy_cluster(nodes: &[String]) -> anyhow::Result<Self> {
        let client = ClusterClientBuilder::new(nodes.to_vec())
            .retries(2)
            .min_retry_wait(50)
            .max_retry_wait(200)
            .build()?;
        let config = ClusterConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        Ok(Self {
            conn: Connection::Cluster(client.get_pending_async_connection_with_config(config)),
        })
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
            .key(reserved(key, event_id))
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
            .key(reserved(key, event_id))
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
        let event_id = &record.event.event_id;
        COUNT_UNRESERVED_SCRIPT
            .key(quota_key)
            .key(reserved(quota_key, event_id))
            .arg(COUNTER_TTL_SECS)
            .invoke_async::<i64>(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let mut invocation = ADD_EVENT_SCRIPT.prepare_invoke();
        invocation
            .key(USAGE_STREAM)
            .key(format!("{EVENT_ID_PREFIX}{event_id}"))
            .arg(EVENT_ID_TTL_SECS);
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
