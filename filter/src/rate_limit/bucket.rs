//! The token bucket: `capacity` tokens, refilled at `per_minute / 60` a second; a request costs a
//! token (a batch its length). Pure math over [`BucketState`]; where buckets live is
//! [`super::slots`]. Swapping the algorithm (a sliding window, GCRA) means replacing this file.

/// One limit: `capacity` tokens, refilled at `per_minute` tokens a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub capacity: u64,
    pub per_minute: u64,
}

/// A bucket at a point in time. Tokens are kept in thousandths so slow refills are exact enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketState {
    pub tokens_milli: u64,
    pub updated_ms: u64,
}

/// The outcome of taking from a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Taken; `remaining` whole tokens left, full again in `reset_secs`.
    Admitted { remaining: u64, reset_secs: u64 },
    /// Not enough tokens: retry in `retry_after_secs`.
    Limited { retry_after_secs: u64 },
}

const MILLI: u64 = 1000;

impl Limit {
    fn capacity_milli(&self) -> u64 {
        self.capacity.saturating_mul(MILLI)
    }

    /// The state at `now_ms`: refilled for the time elapsed. A clock that went backwards refills
    /// nothing (and does not move the bucket's time back); a huge gap just fills the bucket.
    pub fn refill(&self, s: BucketState, now_ms: u64) -> BucketState {
        let elapsed = now_ms.saturating_sub(s.updated_ms);
        // per_minute tokens per 60_000 ms → per_minute milli-tokens per 60 ms.
        let added = u128::from(elapsed) * u128::from(self.per_minute) / 60;
        let tokens = (u128::from(s.tokens_milli) + added).min(u128::from(self.capacity_milli()));
        BucketState {
            tokens_milli: u64::try_from(tokens).unwrap_or(u64::MAX),
            updated_ms: s.updated_ms.max(now_ms),
        }
    }

    fn ms_to_gain(&self, milli: u64) -> u64 {
        if self.per_minute == 0 {
            return u64::MAX / 2;
        }
        // milli milli-tokens at per_minute milli-tokens per 60 ms, rounded up
        milli.saturating_mul(60).div_ceil(self.per_minute)
    }

    /// Takes `cost` tokens from `state` (`None`: a new, full bucket).
    pub fn take(
        &self,
        state: Option<BucketState>,
        cost: u64,
        now_ms: u64,
    ) -> (BucketState, Decision) {
        let s = match state {
            Some(s) => self.refill(s, now_ms),
            None => BucketState {
                tokens_milli: self.capacity_milli(),
                updated_ms: now_ms,
            },
        };
        let need = cost.saturating_mul(MILLI);
        if s.tokens_milli >= need {
            let left = BucketState {
                tokens_milli: s.tokens_milli - need,
                ..s
            };
            let reset_ms = self.ms_to_gain(self.capacity_milli() - left.tokens_milli);
            (
                left,
                Decision::Admitted {
                    remaining: left.tokens_milli / MILLI,
                    reset_secs: reset_ms.div_ceil(1000),
                },
            )
        } else if need > self.capacity_milli() {
            (
                s,
                Decision::Limited {
                    retry_after_secs: 60,
                },
            )
        } else {
            let wait_ms = self.ms_to_gain(need - s.tokens_milli);
            (
                s,
                Decision::Limited {
                    retry_after_secs: wait_ms.div_ceil(1000).max(1),
                },
            )
        }
    }

    /// A full bucket at `now_ms`.
    pub fn full(&self, now_ms: u64) -> BucketState {
        BucketState {
            tokens_milli: self.capacity_milli(),
            updated_ms: now_ms,
        }
    }

    /// Whether tokens are available without taking any.
    pub fn has_tokens(&self, state: Option<BucketState>, now_ms: u64) -> bool {
        state.is_none_or(|s| self.refill(s, now_ms).tokens_milli >= MILLI)
    }

    /// A bucket that would be full by now carries no information: its slot may be reused.
    pub fn is_stale(&self, s: BucketState, now_ms: u64) -> bool {
        self.refill(s, now_ms).tokens_milli >= self.capacity_milli()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FREE: Limit = Limit {
        capacity: 10,
        per_minute: 60,
    };

    #[test]
    fn bucket_drains_and_refills() {
        let (s, d) = FREE.take(None, 1, 1_000);
        assert_eq!(
            d,
            Decision::Admitted {
                remaining: 9,
                reset_secs: 1
            }
        );
        let mut state = s;
        for _ in 0..9 {
            state = FREE.take(Some(state), 1, 1_000).0;
        }
        let (state, d) = FREE.take(Some(state), 1, 1_000);
        assert_eq!(
            d,
            Decision::Limited {
                retry_after_secs: 1
            }
        );
        // one token a second
        let (_, d) = FREE.take(Some(state), 1, 2_000);
        assert!(matches!(d, Decision::Admitted { remaining: 0, .. }));
        // 1.5 tokens at 2.5 s; 3 needed: 1.5 s more, rounded up
        let (_, d) = FREE.take(Some(state), 3, 2_500);
        assert_eq!(
            d,
            Decision::Limited {
                retry_after_secs: 2
            }
        );
    }

    #[test]
    fn batch_cost_and_cost_over_capacity() {
        let (_, d) = FREE.take(None, 10, 0);
        assert!(matches!(d, Decision::Admitted { remaining: 0, .. }));
        let (_, d) = FREE.take(None, 11, 0);
        assert_eq!(
            d,
            Decision::Limited {
                retry_after_secs: 60
            }
        );
    }

    #[test]
    fn clock_going_backwards_refills_nothing() {
        let s = BucketState {
            tokens_milli: 2_000,
            updated_ms: 10_000,
        };
        let r = FREE.refill(s, 5_000);
        assert_eq!(
            r,
            BucketState {
                tokens_milli: 2_000,
                updated_ms: 10_000
            }
        );
        // and time does not run twice: from 10 s to 11 s is one token
        assert_eq!(FREE.refill(r, 11_000).tokens_milli, 3_000);
    }

    #[test]
    fn huge_gaps_just_fill_the_bucket() {
        let s = BucketState {
            tokens_milli: 0,
            updated_ms: 0,
        };
        assert_eq!(FREE.refill(s, u64::MAX).tokens_milli, 10_000);
        let big = Limit {
            capacity: u64::MAX,
            per_minute: u64::MAX,
        };
        let r = big.refill(s, u64::MAX);
        assert!(r.tokens_milli > 0);
        assert!(FREE.is_stale(s, 10_000));
        assert!(!FREE.is_stale(s, 9_999));
    }

    #[test]
    fn zero_rate_never_refills() {
        let none = Limit {
            capacity: 1,
            per_minute: 0,
        };
        let (s, _) = none.take(None, 1, 0);
        let (_, d) = none.take(Some(s), 1, 1_000_000);
        assert!(matches!(d, Decision::Limited { .. }));
    }
}
