//! A small, bounded cache of tokens that already passed `verify_bearer`.
//!
//! Pure-Rust RSA in wasm costs milliseconds per verification; agents send the same token on every
//! call. Entries live until the token's `exp` (plus the configured leeway, exactly as long as
//! verification would accept it) or for at most the configured maximum age, whichever ends first,
//! and the cache never grows past its capacity: when full, the entry that ends first goes (an
//! expired one, if any), found in an index ordered by end, not by scanning.
//!
//! Entries are keyed by a 128-bit SipHash-2-4 of the token under a secret key of this Envoy
//! process (the cache never holds a token). SipHash is a keyed pseudorandom function: to be served
//! a cached token's claims, another token would have to collide with it under a key the caller
//! never sees, about 2^-128 per guess. It costs a fraction of a SHA-256 in wasm, where SHA-256 was
//! the largest single cost of a cached request.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hasher;
use std::rc::Rc;

use siphasher::sip128::{Hasher128, SipHasher24};

use crate::caller::Caller;
use crate::tenant::TenantContext;
use crate::token::VerifiedToken;

pub const DEFAULT_CAPACITY: usize = 1024;

#[derive(Debug)]
pub struct TokenCache {
    capacity: usize,
    leeway_seconds: u64,
    max_age_seconds: Option<u64>,
    hash_key: [u8; 16],
    /// The verified token's caller and the last second it may be served from the cache.
    entries: HashMap<TokenKey, (Rc<Caller>, u64)>,
    /// The same entries by their last second, for eviction.
    by_end: BTreeSet<(u64, TokenKey)>,
}

/// What a token is cached under, computed once per request (lookup and, on a miss, insert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenKey(u128);

impl TokenCache {
    /// A cache keyed with `hash_key` (secret: whoever knows it could aim for collisions).
    pub fn new(capacity: usize, leeway_seconds: u64, hash_key: [u8; 16]) -> Self {
        Self {
            capacity: capacity.max(1),
            leeway_seconds,
            max_age_seconds: None,
            hash_key,
            entries: HashMap::new(),
            by_end: BTreeSet::new(),
        }
    }

    /// Serve an entry for at most `seconds` after it was verified (`None`: until `exp`).
    pub fn with_max_age(mut self, seconds: Option<u64>) -> Self {
        self.max_age_seconds = seconds;
        self
    }

    /// The key `token` is cached under.
    pub fn key_of(&self, token: &str) -> TokenKey {
        let mut h = SipHasher24::new_with_key(&self.hash_key);
        h.write(token.as_bytes());
        TokenKey(h.finish128().as_u128())
    }

    /// The verified token's caller, if it is cached and still within its lifetime.
    pub fn get(&mut self, key: &TokenKey, now: u64) -> Option<Rc<Caller>> {
        let (caller, until) = self.entries.get(key)?;
        if now > *until {
            let until = *until;
            self.remove(key, until);
            return None;
        }
        Some(Rc::clone(caller))
    }

    /// Caches a verified token until its `exp` (plus the leeway); returns its caller as cached.
    pub fn insert(&mut self, key: TokenKey, verified: VerifiedToken, now: u64) -> Rc<Caller> {
        let until = verified.expires_at.saturating_add(self.leeway_seconds);
        self.insert_until(key, verified.tenant, now, until)
    }

    /// Caches an entry until `until` (unix seconds) at the latest, e.g. an introspection answer
    /// kept for less than its token's life; the cache's maximum age still applies.
    pub fn insert_until(
        &mut self,
        key: TokenKey,
        tenant: TenantContext,
        now: u64,
        until: u64,
    ) -> Rc<Caller> {
        if let Some((_, until)) = self.entries.get(&key) {
            let until = *until;
            self.remove(&key, until);
        }
        while self.entries.len() >= self.capacity {
            // The entry that ends first: expired ones before any live one.
            let Some((until, victim)) = self.by_end.first().copied() else {
                break;
            };
            self.remove(&victim, until);
        }
        let mut until = until;
        if let Some(max) = self.max_age_seconds {
            until = until.min(now.saturating_add(max));
        }
        let caller = Caller::new(tenant);
        self.entries.insert(key, (Rc::clone(&caller), until));
        self.by_end.insert((until, key));
        caller
    }

    fn remove(&mut self, key: &TokenKey, until: u64) {
        self.entries.remove(key);
        self.by_end.remove(&(until, *key));
    }

    /// Forgets every entry (used when the trusted key set changes).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_end.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::TenantContext;
    use mcp_edge_contract::Identity;

    const KEY: [u8; 16] = [9; 16];

    fn verified(exp: u64) -> VerifiedToken {
        VerifiedToken {
            tenant: TenantContext {
                identity: Identity::example("t"),
                allowed_tools: None,
            },
            expires_at: exp,
        }
    }

    #[test]
    fn hit_until_expiry_plus_leeway() {
        let mut c = TokenCache::new(4, 30, KEY);
        c.insert(c.key_of("a"), verified(100), 50);
        assert!(c.get(&c.key_of("a"), 130).is_some());
        assert!(c.get(&c.key_of("a"), 131).is_none());
        assert!(c.is_empty(), "expired entry is dropped on lookup");
        assert!(c.get(&c.key_of("b"), 0).is_none());
    }

    #[test]
    fn never_grows_past_capacity() {
        let mut c = TokenCache::new(3, 0, KEY);
        for i in 0..10u64 {
            c.insert(c.key_of(&format!("t{i}")), verified(1000 + i), 0);
            assert!(c.len() <= 3);
        }
        // the three latest-expiring tokens survive
        assert!(c.get(&c.key_of("t9"), 0).is_some());
        assert!(c.get(&c.key_of("t7"), 0).is_some());
        assert!(c.get(&c.key_of("t0"), 0).is_none());
    }

    #[test]
    fn expired_entries_are_evicted_first() {
        let mut c = TokenCache::new(2, 0, KEY);
        c.insert(c.key_of("old"), verified(10), 0);
        c.insert(c.key_of("live"), verified(1000), 0);
        c.insert(c.key_of("new"), verified(500), 20);
        assert!(c.get(&c.key_of("live"), 20).is_some());
        assert!(c.get(&c.key_of("new"), 20).is_some());
    }

    #[test]
    fn a_maximum_age_ends_an_entry_before_its_exp() {
        let mut c = TokenCache::new(4, 30, KEY).with_max_age(Some(60));
        c.insert(c.key_of("t"), verified(10_000), 1_000);
        assert!(c.get(&c.key_of("t"), 1_060).is_some());
        assert!(
            c.get(&c.key_of("t"), 1_061).is_none(),
            "at most 60 s after verification"
        );
        let mut c = TokenCache::new(4, 30, KEY).with_max_age(Some(60));
        c.insert(c.key_of("t"), verified(1_010), 1_000);
        assert!(c.get(&c.key_of("t"), 1_040).is_some());
        assert!(
            c.get(&c.key_of("t"), 1_041).is_none(),
            "exp plus leeway still ends it first"
        );
    }

    #[test]
    fn keys_depend_on_the_secret_and_the_index_follows_the_entries() {
        let mut c = TokenCache::new(2, 0, KEY);
        let other = TokenCache::new(2, 0, [8; 16]);
        assert_ne!(
            c.key_of("t"),
            other.key_of("t"),
            "another process keys differently"
        );
        assert_ne!(c.key_of("t"), c.key_of("u"));
        for exp in [100, 200, 50] {
            c.insert(c.key_of("t"), verified(exp), 0);
        }
        assert_eq!((c.len(), c.by_end.len()), (1, 1), "one entry per token");
        assert!(c.get(&c.key_of("t"), 50).is_some());
        assert!(
            c.get(&c.key_of("t"), 51).is_none(),
            "the last insert's end counts"
        );
        assert_eq!(c.by_end.len(), 0);
        c.insert(c.key_of("a"), verified(100), 0);
        c.clear();
        assert!(c.is_empty() && c.by_end.is_empty());
    }
}
