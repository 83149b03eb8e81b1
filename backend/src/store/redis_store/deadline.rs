//! A write step under its deadline, with a known outcome.
//!
//! Every command has the pool's response timeout. A write script whose reply misses it may still
//! run (it was sent), so the store asks Redis on the same connection, whose commands run in order,
//! whether the write took effect: yes, and the call answers as if the reply had come; no, and the
//! call fails with [`StoreError::Timeout`] (nothing changed, safe to repeat); and only if that
//! question misses its deadline too, with [`StoreError::Unconfirmed`].

use redis::{FromRedisValue, ScriptInvocation};

use super::{RedisStore, backend};
use crate::store::StoreError;

/// Where a write leaves its mark: a hash field, and what it holds once the write took effect.
pub(super) struct Mark<'a> {
    pub hash: &'a str,
    pub field: &'a str,
    pub applied: &'a (dyn Fn(Option<&str>) -> bool + Sync),
}

impl RedisStore {
    /// Runs `script`: `Some(reply)`, or `None` when the reply was late but the write took effect.
    pub(super) async fn write<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
        mark: Mark<'_>,
    ) -> Result<Option<T>, StoreError> {
        let mut conn = self.pool.get();
        match script.invoke_async(&mut conn).await {
            Ok(reply) => Ok(Some(reply)),
            Err(e) if e.is_timeout() => {
                let now: Result<Option<String>, _> = redis::cmd("HGET")
                    .arg(mark.hash)
                    .arg(mark.field)
                    .query_async(&mut conn)
                    .await;
                match now {
                    Ok(value) if (mark.applied)(value.as_deref()) => {
                        tracing::warn!(error = %e, "a write's reply was late; it took effect");
                        Ok(None)
                    }
                    Ok(_) => Err(StoreError::Timeout(format!(
                        "{e}; the write did not happen"
                    ))),
                    Err(check) => Err(StoreError::Unconfirmed(format!(
                        "{e}; checking whether the write happened: {check}"
                    ))),
                }
            }
            Err(e) => Err(backend(e)),
        }
    }
}
