//! The contract between the mcp-edge filter and the backend: one source for what both must agree on.
//!
//! - [`identity`]: the [`Identity`] the edge vouches for (tenant, user, scopes, data scope, tier)
//!   and its `x-mcp-*` header encoding.
//! - [`signature`]: the gateway signature over identity, request line and body digest;
//!   [`vouch_headers`] for the filter, [`verify_vouched`] for the backend.
//! - [`codes`]: JSON-RPC error codes; [`scopes`]: scope names; [`limits`]: shared sizes.
//!
//! The filter is the only writer of `x-mcp-*` request headers: it removes any that arrive from
//! outside, sets them on every request it lets through and signs them. The backend recomputes the
//! signature and refuses anything that does not match or is not fresh.

pub mod codes;
pub mod identity;
pub mod limits;
pub mod scopes;
pub mod signature;

pub use identity::{HeaderError, Identity, Tier, headers};
pub use signature::{
    ContractError, GatewayKey, IdentityHeaders, MAX_GATEWAY_CLOCK_SKEW_SECS, MIN_SECRET_LEN,
    RequestFacts, RequestLine, Vouched, body_digest, canonical_string, sign, verify,
    verify_vouched, vouch_headers, vouch_headers_with,
};
