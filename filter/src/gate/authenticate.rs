//! The bearer token → the [`Caller`] (its [`TenantContext`](crate::tenant::TenantContext) and
//! prepared identity headers): cache first, then the per-address budget for invalid tokens, then
//! the signature and claims (see [`crate::token`]) — or, for an opaque token when `introspection`
//! is configured, the introspection endpoint's answer ([`crate::introspection`]).

use std::rc::Rc;

use crate::bearer::{BearerError, extract_bearer};
use crate::caller::Caller;
use crate::config::EdgeConfig;
use crate::introspection::{IntrospectionCall, cache_until, judge_answer, looks_like_jwt, request};
use crate::keys::KeySet;
use crate::rate_limit::SlotSecret;
use crate::rate_limit::address::address_owner;
use crate::token::{TokenError, verify_bearer};
use crate::token_cache::{TokenCache, TokenKey};

use super::{Denial, Host, address_table};

/// Why no tenant came out of the token.
#[derive(Debug)]
pub enum NotAuthenticated {
    Denied(Denial),
    /// The token names a key we do not have: wait for the worker's JWKS fetch, then authenticate
    /// again.
    FetchKeys,
    /// An opaque token: ask the introspection endpoint, then call [`introspected`] with the key
    /// its answer is cached under.
    Introspect(IntrospectionCall, TokenKey),
}

/// The signing keys a request may use, and whether it may wait for a JWKS fetch (one runs, or may
/// start: [`crate::jwks::KeyStore::may_wait_for_keys`]).
pub struct KeyAccess<'a> {
    pub keys: Option<&'a KeySet>,
    pub may_refetch: bool,
}

/// Where the per-address budget for invalid tokens is kept.
pub struct AddressBudget<'a> {
    pub host: &'a dyn Host,
    pub secret: &'a SlotSecret,
}

/// Authenticates the `Authorization` header values of a request.
pub fn authenticate(
    cfg: &EdgeConfig,
    authorization: &[&[u8]],
    keys: &KeyAccess<'_>,
    cache: &mut TokenCache,
    budget: &AddressBudget<'_>,
    now: u64,
) -> Result<Rc<Caller>, NotAuthenticated> {
    let deny = |d| Err(NotAuthenticated::Denied(d));
    let token = match extract_bearer(authorization) {
        Ok(t) => t,
        Err(BearerError::Missing) => return deny(Denial::NoToken),
        Err(BearerError::Malformed) => {
            charge_address(cfg, budget);
            return deny(Denial::InvalidToken(TokenError::Malformed));
        }
    };
    // Hashed once: the lookup and, on a miss, the insert.
    let cache_key = cache.key_of(token);
    if let Some(caller) = cache.get(&cache_key, now) {
        return Ok(caller);
    }
    // A flood of bad tokens from one address must not cost a signature check each. A token that
    // may be valid (a JWT's shape, or anything the introspection endpoint may know) is not refused
    // for want of a slot: it takes one over.
    let well_formed = looks_like_jwt(token) || cfg.introspection.is_some();
    if !address_may_try(cfg, budget, well_formed) {
        return deny(Denial::TooManyInvalidTokens(cfg.invalid_token_limit));
    }
    // Not a JWT: only the introspection endpoint can say what it is (else: malformed, below).
    if let Some(introspection) = &cfg.introspection
        && !looks_like_jwt(token)
    {
        return Err(NotAuthenticated::Introspect(
            request(introspection, token),
            cache_key,
        ));
    }
    let policy = &cfg.prepared.token_policy;
    let Some(key_set) = keys.keys else {
        // Without keys a token can still be judged malformed or of a refused algorithm.
        if let Err(e @ (TokenError::Malformed | TokenError::AlgorithmNotAllowed(_))) =
            verify_bearer(token, &KeySet::default(), policy, now)
        {
            return deny(Denial::InvalidToken(e));
        }
        return if keys.may_refetch {
            Err(NotAuthenticated::FetchKeys)
        } else {
            deny(Denial::KeysUnavailable)
        };
    };
    match verify_bearer(token, key_set, policy, now) {
        Ok(verified) => Ok(cache.insert(cache_key, verified, now)),
        Err(TokenError::UnknownKey(_)) if keys.may_refetch => Err(NotAuthenticated::FetchKeys),
        Err(e) => {
            charge_address(cfg, budget);
            deny(Denial::InvalidToken(e))
        }
    }
}

/// The introspection endpoint's answer (`status` `None`: no answer) about the token cached under
/// `cache_key`. Active answers are cached; refusals are not (each costs the address's budget).
pub fn introspected(
    cfg: &EdgeConfig,
    answer: (Option<&str>, &[u8]),
    cache_key: TokenKey,
    cache: &mut TokenCache,
    budget: &AddressBudget<'_>,
    now: u64,
) -> Result<Rc<Caller>, Denial> {
    let (status, body) = answer;
    let verdict = judge_answer(status, body, &cfg.prepared.token_policy, now);
    match (verdict, &cfg.introspection) {
        (Ok(verified), Some(introspection)) => {
            let until = cache_until(&verified, introspection, now);
            Ok(cache.insert_until(cache_key, verified.tenant, now, until))
        }
        (Ok(_), None) => Err(Denial::InvalidToken(TokenError::IntrospectionFailed)),
        (Err(e), _) => {
            charge_address(cfg, budget);
            Err(Denial::InvalidToken(e))
        }
    }
}

/// Whether this address may still have a token verified (it has not sent too many bad ones).
/// With `evict`, a full table makes room for the address instead of refusing it.
fn address_may_try(cfg: &EdgeConfig, budget: &AddressBudget<'_>, evict: bool) -> bool {
    let Some(owner) = address_owner_of(cfg, budget) else {
        return true;
    };
    let limit = cfg.invalid_token_limit;
    let now_ms = budget.host.now_ms();
    let table = address_table(cfg, budget.secret);
    let store = budget.host.shared();
    let check = |s| (None, limit.has_tokens(s, now_ms));
    let fresh = |s: Option<_>| {
        let state = s.unwrap_or_else(|| limit.full(now_ms));
        (Some(state), limit.has_tokens(Some(state), now_ms))
    };
    match table.update(store, owner.as_bytes(), &limit, now_ms, check) {
        Some(may) => may,
        None if evict => table
            .update_evicting(store, owner.as_bytes(), &limit, now_ms, fresh)
            .unwrap_or(false),
        None => false,
    }
}

/// Whose budget the request's address is: its IPv4 address or its IPv6 prefix.
fn address_owner_of(cfg: &EdgeConfig, budget: &AddressBudget<'_>) -> Option<String> {
    let ip = budget.host.client_ip()?;
    Some(address_owner(&ip, cfg.invalid_token_ipv6_prefix))
}

/// Counts a failed verification against the address.
fn charge_address(cfg: &EdgeConfig, budget: &AddressBudget<'_>) {
    let Some(owner) = address_owner_of(cfg, budget) else {
        return;
    };
    let limit = cfg.invalid_token_limit;
    let now_ms = budget.host.now_ms();
    let _ = address_table(cfg, budget.secret).update(
        budget.host.shared(),
        owner.as_bytes(),
        &limit,
        now_ms,
        |s| {
            let (next, _) = limit.take(s, 1, now_ms);
            (Some(next), ())
        },
    );
}
