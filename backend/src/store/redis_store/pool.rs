//! The Redis store's connections: a fixed set of [`ConnectionManager`]s handed out round-robin,
//! each with a connect and a response timeout (the per-step deadline of every command and script).
//!
//! Why not deadpool-redis or bb8-redis: those pools check a connection out for exclusive use, which
//! suits blocking commands and transactions spread over several round trips; every write here is
//! one script or one MULTI/EXEC, so a multiplexed connection can carry many calls at once, and a
//! few of them (each reconnecting on its own) spread the load and the damage of one broken socket
//! without another dependency or a checkout queue with its own timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::super::StoreError;
use crate::store::StoreLimits;

/// How the Redis store connects and what it enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisConfig {
    /// How many multiplexed connections (at least 1).
    pub pool_size: usize,
    /// The deadline of one connection attempt.
    pub connect_timeout: Duration,
    /// The deadline of one command or script, from sending it to its reply. Every step is bounded
    /// (at the default caps the slowest script took 15 ms and no round trip more than about 100 ms
    /// on a loaded test machine with `appendfsync always`; see `measure_tests`), so the default of
    /// 1 s is only reached when Redis is in trouble.
    pub response_timeout: Duration,
    pub limits: StoreLimits,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            pool_size: 4,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            limits: StoreLimits::default(),
        }
    }
}

/// The connections, used in turn.
pub(super) struct Pool {
    conns: Vec<ConnectionManager>,
    next: AtomicUsize,
}

impl Pool {
    /// Opens `config.pool_size` connections to `url` (each checked with a PING).
    pub(super) async fn connect(url: &str, config: &RedisConfig) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let mut conns = Vec::with_capacity(config.pool_size.max(1));
        for _ in 0..config.pool_size.max(1) {
            let mut conn =
                ConnectionManager::new_with_config(client.clone(), manager_config.clone()).await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            conns.push(conn);
        }
        Ok(Self {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// The next connection (a cheap clone of a multiplexed handle).
    pub(super) fn get(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }
}

/// A Redis failure as a store error: past the deadline is [`StoreError::Timeout`].
pub(super) fn backend(err: redis::RedisError) -> StoreError {
    if err.is_timeout() {
        StoreError::Timeout(err.to_string())
    } else {
        StoreError::Backend(err.to_string())
    }
}
