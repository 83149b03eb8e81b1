//! How many long-lived streams (a stateful upstream's `GET` SSE streams, `subscriptions/listen`)
//! each tenant holds at once, counted in Envoy's shared data so every worker sees the same count.
//!
//! Such a stream has no route timeout and holds an upstream request as long as the client keeps
//! it; without a cap one tenant could hold every request the `backend` cluster's circuit breaker
//! allows and starve the others. A tenant's entry (`mcp_edge.streams.<keyed hash of the tenant>`)
//! lists, per holder (one per VM, a random id), how many streams that holder opened and has not
//! closed yet. A VM that goes away (replaced after a trap, or a configuration change) cannot close
//! its streams' places: each holder writes a heartbeat (`mcp_edge.streams.holder.<id>`, unix ms)
//! on its root's timer, and places of a holder whose heartbeat is older than [`HOLDER_TTL_MS`] no
//! longer count (they are dropped on the next write).

use super::slots::{SharedStore, SlotSecret};

/// A holder whose heartbeat is older than this is gone: its places are free.
pub const HOLDER_TTL_MS: u64 = 10_000;
/// How often a live holder writes its heartbeat.
pub const HEARTBEAT_MS: u64 = 1_000;

const CAS_RETRIES: u32 = 16;
const HOLDER_BYTES: usize = 8;
const ENTRY_BYTES: usize = HOLDER_BYTES + 4;

/// One VM's identity in the stream counts.
pub type Holder = [u8; HOLDER_BYTES];

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPlace {
    /// The tenant holds `cap` streams already.
    AtCap { cap: u32 },
    /// The count could not be written (others kept writing first): refused, fail closed.
    Busy,
}

/// The shared-data key of `tenant`'s entry (a keyed hash: tenants cannot aim at one another's).
fn tenant_key(secret: &SlotSecret, tenant: &str) -> String {
    use siphasher::sip::SipHasher24;
    use std::hash::Hasher;
    let mut h = SipHasher24::new_with_key(&secret.derive("mcp_edge.streams"));
    h.write(tenant.as_bytes());
    format!("mcp_edge.streams.{:016x}", h.finish())
}

fn heartbeat_key(holder: &Holder) -> String {
    let hex: String = holder.iter().map(|b| format!("{b:02x}")).collect();
    format!("mcp_edge.streams.holder.{hex}")
}

/// Writes `holder`'s heartbeat.
pub fn heartbeat(store: &dyn SharedStore, holder: &Holder, now_ms: u64) {
    let _ = store.set(&heartbeat_key(holder), &now_ms.to_le_bytes(), None);
}

/// Whether `holder` wrote a heartbeat within [`HOLDER_TTL_MS`].
fn is_live(store: &dyn SharedStore, holder: &Holder, now_ms: u64) -> bool {
    let (value, _) = store.get(&heartbeat_key(holder));
    value
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .is_some_and(|at| now_ms.saturating_sub(u64::from_le_bytes(at)) <= HOLDER_TTL_MS)
}

fn decode(value: &[u8]) -> Vec<(Holder, u32)> {
    value
        .chunks_exact(ENTRY_BYTES)
        .filter_map(|c| {
            let (holder, count) = c.split_at(HOLDER_BYTES);
            Some((
                Holder::try_from(holder).ok()?,
                u32::from_le_bytes(<[u8; 4]>::try_from(count).ok()?),
            ))
        })
        .collect()
}

fn encode(entries: &[(Holder, u32)]) -> Vec<u8> {
    entries
        .iter()
        .filter(|(_, n)| *n > 0)
        .flat_map(|(h, n)| h.iter().copied().chain(n.to_le_bytes()))
        .collect()
}

/// Changes `holder`'s count in `tenant`'s entry with `f` (given the entry without gone holders);
/// `f` returns the new count, or an error to write nothing.
fn update(
    store: &dyn SharedStore,
    secret: &SlotSecret,
    tenant: &str,
    holder: &Holder,
    now_ms: u64,
    f: impl Fn(u32, u32) -> Result<u32, NoPlace>,
) -> Result<(), NoPlace> {
    let key = tenant_key(secret, tenant);
    for _ in 0..CAS_RETRIES {
        let (value, cas) = store.get(&key);
        let mut entries: Vec<(Holder, u32)> = decode(value.as_deref().unwrap_or_default())
            .into_iter()
            .filter(|(h, _)| h == holder || is_live(store, h, now_ms))
            .collect();
        let total: u32 = entries.iter().map(|(_, n)| *n).sum();
        let mine = entries.iter().position(|(h, _)| h == holder);
        let held = mine.map_or(0, |i| entries[i].1);
        let new = f(total, held)?;
        match mine {
            Some(i) => entries[i].1 = new,
            None => entries.push((*holder, new)),
        }
        if store.set(&key, &encode(&entries), cas).is_err() {
            continue; // someone else wrote first: read again
        }
        if cas.is_none() {
            // A new key: Envoy does not compare-and-swap those, so check we won.
            let (again, _) = store.get(&key);
            let ours = decode(again.as_deref().unwrap_or_default())
                .iter()
                .any(|(h, n)| h == holder && *n == new);
            if !ours && new > 0 {
                continue;
            }
        }
        return Ok(());
    }
    Err(NoPlace::Busy)
}

/// Takes a place for a new stream of `tenant`, if it holds fewer than `cap`.
pub fn acquire(
    store: &dyn SharedStore,
    secret: &SlotSecret,
    tenant: &str,
    holder: &Holder,
    cap: u32,
    now_ms: u64,
) -> Result<(), NoPlace> {
    update(store, secret, tenant, holder, now_ms, |total, held| {
        if total >= cap {
            return Err(NoPlace::AtCap { cap });
        }
        Ok(held + 1)
    })
}

/// Gives back the place of a stream of `tenant` that `holder` opened and that has ended.
pub fn release(
    store: &dyn SharedStore,
    secret: &SlotSecret,
    tenant: &str,
    holder: &Holder,
    now_ms: u64,
) {
    let _ = update(store, secret, tenant, holder, now_ms, |_, held| {
        Ok(held.saturating_sub(1))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::testing::MemoryShared;

    const SECRET: SlotSecret = SlotSecret([7; 16]);
    const A: Holder = [1; 8];
    const B: Holder = [2; 8];

    #[test]
    fn a_tenant_at_its_cap_is_refused_and_others_are_not() {
        let store = MemoryShared::default();
        heartbeat(&store, &A, 0);
        heartbeat(&store, &B, 0);
        assert_eq!(acquire(&store, &SECRET, "acme", &A, 2, 10), Ok(()));
        // Another worker's VM counts in the same entry.
        assert_eq!(acquire(&store, &SECRET, "acme", &B, 2, 10), Ok(()));
        assert_eq!(
            acquire(&store, &SECRET, "acme", &A, 2, 10),
            Err(NoPlace::AtCap { cap: 2 })
        );
        assert_eq!(acquire(&store, &SECRET, "globex", &A, 2, 10), Ok(()));
        // A stream that ends frees its place.
        release(&store, &SECRET, "acme", &B, 20);
        assert_eq!(acquire(&store, &SECRET, "acme", &A, 2, 30), Ok(()));
        assert_eq!(
            acquire(&store, &SECRET, "acme", &B, 2, 30),
            Err(NoPlace::AtCap { cap: 2 })
        );
    }

    #[test]
    fn the_places_of_a_vm_that_went_away_are_freed() {
        let store = MemoryShared::default();
        heartbeat(&store, &A, 0);
        assert_eq!(acquire(&store, &SECRET, "acme", &A, 1, 0), Ok(()));
        heartbeat(&store, &B, 5_000);
        assert_eq!(
            acquire(&store, &SECRET, "acme", &B, 1, 5_000),
            Err(NoPlace::AtCap { cap: 1 }),
            "A is still live"
        );
        // A stops beating (its VM was replaced); B goes on.
        heartbeat(&store, &B, 11_000);
        assert_eq!(acquire(&store, &SECRET, "acme", &B, 1, 11_000), Ok(()));
        let (value, _) = store.get(&tenant_key(&SECRET, "acme"));
        assert_eq!(decode(&value.unwrap()), vec![(B, 1)], "A's places dropped");
    }

    #[test]
    fn releasing_more_than_held_never_goes_below_zero() {
        let store = MemoryShared::default();
        heartbeat(&store, &A, 0);
        release(&store, &SECRET, "acme", &A, 0);
        assert_eq!(acquire(&store, &SECRET, "acme", &A, 1, 0), Ok(()));
        release(&store, &SECRET, "acme", &A, 0);
        release(&store, &SECRET, "acme", &A, 0);
        assert_eq!(acquire(&store, &SECRET, "acme", &A, 1, 0), Ok(()));
        assert_eq!(
            acquire(&store, &SECRET, "acme", &A, 1, 0),
            Err(NoPlace::AtCap { cap: 1 })
        );
    }

    #[test]
    fn tenant_keys_are_keyed() {
        assert_ne!(tenant_key(&SECRET, "acme"), tenant_key(&SECRET, "globex"));
        assert_ne!(
            tenant_key(&SECRET, "acme"),
            tenant_key(&SlotSecret([8; 16]), "acme")
        );
    }
}
