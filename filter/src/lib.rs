//! mcp-edge filter: the Envoy proxy-wasm filter that authenticates MCP clients at the edge.
//!
//! Decision logic lives in pure, host-free modules, tested natively with `cargo test`:
//! - [`config`]: the plugin configuration, parsed strictly.
//! - [`keys`]: JWKS → verification keys, each bound to one algorithm; [`rs256`]: RS256 verified
//!   with crypto-bigint (fast in wasm), claims still checked by jwt-simple.
//! - [`bearer`]: the token from the `Authorization` header, nowhere else.
//! - [`token`]: `verify_bearer`, signature and claims; [`tenant`]: the TenantContext, read from
//!   the claims [`claim_mapping`] names.
//! - [`token_cache`]: verified tokens, bounded, until `exp`.
//! - [`prm`]: RFC 9728 protected resource metadata; [`cors`]: browsers from allowed origins.
//! - [`request_id`]: the edge's own request ids; the `x-mcp-*` headers and their signature are
//!   the contract crate's.
//! - [`reply`]: local replies (status, `WWW-Authenticate`, JSON-RPC error body).
//! - [`strict_json`], [`jsonrpc`]: the body, read strictly; [`protocol`]: version rules and
//!   `Mcp-Method`/`Mcp-Name`; [`policy`]: `ToolPolicy`; [`tools_list`]: response filtering, of
//!   event streams event by event ([`sse`] splits them as clients do).
//! - [`jwks`]: the JWKS lifecycle (when to fetch, installing keys); [`jwks_waiters`]: one fetch
//!   at a time per worker and the requests waiting for it; [`prepared`]: what the configuration
//!   determines, computed once.
//! - [`gate`]: the request's journey, start to end: one state machine the glue feeds.
//!
//! `glue` (compiled for wasm32 only) is the one module that talks to Envoy; it moves bytes and headers in and out.

#![deny(unsafe_code)]

pub mod bearer;
pub mod caller;
pub mod claim_mapping;
pub mod config;
pub mod cors;
pub mod gate;
pub mod introspection;
pub mod jsonrpc;
pub mod jwks;
pub mod jwks_waiters;
pub mod keys;
pub mod policy;
pub mod prepared;
pub mod prm;
pub mod protocol;
pub mod rate_limit;
pub mod reply;
pub mod request_id;
pub mod routing_headers;
pub mod rs256;
pub mod session;
pub mod sse;
pub mod strict_json;
pub mod tenant;
pub mod token;
pub mod token_cache;
pub mod tools_list;

#[cfg(target_arch = "wasm32")]
mod glue;
