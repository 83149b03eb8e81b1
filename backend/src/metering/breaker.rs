//! A circuit breaker in front of the usage store for the request path: after a failure (an
//! unreachable or hanging Redis answers only after its timeout) calls skip the store for
//! [`BREAK_FOR`] and take the store-down path at once — fail open or closed per tier — instead of
//! each waiting out the timeout. The delivery task keeps probing the store on its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::meter_store::MeterError;

/// How long the store is skipped after a failure.
pub const BREAK_FOR: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Breaker {
    epoch: Instant,
    /// Milliseconds since `epoch` until which the store is skipped (0: closed).
    open_until_ms: AtomicU64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            open_until_ms: AtomicU64::new(0),
        }
    }
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `call` unless the breaker is open; a failure opens it.
    pub async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, MeterError>>,
    ) -> Result<T, MeterError> {
        if self.now_ms() < self.open_until_ms.load(Ordering::Relaxed) {
            return Err(MeterError(
                "usage store failed within the last second; not asked".into(),
            ));
        }
        let result = call.await;
        if result.is_err() {
            let until = self
                .now_ms()
                .saturating_add(u64::try_from(BREAK_FOR.as_millis()).unwrap_or(u64::MAX));
            self.open_until_ms.store(until, Ordering::Relaxed);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_skips_the_store_for_a_while() {
        let breaker = Breaker::default();
        assert_eq!(breaker.call(async { Ok(1) }).await.ok(), Some(1));
        assert!(
            breaker
                .call(async { Err::<u8, _>(MeterError("down".into())) })
                .await
                .is_err()
        );
        let skipped = breaker.call(async { Ok(2) }).await;
        assert!(skipped.is_err_and(|e| e.0.contains("not asked")));
    }
}
