//! The contract between the mcp-edge filter and the backend: one source for what both must agree on.
//!
//! - [`identity`]: the [`Identity`] the edge vouches for (tenant, user, scopes, data scope, tier)
//!   and the one rule its values meet ([`Identity::check`]).
//! - [`assertion`]: trust contract v3, the identity as one compact JWS in `x-mcp-identity`:
//!   [`AssertionSigner`] for the filter, [`AssertionVerifier`] for a backend (jwt-simple).
//! - [`key`]: the gateway secret ([`GatewayKey`]) and the body digest.
//! - [`codes`]: JSON-RPC error codes; [`scopes`]: scope names; [`limits`]: shared sizes.
//!
//! The filter is the only writer of `x-mcp-*` request headers: it removes any that arrive from
//! outside and sets `x-mcp-identity` on every request it lets through. A backend verifies the
//! assertion, compares its request binding with the request it received and runs a `jti` once.

pub mod assertion;
pub mod codes;
pub mod identity;
pub mod key;
pub mod limits;
pub mod scopes;

pub use assertion::{
    AssertionError, AssertionSigner, AssertionVerifier, Binding, IdentityClaims, RequestLine,
    Vouched,
};
pub use identity::{Identity, Tier, headers};
pub use key::{GatewayKey, MIN_SECRET_LEN, SecretTooShort, body_digest};
