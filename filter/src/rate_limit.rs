//! Token buckets: the math, their encoding, and where they live in Envoy's shared data.
//!
//! Each tenant has one bucket, sized by its tier (`capacity` tokens, refilled at
//! `per_minute / 60` a second); each JSON-RPC request costs a token. Buckets live in Envoy shared
//! data so every worker thread of one Envoy takes from the same bucket; updates use
//! compare-and-swap. Buckets sit in a fixed number of slots, so memory is bounded whatever the
//! number of tenants: a tenant hashes to a slot and probes a few neighbours; a slot belongs to the
//! tenant written in it (full id, so two tenants never share a bucket) until its bucket would be
//! full again, when any tenant may take it over. The shared-data calls are behind [`SharedStore`]
//! so all of this runs under `cargo test`.

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

    /// Whether tokens are available without taking any.
    pub fn has_tokens(&self, state: Option<BucketState>, now_ms: u64) -> bool {
        state.is_none_or(|s| self.refill(s, now_ms).tokens_milli >= MILLI)
    }

    /// A bucket that would be full by now carries no information: its slot may be reused.
    pub fn is_stale(&self, s: BucketState, now_ms: u64) -> bool {
        self.refill(s, now_ms).tokens_milli >= self.capacity_milli()
    }
}

/// Slot value: tokens (8 bytes LE), time (8 bytes LE), then the owner's id.
pub fn encode(owner: &[u8], s: BucketState) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + owner.len());
    v.extend_from_slice(&s.tokens_milli.to_le_bytes());
    v.extend_from_slice(&s.updated_ms.to_le_bytes());
    v.extend_from_slice(owner);
    v
}

pub fn decode(v: &[u8]) -> Option<(&[u8], BucketState)> {
    if v.len() < 16 {
        return None;
    }
    let (tokens, rest) = v.split_at(8);
    let (time, owner) = rest.split_at(8);
    Some((
        owner,
        BucketState {
            tokens_milli: u64::from_le_bytes(tokens.try_into().ok()?),
            updated_ms: u64::from_le_bytes(time.try_into().ok()?),
        },
    ))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A write to shared data did not happen (someone wrote first, or the host refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteFailed;

/// Shared data as Envoy offers it: values with a CAS token; setting a missing key ignores `cas`.
pub trait SharedStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteFailed>;
}

/// Where buckets of one kind live: `<namespace>.<slot>`, `slots` of them, `probes` tried per owner.
#[derive(Debug, Clone, Copy)]
pub struct SlotTable<'a> {
    pub namespace: &'a str,
    pub slots: u32,
    pub probes: u32,
}

const CAS_RETRIES: u32 = 16;

impl SlotTable<'_> {
    fn key(&self, owner: &[u8], probe: u32) -> String {
        let slot = (fnv1a(owner).wrapping_add(u64::from(probe))) % u64::from(self.slots.max(1));
        format!("{}.{slot}", self.namespace)
    }

    /// Applies `f` to `owner`'s bucket atomically: `f` gets the current state (`None`: new) and
    /// returns the state to store (or `None` to store nothing). Returns `f`'s result, or `None`
    /// when no slot could be had (every probed slot is held by a live bucket of another owner).
    pub fn update<T>(
        &self,
        store: &dyn SharedStore,
        owner: &[u8],
        limit: &Limit,
        now_ms: u64,
        mut f: impl FnMut(Option<BucketState>) -> (Option<BucketState>, T),
    ) -> Option<T> {
        for probe in 0..self.probes.max(1) {
            let key = self.key(owner, probe);
            for _ in 0..CAS_RETRIES {
                let (value, cas) = store.get(&key);
                let current = value.as_deref().and_then(decode);
                let mine = match current {
                    Some((o, s)) if o == owner => Some(s),
                    Some((_, s)) if !limit.is_stale(s, now_ms) => break, // another live owner: next slot
                    _ => None,
                };
                let (new_state, result) = f(mine);
                let Some(new_state) = new_state else {
                    return Some(result);
                };
                if store.set(&key, &encode(owner, new_state), cas).is_err() {
                    continue; // someone else wrote first: read again
                }
                if cas.is_none() {
                    // A new key: Envoy does not compare-and-swap those, so check we won.
                    let (again, _) = store.get(&key);
                    if again
                        .as_deref()
                        .and_then(decode)
                        .is_none_or(|(o, _)| o != owner)
                    {
                        continue;
                    }
                }
                return Some(result);
            }
        }
        None
    }
}

/// An in-memory [`SharedStore`] with Envoy's semantics, for tests.
#[cfg(test)]
pub mod testing {
    use super::{SharedStore, WriteFailed};
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct MemoryShared {
        pub map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        next: RefCell<u32>,
    }

    impl SharedStore for MemoryShared {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            match self.map.borrow().get(key) {
                Some((v, c)) => (Some(v.clone()), Some(*c)),
                None => (None, None),
            }
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteFailed> {
            let mut map = self.map.borrow_mut();
            if let (Some((_, current)), Some(cas)) = (map.get(key), cas)
                && *current != cas
            {
                return Err(WriteFailed);
            }
            *self.next.borrow_mut() += 1;
            let c = *self.next.borrow();
            map.insert(key.to_string(), (value.to_vec(), c));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::MemoryShared as FakeShared;
    use super::*;
    use std::cell::RefCell;

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

    #[test]
    fn encoding_round_trips_and_keeps_owners_apart() {
        let s = BucketState {
            tokens_milli: 5,
            updated_ms: 7,
        };
        let v = encode(b"tenant-a", s);
        assert_eq!(decode(&v), Some((&b"tenant-a"[..], s)));
        assert_eq!(decode(&v[..15]), None);
        // an owner that is a prefix of another is still another owner
        assert_ne!(encode(b"a", s), encode(b"ab", s));
    }

    fn take(table: &SlotTable<'_>, store: &FakeShared, owner: &str, now: u64) -> Option<Decision> {
        table.update(store, owner.as_bytes(), &FREE, now, |s| {
            let (n, d) = FREE.take(s, 1, now);
            (Some(n), d)
        })
    }

    #[test]
    fn tenants_get_their_own_buckets_in_bounded_slots() {
        let store = FakeShared::default();
        let table = SlotTable {
            namespace: "rl",
            slots: 4,
            probes: 4,
        };
        for _ in 0..10 {
            assert!(matches!(
                take(&table, &store, "a", 0),
                Some(Decision::Admitted { .. })
            ));
        }
        assert!(matches!(
            take(&table, &store, "a", 0),
            Some(Decision::Limited { .. })
        ));
        // b is untouched by a's exhaustion
        assert!(matches!(
            take(&table, &store, "b", 0),
            Some(Decision::Admitted { remaining: 9, .. })
        ));
        take(&table, &store, "c", 0);
        take(&table, &store, "d", 0);
        assert_eq!(store.map.borrow().len(), 4, "no more keys than slots");
        // every slot is live: a fifth tenant gets no slot now…
        assert_eq!(take(&table, &store, "e", 0), None);
        // …but can take over a stale one later
        assert!(matches!(
            take(&table, &store, "e", 20_000),
            Some(Decision::Admitted { .. })
        ));
        assert_eq!(store.map.borrow().len(), 4);
    }

    #[test]
    fn a_concurrent_write_is_retried_not_lost() {
        struct Interfering<'a> {
            inner: &'a FakeShared,
            once: RefCell<bool>,
        }
        impl SharedStore for Interfering<'_> {
            fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
                self.inner.get(key)
            }
            fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteFailed> {
                if *self.once.borrow() {
                    *self.once.borrow_mut() = false;
                    // another worker takes a token between our read and our write
                    let (v, c) = self.inner.get(key);
                    let (owner, s) = decode(v.as_deref().unwrap_or_default())
                        .map(|(o, s)| (o.to_vec(), s))
                        .unwrap_or_default();
                    let (n, _) = FREE.take(Some(s), 1, 0);
                    self.inner.set(key, &encode(&owner, n), c)?;
                }
                self.inner.set(key, value, cas)
            }
        }
        let store = FakeShared::default();
        let table = SlotTable {
            namespace: "rl",
            slots: 8,
            probes: 2,
        };
        take(&table, &store, "a", 0); // 9 left
        let racy = Interfering {
            inner: &store,
            once: RefCell::new(true),
        };
        let d = table.update(&racy, b"a", &FREE, 0, |s| {
            let (n, d) = FREE.take(s, 1, 0);
            (Some(n), d)
        });
        assert_eq!(
            d,
            Some(Decision::Admitted {
                remaining: 7,
                reset_secs: 3
            }),
            "both takes counted"
        );
    }
}
