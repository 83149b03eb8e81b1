//! Where buckets live: Envoy shared data, so every worker thread of one Envoy takes from the same
//! bucket, updated with compare-and-swap. Buckets sit in a fixed number of slots, so memory is
//! bounded whatever the number of tenants: an owner hashes (keyed with a per-process secret, so
//! nobody can choose which slots to fill) to a slot and probes a few neighbours. A slot belongs to
//! the owner written in it (full id, so two owners never share a bucket) until its bucket would be
//! full again by the owner's own limit, when any owner may take it over.

use std::hash::Hasher;

use siphasher::sip::SipHasher24;
use siphasher::sip128::{Hasher128, SipHasher24 as SipHasher128};

use super::{BucketState, Limit};

/// What a slot holds: its owner, the owner's limit (so staleness is judged by the owner's own
/// refill, never by whoever probes), and the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot<'a> {
    pub owner: &'a [u8],
    pub limit: Limit,
    pub state: BucketState,
}

const HEADER: usize = 32;

/// Slot value: tokens, time, capacity, per-minute (8 bytes LE each), then the owner's id.
pub fn encode(owner: &[u8], limit: &Limit, s: BucketState) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + owner.len());
    for n in [
        s.tokens_milli,
        s.updated_ms,
        limit.capacity,
        limit.per_minute,
    ] {
        v.extend_from_slice(&n.to_le_bytes());
    }
    v.extend_from_slice(owner);
    v
}

pub fn decode(v: &[u8]) -> Option<Slot<'_>> {
    let (head, owner) = v.split_at_checked(HEADER)?;
    let word = |i: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            head.get(i * 8..i * 8 + 8)?.try_into().ok()?,
        ))
    };
    Some(Slot {
        owner,
        limit: Limit {
            capacity: word(2)?,
            per_minute: word(3)?,
        },
        state: BucketState {
            tokens_milli: word(0)?,
            updated_ms: word(1)?,
        },
    })
}

/// The per-process key of the slot hash. Every worker of one Envoy must use the same one (they
/// share the slots), so it is made once and kept in shared data; see [`SlotSecret::shared`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SlotSecret(pub [u8; 16]);

impl std::fmt::Debug for SlotSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlotSecret(<redacted>)")
    }
}

impl SlotSecret {
    const KEY: &'static str = "mcp_edge.slot_secret";

    /// The secret in `store`, or `fresh` stored there if there is none yet (the first worker to
    /// write wins; the others read its value).
    pub fn shared(store: &dyn SharedStore, fresh: [u8; 16]) -> Self {
        let read = |store: &dyn SharedStore| {
            store
                .get(Self::KEY)
                .0
                .and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok())
        };
        if let Some(existing) = read(store) {
            return Self(existing);
        }
        let _ = store.set(Self::KEY, &fresh, None);
        Self(read(store).unwrap_or(fresh))
    }

    /// Where `owner` hashes to: SipHash-2-4 keyed with the secret (SipHash is made for exactly
    /// this, a hash table whose keys an attacker may choose).
    fn slot_of(&self, owner: &[u8]) -> u64 {
        let mut h = SipHasher24::new_with_key(&self.0);
        h.write(owner);
        h.finish()
    }

    /// A key for another purpose, derived from this secret and `label` (so one secret per process
    /// serves several keyed hashes without their outputs being related).
    pub fn derive(&self, label: &str) -> [u8; 16] {
        let mut h = SipHasher128::new_with_key(&self.0);
        h.write(label.as_bytes());
        h.finish128().as_u128().to_le_bytes()
    }
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
    pub secret: &'a SlotSecret,
}

const CAS_RETRIES: u32 = 16;

impl SlotTable<'_> {
    fn key(&self, owner: &[u8], probe: u32) -> String {
        let slot = (self.secret.slot_of(owner).wrapping_add(u64::from(probe)))
            % u64::from(self.slots.max(1));
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
        f: impl FnMut(Option<BucketState>) -> (Option<BucketState>, T),
    ) -> Option<T> {
        self.update_in(store, owner, limit, now_ms, false, f)
    }

    /// [`Self::update`], but when every probed slot is held by a live bucket of another owner,
    /// the first one is taken over (its owner starts afresh) instead of giving up.
    pub fn update_evicting<T>(
        &self,
        store: &dyn SharedStore,
        owner: &[u8],
        limit: &Limit,
        now_ms: u64,
        f: impl FnMut(Option<BucketState>) -> (Option<BucketState>, T),
    ) -> Option<T> {
        self.update_in(store, owner, limit, now_ms, true, f)
    }

    fn update_in<T>(
        &self,
        store: &dyn SharedStore,
        owner: &[u8],
        limit: &Limit,
        now_ms: u64,
        evict: bool,
        mut f: impl FnMut(Option<BucketState>) -> (Option<BucketState>, T),
    ) -> Option<T> {
        let probes = self.probes.max(1);
        // After the probes, one more pass over the first slot that takes it whoever holds it.
        for probe in 0..probes + u32::from(evict) {
            let evicting = probe == probes;
            let key = self.key(owner, if evicting { 0 } else { probe });
            for _ in 0..CAS_RETRIES {
                let (value, cas) = store.get(&key);
                let mine = match value.as_deref().and_then(decode) {
                    Some(slot) if slot.owner == owner => Some(slot.state),
                    // Another owner whose bucket still says something, by its own limit: next slot.
                    Some(slot) if !evicting && !slot.limit.is_stale(slot.state, now_ms) => break,
                    _ => None,
                };
                let (new_state, result) = f(mine);
                let Some(new_state) = new_state else {
                    return Some(result);
                };
                if store
                    .set(&key, &encode(owner, limit, new_state), cas)
                    .is_err()
                {
                    continue; // someone else wrote first: read again
                }
                if cas.is_none() {
                    // A new key: Envoy does not compare-and-swap those, so check we won.
                    let (again, _) = store.get(&key);
                    if again
                        .as_deref()
                        .and_then(decode)
                        .is_none_or(|slot| slot.owner != owner)
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

/// An in-memory [`SharedStore`] with Envoy's semantics, for tests and the benchmarks (unused by
/// the filter itself, so not in the `.wasm`).
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
    use crate::rate_limit::{Decision, Limit};
    use std::cell::RefCell;

    const FREE: Limit = Limit {
        capacity: 10,
        per_minute: 60,
    };
    const SECRET: SlotSecret = SlotSecret([7; 16]);

    #[test]
    fn encoding_round_trips_and_keeps_owners_apart() {
        let s = BucketState {
            tokens_milli: 5,
            updated_ms: 7,
        };
        let v = encode(b"tenant-a", &FREE, s);
        let slot = decode(&v).unwrap();
        assert_eq!(
            (slot.owner, slot.limit, slot.state),
            (&b"tenant-a"[..], FREE, s)
        );
        assert_eq!(decode(&v[..31]), None);
        // an owner that is a prefix of another is still another owner
        assert_ne!(encode(b"a", &FREE, s), encode(b"ab", &FREE, s));
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
            secret: &SECRET,
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
    fn a_full_table_can_be_made_to_evict() {
        let store = FakeShared::default();
        let table = SlotTable {
            namespace: "rl",
            slots: 4,
            probes: 4,
            secret: &SECRET,
        };
        for owner in ["a", "b", "c", "d"] {
            take(&table, &store, owner, 0);
        }
        assert_eq!(take(&table, &store, "e", 0), None, "full");
        let evicted = table.update_evicting(&store, b"e", &FREE, 0, |s| {
            let (n, d) = FREE.take(s, 1, 0);
            (Some(n), d)
        });
        assert!(matches!(
            evicted,
            Some(Decision::Admitted { remaining: 9, .. })
        ));
        assert_eq!(store.map.borrow().len(), 4, "no more keys than slots");
        // e now holds a slot of its own; one of the others starts afresh.
        assert!(matches!(
            take(&table, &store, "e", 0),
            Some(Decision::Admitted { remaining: 8, .. })
        ));
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
                        .map(|slot| (slot.owner.to_vec(), slot.state))
                        .unwrap_or_default();
                    let (n, _) = FREE.take(Some(s), 1, 0);
                    self.inner.set(key, &encode(&owner, &FREE, n), c)?;
                }
                self.inner.set(key, value, cas)
            }
        }
        let store = FakeShared::default();
        let table = SlotTable {
            namespace: "rl",
            slots: 8,
            probes: 2,
            secret: &SECRET,
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

#[cfg(test)]
mod owner_limit_tests {
    use super::testing::MemoryShared;
    use super::*;

    const SLOW: Limit = Limit {
        capacity: 100,
        per_minute: 1,
    };
    const FAST: Limit = Limit {
        capacity: 1,
        per_minute: 6000,
    };

    #[test]
    fn staleness_is_judged_by_the_owners_limit() {
        let secret = SlotSecret([1; 16]);
        // One slot: every owner probes the same one.
        let table = SlotTable {
            namespace: "rl",
            slots: 1,
            probes: 1,
            secret: &secret,
        };
        let store = MemoryShared::default();
        let take = |owner: &[u8], limit: &Limit, now: u64| {
            table.update(&store, owner, limit, now, |s| {
                let (n, d) = limit.take(s, 1, now);
                (Some(n), d)
            })
        };
        assert!(take(b"enterprise", &SLOW, 0).is_some());
        // By FAST's refill the slow bucket would be full after 10 ms; by its own it is not.
        assert_eq!(
            take(b"free", &FAST, 1_000),
            None,
            "the slot stays the owner's"
        );
        let slot = store.get("rl.0").0.unwrap();
        assert_eq!(decode(&slot).unwrap().owner, b"enterprise");
        // Once full by its own limit (a minute per token), the slot may be taken.
        assert!(take(b"free", &FAST, 61_000).is_some());
    }

    #[test]
    fn the_secret_is_made_once_per_process_and_keys_the_slots() {
        let store = MemoryShared::default();
        let first = SlotSecret::shared(&store, [1; 16]);
        let second = SlotSecret::shared(&store, [2; 16]);
        assert_eq!(first, second, "every worker reads the first one");
        let other = SlotSecret([2; 16]);
        let differs = (0..32u8).any(|i| first.slot_of(&[i]) != other.slot_of(&[i]));
        assert!(differs, "another secret puts owners in other slots");
        assert_eq!(format!("{first:?}"), "SlotSecret(<redacted>)");
    }
}
