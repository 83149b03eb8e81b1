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
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::clock_window::aligned;
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
        /// Window key -> (count, kept until, ms since the epoch).
        windows: Mutex<HashMap<String, (u64, u64)>>,
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
    /// Checks of the same counter are merged (their hits summed). Each counter counts in the
    /// window of its length that holds the instant `at_ms` (UTC, see [`crate::clock_window`]).
    pub async fn check_and_count(
        &self,
        checks: &[CounterCheck],
        at_ms: u64,
    ) -> Result<Decision, Unavailable> {
        let mut merged: BTreeMap<&str, Counting> = BTreeMap::new();
        for c in checks {
            let entry = merged.entry(&c.key).or_insert_with(|| {
                let (index, ends_in) = aligned(at_ms, c.window);
                Counting {
                    window_key: format!("{}:{index}", c.key),
                    hits: 0,
                    max: c.max,
                    ends_in,
                }
            });
            entry.hits = entry.hits.saturating_add(c.hits);
        }
        let (limited, counts) = match &self.counters {
            Counters::Memory {
                windows,
                max_counters,
            } => {
                let mut windows = windows.lock().unwrap_or_else(|p| p.into_inner());
                decide_in_memory(&mut windows, *max_counters, merged.values(), at_ms)
            }
            Counters::Redis {
                connection,
                script,
                timeout,
            } => {
                let mut invocation = script.prepare_invoke();
                for c in merged.values() {
                    let keep = c.ends_in.saturating_add(CLOCK_SKEW_ALLOWANCE);
                    invocation
                        .key(&c.window_key)
                        .arg(c.hits)
                        .arg(c.max)
                        .arg(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX));
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
                counts_from_reply(&reply, merged.len())?
            }
        };
        let counters = merged
            .iter()
            .zip(counts)
            .map(|((key, c), count)| {
                let state = CounterState {
                    count,
                    reset_in: c.ends_in,
                };
                ((*key).to_string(), state)
            })
            .collect();
        Ok(Decision { limited, counters })
    }
}

/// How long a Redis counter outlives its window: an instance whose clock lags by up to this much
/// still finds the count of the window it believes current, instead of starting it again.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5);

/// One counter of a decision: its key in the current window, the hits asked of it, its maximum,
/// and the time until the window ends.
struct Counting {
    window_key: String,
    hits: u64,
    max: u64,
    ends_in: Duration,
}

/// `{limited, count_1, count_2, ...}` from the script, for `keys` counters in the order passed.
fn counts_from_reply(reply: &[i64], keys: usize) -> Result<(bool, Vec<u64>), Unavailable> {
    let malformed = || Unavailable::Storage(format!("unexpected script reply {reply:?}"));
    let (limited, rest) = reply.split_first().ok_or_else(malformed)?;
    if rest.len() != keys {
        return Err(malformed());
    }
    let counts = rest
        .iter()
        .map(|c| u64::try_from(*c).unwrap_or(0))
        .collect();
    Ok((*limited != 0, counts))
}

/// The script's algorithm over an in-process map of `window key -> (count, kept until, ms)`.
/// Returns whether the request is limited and each counter's count after the decision.
fn decide_in_memory<'a>(
    windows: &mut HashMap<String, (u64, u64)>,
    max_counters: usize,
    counting: impl Iterator<Item = &'a Counting> + Clone,
    at_ms: u64,
) -> (bool, Vec<u64>) {
    let current = |windows: &HashMap<String, (u64, u64)>, key: &str| match windows.get(key) {
        Some(&(count, until)) if until > at_ms => count,
        _ => 0,
    };
    let limited = counting
        .clone()
        .any(|c| current(windows, &c.window_key).saturating_add(c.hits) > c.max);
    let mut counts = Vec::new();
    for c in counting {
        let mut count = current(windows, &c.window_key);
        if !limited {
            count = count.saturating_add(c.hits);
            make_room(windows, max_counters, &c.window_key, at_ms);
            let until = at_ms.saturating_add(u64::try_from(c.ends_in.as_millis()).unwrap_or(0));
            windows.insert(c.window_key.clone(), (count, until));
        }
        counts.push(count);
    }
    (limited, counts)
}

/// Keeps the map within `max_counters` before `key` is stored.
fn make_room(
    windows: &mut HashMap<String, (u64, u64)>,
    max_counters: usize,
    key: &str,
    at_ms: u64,
) {
    if windows.len() < max_counters || windows.contains_key(key) {
        return;
    }
    windows.retain(|_, (_, until)| *until > at_ms);
    if windows.len() >= max_counters {
        let soonest = windows
            .iter()
            .min_by_key(|(_, (_, until))| *until)
            .map(|(k, _)| k.clone());
        if let Some(soonest) = soonest {
            windows.remove(&soonest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07T17:59:00Z: the start of a minute (and of no day).
    const MINUTE_START: u64 = 1_796_666_340_000;

    fn check(key: &str, hits: u64, max: u64, window_secs: u64) -> CounterCheck {
        CounterCheck {
            key: key.into(),
            name: key.into(),
            max,
            window: Duration::from_secs(window_secs),
            hits,
        }
    }

    fn decide(limiter: &Limiter, checks: &[CounterCheck], at_ms: u64) -> Decision {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(limiter.check_and_count(checks, at_ms))
            .expect("memory never fails")
    }

    #[test]
    fn memory_admits_exactly_the_budget_all_or_nothing() {
        let limiter = Limiter::memory(100);
        let now = MINUTE_START + 10_000;
        let both = [check("tier", 2, 10, 60), check("tool", 2, 3, 60)];
        let first = decide(&limiter, &both, now);
        assert!(!first.limited);
        assert_eq!(first.counters["tool"].count, 2);
        // The tool counter cannot take 2 more: neither counter moves.
        let second = decide(&limiter, &both, now);
        assert!(second.limited);
        assert_eq!(second.counters["tier"].count, 2);
        assert_eq!(second.counters["tool"].count, 2);
        let one = [check("tier", 1, 10, 60), check("tool", 1, 3, 60)];
        assert!(!decide(&limiter, &one, now).limited);
        assert!(decide(&limiter, &one, now).limited);
        // The next minute starts from zero, and resets a minute later.
        let fresh = decide(&limiter, &one, MINUTE_START + 60_000);
        assert!(!fresh.limited);
        assert_eq!(fresh.counters["tool"].count, 1);
        assert_eq!(fresh.counters["tool"].reset_in, Duration::from_secs(60));
    }

    #[test]
    fn windows_turn_on_the_clock_not_on_the_first_hit() {
        let limiter = Limiter::memory(100);
        let budget = [check("free", 1, 1, 60)];
        // The first hit comes 1 ms before the minute ends: it resets then, not 60 s later.
        let last_ms = MINUTE_START + 59_999;
        let first = decide(&limiter, &budget, last_ms);
        assert!(!first.limited);
        assert_eq!(first.counters["free"].reset_in, Duration::from_millis(1));
        assert!(decide(&limiter, &budget, last_ms).limited);
        assert!(!decide(&limiter, &budget, MINUTE_START + 60_000).limited);
    }

    #[test]
    fn memory_stays_within_its_counter_cap() {
        let limiter = Limiter::memory(2);
        for key in ["a", "b", "c"] {
            decide(&limiter, &[check(key, 1, 5, 60)], MINUTE_START);
        }
        let Counters::Memory { windows, .. } = &limiter.counters else {
            panic!("memory limiter");
        };
        let windows = windows.lock().expect("lock");
        assert_eq!(windows.len(), 2);
        assert!(windows.keys().any(|k| k.starts_with("c:")));
    }

    #[test]
    fn a_malformed_script_reply_is_an_error() {
        assert!(counts_from_reply(&[0, 1, 2], 1).is_err());
        assert!(counts_from_reply(&[], 0).is_err());
        assert_eq!(counts_from_reply(&[1, 5], 1), Ok((true, vec![5])));
    }
}
