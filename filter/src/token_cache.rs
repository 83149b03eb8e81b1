//! A small, bounded cache of tokens that already passed `verify_bearer`.
//!
//! Pure-Rust RSA in wasm costs milliseconds per verification; agents send the same token on every
//! call. Entries are keyed by the SHA-256 of the token (the cache never holds a token), live until
//! the token's `exp` (plus the configured leeway, exactly as long as verification would accept it)
//! or for at most the configured maximum age, whichever ends first, and the cache never grows past
//! its capacity.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::token::VerifiedToken;

pub const DEFAULT_CAPACITY: usize = 1024;

#[derive(Debug)]
pub struct TokenCache {
    capacity: usize,
    leeway_seconds: u64,
    max_age_seconds: Option<u64>,
    /// The verified token and the last second it may be served from the cache.
    entries: HashMap<TokenKey, (VerifiedToken, u64)>,
}

/// What a token is cached under: its SHA-256, computed once per request (lookup and insert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl TokenCache {
    pub fn new(capacity: usize, leeway_seconds: u64) -> Self {
        Self {
            capacity: capacity.max(1),
            leeway_seconds,
            max_age_seconds: None,
            entries: HashMap::new(),
        }
    }

    /// Serve an entry for at most `seconds` after it was verified (`None`: until `exp`).
    pub fn with_max_age(mut self, seconds: Option<u64>) -> Self {
        self.max_age_seconds = seconds;
        self
    }

    /// The verified token, if it is cached and still within its lifetime.
    pub fn get(&mut self, key: &TokenKey, now: u64) -> Option<&VerifiedToken> {
        let (_, until) = self.entries.get(key)?;
        if now > *until {
            self.entries.remove(key);
            return None;
        }
        self.entries.get(key).map(|(v, _)| v)
    }

    pub fn insert(&mut self, key: TokenKey, verified: VerifiedToken, now: u64) {
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, until)| now <= *until);
        }
        if self.entries.len() >= self.capacity {
            // Still full of live tokens: drop the one that expires first.
            if let Some(victim) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&victim);
            }
        }
        let mut until = verified.expires_at.saturating_add(self.leeway_seconds);
        if let Some(max) = self.max_age_seconds {
            until = until.min(now.saturating_add(max));
        }
        self.entries.insert(key, (verified, until));
    }

    /// Forgets every entry (used when the trusted key set changes).
    pub fn clear(&mut self) {
        self.entries.clear();
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
        let mut c = TokenCache::new(4, 30);
        c.insert(TokenKey::of("a"), verified(100), 50);
        assert!(c.get(&TokenKey::of("a"), 130).is_some());
        assert!(c.get(&TokenKey::of("a"), 131).is_none());
        assert!(c.is_empty(), "expired entry is dropped on lookup");
        assert!(c.get(&TokenKey::of("b"), 0).is_none());
    }

    #[test]
    fn never_grows_past_capacity() {
        let mut c = TokenCache::new(3, 0);
        for i in 0..10u64 {
            c.insert(TokenKey::of(&format!("t{i}")), verified(1000 + i), 0);
            assert!(c.len() <= 3);
        }
        // the three latest-expiring tokens survive
        assert!(c.get(&TokenKey::of("t9"), 0).is_some());
        assert!(c.get(&TokenKey::of("t7"), 0).is_some());
        assert!(c.get(&TokenKey::of("t0"), 0).is_none());
    }

    #[test]
    fn expired_entries_are_evicted_first() {
        let mut c = TokenCache::new(2, 0);
        c.insert(TokenKey::of("old"), verified(10), 0);
        c.insert(TokenKey::of("live"), verified(1000), 0);
        c.insert(TokenKey::of("new"), verified(500), 20);
        assert!(c.get(&TokenKey::of("live"), 20).is_some());
        assert!(c.get(&TokenKey::of("new"), 20).is_some());
    }

    #[test]
    fn a_maximum_age_ends_an_entry_before_its_exp() {
        let mut c = TokenCache::new(4, 30).with_max_age(Some(60));
        c.insert(TokenKey::of("t"), verified(10_000), 1_000);
        assert!(c.get(&TokenKey::of("t"), 1_060).is_some());
        assert!(
            c.get(&TokenKey::of("t"), 1_061).is_none(),
            "at most 60 s after verification"
        );
        let mut c = TokenCache::new(4, 30).with_max_age(Some(60));
        c.insert(TokenKey::of("t"), verified(1_010), 1_000);
        assert!(c.get(&TokenKey::of("t"), 1_040).is_some());
        assert!(
            c.get(&TokenKey::of("t"), 1_041).is_none(),
            "exp plus leeway still ends it first"
        );
    }
}
