//! The [`MeterStore`] of a backend without Redis: counters and recent usage events in this process.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::event::{SpoolRecord, UsageEvent};
use super::meter_store::{MeterError, MeterStore, Reservation};

/// Counters and events in this process (no Redis configured). One mutex makes every operation
/// atomic. Events are logged (target `mcp_edge_backend::usage`) and the most recent ones kept.
#[derive(Debug, Default)]
pub struct MemoryMeter {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    counters: HashMap<String, u64>,
    events: Vec<UsageEvent>,
    seen: HashSet<String>,
    /// Calls counted by a reservation whose event is not delivered yet.
    reserved: HashSet<String>,
}

/// How many events [`MemoryMeter`] keeps.
const MEMORY_EVENTS_KEPT: usize = 10_000;

impl MemoryMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The most recent events delivered (for tests and debugging).
    pub fn events(&self) -> Vec<UsageEvent> {
        self.state
            .lock()
            .map(|s| s.events.clone())
            .unwrap_or_default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemoryState>, MeterError> {
        self.state
            .lock()
            .map_err(|_| MeterError("usage counters lock poisoned".into()))
    }
}

#[async_trait]
impl MeterStore for MemoryMeter {
    async fn reserve(
        &self,
        key: &str,
        limit: Option<u64>,
        event_id: &str,
    ) -> Result<Reservation, MeterError> {
        let mut state = self.lock()?;
        let used = state.counters.get(key).copied().unwrap_or(0);
        if state.reserved.contains(event_id) {
            return Ok(Reservation::Granted { used });
        }
        if limit.is_some_and(|limit| used >= limit) {
            return Ok(Reservation::Exhausted { used });
        }
        state.counters.insert(key.to_owned(), used + 1);
        state.reserved.insert(event_id.to_owned());
        Ok(Reservation::Granted { used: used + 1 })
    }

    async fn raise_to(&self, key: &str, floor: u64) -> Result<u64, MeterError> {
        let mut state = self.lock()?;
        let used = state.counters.entry(key.to_owned()).or_insert(0);
        *used = (*used).max(floor);
        Ok(*used)
    }

    async fn refund(&self, key: &str, event_id: &str) -> Result<(), MeterError> {
        let mut state = self.lock()?;
        if state.reserved.remove(event_id)
            && let Some(used) = state.counters.get_mut(key)
        {
            *used = used.saturating_sub(1);
        }
        Ok(())
    }

    async fn used(&self, key: &str) -> Result<u64, MeterError> {
        Ok(self.lock()?.counters.get(key).copied().unwrap_or(0))
    }

    async fn deliver(&self, record: &SpoolRecord, quota_key: &str) -> Result<bool, MeterError> {
        let mut state = self.lock()?;
        if !state.seen.insert(record.event.event_id.clone()) {
            return Ok(false);
        }
        // Delivered events never reserve again (replays are refused), so the marker can go.
        if !state.reserved.remove(&record.event.event_id) {
            *state.counters.entry(quota_key.to_owned()).or_insert(0) += 1;
        }
        tracing::info!(
            target: "mcp_edge_backend::usage",
            event_id = %record.event.event_id,
            tenant_id = %record.event.tenant_id,
            tool = %record.event.tool,
            user_id = %record.event.user_id,
            timestamp = %record.event.timestamp,
            "usage event"
        );
        if state.events.len() >= MEMORY_EVENTS_KEPT {
            let old = state.events.remove(0);
            state.seen.remove(&old.event_id);
        }
        state.events.push(record.event.clone());
        Ok(true)
    }

    /// Always `Ok(true)`: without Redis, the process-wide set of
    /// [`RecentCalls`](super::recent::RecentCalls) is the only record of calls run.
    async fn claim_once(&self, _key: &str, _ttl_secs: u64) -> Result<bool, MeterError> {
        Ok(true)
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::test_tenant;

    #[tokio::test]
    async fn memory_counters_stop_at_the_limit_and_refund() {
        let m = MemoryMeter::new();
        for i in 1..=3 {
            assert_eq!(
                m.reserve("k", Some(3), &format!("r/{i}"))
                    .await
                    .expect("reserve"),
                Reservation::Granted { used: i }
            );
        }
        assert_eq!(
            m.reserve("k", Some(3), "r/4").await.expect("reserve"),
            Reservation::Exhausted { used: 3 }
        );
        // The same call again is granted without counting it twice.
        assert_eq!(
            m.reserve("k", Some(3), "r/3").await.expect("reserve"),
            Reservation::Granted { used: 3 }
        );
        m.refund("k", "r/3").await.expect("refund");
        m.refund("k", "r/3").await.expect("refund");
        assert_eq!(m.used("k").await.expect("used"), 2);
        m.refund("none", "r/9").await.expect("refund");
        assert_eq!(m.used("none").await.expect("used"), 0);
        assert_eq!(
            m.reserve("u", None, "r/5").await.expect("reserve"),
            Reservation::Granted { used: 1 }
        );
    }

    #[tokio::test]
    async fn memory_delivery_is_idempotent_and_counts_uncounted_calls() {
        let m = MemoryMeter::new();
        let event = UsageEvent::new(&test_tenant("acme"), "create_task", "1", chrono::Utc::now());
        let record = SpoolRecord {
            event,
            quota_counted: false,
        };
        assert!(m.deliver(&record, "q").await.expect("deliver"));
        assert!(!m.deliver(&record, "q").await.expect("deliver"));
        assert_eq!(m.used("q").await.expect("used"), 1);
        assert_eq!(m.events().len(), 1);
    }
}
