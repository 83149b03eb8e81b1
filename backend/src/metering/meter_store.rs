//! Where quota counters and usage events live: the [`MeterStore`] interface, implemented in memory
//! ([`MemoryMeter`](super::memory_meter::MemoryMeter)) and in Redis
//! ([`RedisMeter`](super::redis_meter::RedisMeter)).

use async_trait::async_trait;

use super::event::SpoolRecord;

/// The store could not be reached or answered with an error.
#[derive(Debug, thiserror::Error)]
#[error("usage store unavailable: {0}")]
pub struct MeterError(pub String);

/// The outcome of [`MeterStore::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The call was counted; `used` includes it.
    Granted { used: u64 },
    /// The limit is reached; nothing was counted.
    Exhausted { used: u64 },
}

#[async_trait]
pub trait MeterStore: Send + Sync + 'static {
    /// Atomically: if the call `event_id` holds no reservation yet and the counter at `key` is
    /// below `limit` (or there is no limit), add one to it (kept for
    /// [`COUNTER_TTL_SECS`](super::day::COUNTER_TTL_SECS)) and mark the call as counted. A call
    /// that is already counted (a reservation that ran but whose answer was lost) is granted
    /// without counting it again.
    async fn reserve(
        &self,
        key: &str,
        limit: Option<u64>,
        event_id: &str,
    ) -> Result<Reservation, MeterError>;
    /// Raises the counter at `key` to `floor` if it is lower (kept for
    /// [`COUNTER_TTL_SECS`](super::day::COUNTER_TTL_SECS)); the count after. Reconciles a counter
    /// after an outage with what a backend knows it reached (see [`super::fail_open`]).
    async fn raise_to(&self, key: &str, floor: u64) -> Result<u64, MeterError>;
    /// Gives back the reservation of `event_id`, if it holds one (never below zero).
    async fn refund(&self, key: &str, event_id: &str) -> Result<(), MeterError>;
    /// The counter at `key` (0 if none).
    async fn used(&self, key: &str) -> Result<u64, MeterError>;
    /// Adds the event to the usage stream unless an event with its id was added before, and, when
    /// its call holds no reservation (it ran while the store was down), adds one to `quota_key`
    /// and marks it counted — all or nothing. `Ok(false)`: a duplicate, nothing changed.
    async fn deliver(&self, record: &SpoolRecord, quota_key: &str) -> Result<bool, MeterError>;
    /// Records `key` for `ttl_secs` unless it is already recorded: `Ok(false)` means another
    /// call (on any backend sharing this store) claimed it first.
    async fn claim_once(&self, key: &str, ttl_secs: u64) -> Result<bool, MeterError>;
    /// `"memory"` or `"redis"`, for logs.
    fn kind(&self) -> &'static str;
}
