//! The counters: fixed windows in Redis (shared by every instance of the service, so one budget
//! holds across them) or in memory (one instance only), with every Redis decision bounded in time.
//!
//! A decision is one atomic step over all the counters a request touches ([`fixed_window.lua`],
//! one EVALSHA): when every counter can take its hits, all are added; otherwise none is. Nothing
//! is read and then written in separate round trips, so concurrent callers, through any number
//! of instances, are admitted exactly up to the budget. The memory mode runs the same algorithm
//! under a lock. When Redis does not answer within the timeout the decision fails at once with
//! [`Unavailable`], so the caller applies its fail mode instead of waiting.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::policy::CounterCheck;

/// How Redis is reached and how long a decision may wait for it.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: String,
    /// The bound on one decision.
    pub timeout: Duration,
    /// The bound on one connection attempt.
    pub connect_timeout: Duration,
}

/// Why a decision could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis error: {0}")]
    Storage(String),
}

impl Unavailable {
    /// `timeout` or `error`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Storage(_) => "error",
        }
    }
}

/// One counter after a decision: what it holds and when its window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterState {
    pub count: u64,
    pub reset_in: Duration,
}

/// A decision: admitted (every counter took its hits) or not (none did), with each counter's
/// state keyed by counter key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub limited: bool,
    pub counters: HashMap<String, CounterState>,
}

const SCRIPT: &str = include_str!("fixed_window.lua");

enum Counters {
    Memory {
        windows: Mutex<HashMap<String, (u64, Instant)>>,
        max_counters: usize,
    },
    Redis {
        connection: ConnectionManager,
        script: redis::Script,
        timeout: Duration,
    },
}

/// The counters every decision is made against.
pub struct Limiter {
    counters: Counters,
}

impl Limiter {
    /// In-memory counters for a single instance, holding at most `max_counters` windows (when
    /// full, expired windows go first, then those closest to their end).
    pub fn memory(max_counters: u64) -> Self {
        Self {
            counters: Counters::Memory {
                windows: Mutex::new(HashMap::new()),
                max_counters: usize::try_from(max_counters).unwrap_or(usize::MAX).max(1),
            },
        }
    }

    /// Counters in Redis. Connects within the connect timeout.
    pub async fn redis(options: &RedisOptions) -> anyhow::Result<Self> {
        let client = redis::Client::open(options.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.timeout))
            .set_connection_timeout(Some(options.connect_timeout))
            // Reconnect attempts after a drop: quick, so counting resumes soon after Redis is back.
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = tokio::time::timeout(
            options.connect_timeout * 3,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "Redis did not answer within {:?}",
                options.connect_timeout * 3
            )
        })??;
        Ok(Self {
            counters: Counters::Redis {
                connection,
                script: redis::Script::new(SCRIPT),
                timeout: options.timeout,
            },
        })
    }

    /// `memory` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self.counters {
            Counters::Memory { .. } => "memory",
            Counters::Redis { .. } => "redis",
        }
    }

    /// Adds every check's hits to its counter if all of them stay within their maximum, else none.
    /// Checks of the same counter are merged (their hits summed).
    pub async fn check_and_count(&self, checks: &[CounterCheck]) -> Result<Decision, Unavailable> {
        let mut merged: BTreeMap<&str, (u64, u64, Duration)> = BTreeMap::new();
        for c in checks {
            let entry = merged.entry(&c.key).or_insert((0, c.max, c.window));
            entry.0 = entry.0.saturating_add(c.hits);
        }
        match &self.counters {
            Counters::Memory {
                windows,
                max_counters,
            } => {
                let mut windows = windows.lock().unwrap_or_else(|p| p.into_inner());
                Ok(decide_in_memory(
                    &mut windows,
                    *max_counters,
                    &merged,
                    Instant::now(),
                ))
            }
            Counters::Redis {
                connection,
                script,
                timeout,
            } => {
                let mut invocation = script.prepare_invoke();
                for (key, (hits, max, window)) in &merged {
                    invocation
                        .key(*key)
                        .arg(*hits)
                        .arg(*max)
                        .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
                }
                let mut connection = connection.clone();
                let reply: Vec<i64> =
                    tokio::time::timeout(*timeout, invocation.invoke_async(&mut connection))
                        .await
                        .map_err(|_| Unavailable::Timeout(*timeout))?
                        .map_err(|e| {
                            if e.is_timeout() {
                                Unavailable::Timeout(*timeout)
                            } else {
                                Unavailable::Storage(e.to_string())
                            }
                        })?;
                decision_from_reply(&reply, merged.keys().copied())
            }
        }
    }
}

/// `{limited, count_1, ms_until_reset_1, ...}` from the script, in the order keys were passed.
fn decision_from_reply<'a>(
    reply: &[i64],
    keys: impl ExactSizeIterator<Item = &'a str>,
) -> Result<Decision, Unavailable> {
    let malformed = || Unavailable::Storage(format!("unexpected script reply {reply:?}"));
    let (limited, rest) = reply.split_first().ok_or_else(malformed)?;
    if rest.len() != keys.len() * 2 {
        return Err(malformed());
    }
    let counters = keys
        .zip(rest.chunks_exact(2))
        .map(|(key, pair)| {
            let state = CounterState {
                count: u64::try_from(pair[0]).unwrap_or(0),
                reset_in: Duration::from_millis(u64::try_from(pair[1]).unwrap_or(0)),
            };
            (key.to_string(), state)
        })
        .collect();
    Ok(Decision {
        limited: *limited != 0,
        counters,
    })
}

/// The script's algorithm over an in-process map of `key -> (count, window end)`.
fn decide_in_memory(
    windows: &mut HashMap<String, (u64, Instant)>,
    max_counters: usize,
    merged: &BTreeMap<&str, (u64, u64, Duration)>,
    now: Instant,
) -> Decision {
    let current =
        |windows: &HashMap<String, (u64, Instant)>, key: &str, window: Duration| match windows
            .get(key)
        {
            Some(&(count, ends)) if ends > now => (count, ends),
            _ => (0, now + window),
        };
    let limited = merged.iter().any(|(key, (hits, max, window))| {
        current(windows, key, *window).0.saturating_add(*hits) > *max
    });
    let mut counters = HashMap::with_capacity(merged.len());
    for (key, (hits, _, window)) in merged {
        let (mut count, ends) = current(windows, key, *window);
        if !limited {
            count = count.saturating_add(*hits);
            make_room(windows, max_counters, key, now);
            windows.insert((*key).to_string(), (count, ends));
        }
        let state = CounterState {
            count,
            reset_in: ends.saturating_duration_since(now),
        };
        counters.insert((*key).to_string(), state);
    }
    Decision { limited, counters }
}

/// Keeps the map within `max_counters` before `key` is stored.
fn make_room(
    windows: &mut HashMap<String, (u64, Instant)>,
    max_counters: usize,
    key: &str,
    now: Instant,
) {
    if windows.len() < max_counters || windows.contains_key(key) {
        return;
    }
    windows.retain(|_, (_, ends)| *ends > now);
    if windows.len() >= max_counters {
        let soonest = windows
            .iter()
            .min_by_key(|(_, (_, ends))| *ends)
            .map(|(k, _)| k.clone());
        if let Some(soonest) = soonest {
            windows.remove(&soonest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged<'a>(items: &[(&'a str, u64, u64)]) -> BTreeMap<&'a str, (u64, u64, Duration)> {
        items
            .iter()
            .map(|&(k, hits, max)| (k, (hits, max, Duration::from_secs(60))))
            .collect()
    }

    #[test]
    fn memory_admits_exactly_the_budget_all_or_nothing() {
        let mut windows = HashMap::new();
        let now = Instant::now();
        let both = merged(&[("tier", 2, 10), ("tool", 2, 3)]);
        let first = decide_in_memory(&mut windows, 100, &both, now);
        assert!(!first.limited);
        assert_eq!(first.counters["tool"].count, 2);
        // The tool counter cannot take 2 more: neither counter moves.
        let second = decide_in_memory(&mut windows, 100, &both, now);
        assert!(second.limited);
        assert_eq!(windows["tier"].0, 2);
        assert_eq!(windows["tool"].0, 2);
        let one = merged(&[("tier", 1, 10), ("tool", 1, 3)]);
        assert!(!decide_in_memory(&mut windows, 100, &one, now).limited);
        assert!(decide_in_memory(&mut windows, 100, &one, now).limited);
        // A new window starts from zero.
        let later = now + Duration::from_secs(61);
        let fresh = decide_in_memory(&mut windows, 100, &one, later);
        assert!(!fresh.limited);
        assert_eq!(fresh.counters["tool"].count, 1);
        assert_eq!(fresh.counters["tool"].reset_in, Duration::from_secs(60));
    }

    #[test]
    fn memory_stays_within_its_counter_cap() {
        let mut windows = HashMap::new();
        let now = Instant::now();
        for key in ["a", "b", "c"] {
            decide_in_memory(&mut windows, 2, &merged(&[(key, 1, 5)]), now);
        }
        assert_eq!(windows.len(), 2);
        assert!(windows.contains_key("c"));
    }

    #[test]
    fn a_malformed_script_reply_is_an_error() {
        assert!(decision_from_reply(&[0, 1], ["k"].into_iter()).is_err());
        let d = decision_from_reply(&[1, 5, 1500], ["k"].into_iter()).expect("read");
        assert!(d.limited);
        assert_eq!(
            d.counters["k"],
            CounterState {
                count: 5,
                reset_in: Duration::from_millis(1500)
            }
        );
    }
}
