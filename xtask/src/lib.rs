//! mcp-edge developer tools, as a library the `xtask` binary and the end-to-end tests share.
//!
//! - [`dev_keys`]: the development issuer's keys and tokens (a stand-in for a tenant's
//!   authorization server).
//! - [`sync_config`]: the configuration files written from the tools the backend serves
//!   (`cargo xtask sync-config`), with [`docker_envoy`] deriving docker-compose's Envoy
//!   configuration and [`json_member`] editing one member of a JSON text in place.
//! - [`assertion_vectors`]: docs/assertion-vectors.json, the identity assertion's test vectors
//!   generated from the contract (`cargo xtask assertion-vectors`).
//! - [`bench_setup`]: what `scripts/bench.sh` runs from (`cargo xtask bench-setup`): Envoy
//!   configurations derived from envoy.yaml ([`bench_envoy`]) and token files ([`bench_tokens`]).
//! - [`scaled_envoy`]: one replica's Envoy configuration for `scripts/run.sh --scaled`, with the
//!   global rate limit on.
//! - [`tls_envoy`]: `envoy.tls.yaml`, envoy.yaml with TLS on every hop; [`dev_certs`]: a
//!   throwaway CA and the certificates it reads (`cargo xtask dev-certs`, the TLS tests).
//! - [`deploy`]: deploy/rendered/ (Kubernetes, Envoy Gateway, Istio, ECS) from deploy/values.yaml
//!   and envoy.yaml (`cargo xtask deploy`).
//! - [`tool_scopes`]: a third-party MCP server's tools as the edge's `tool_scopes`
//!   (`cargo xtask tool-scopes`): listed by [`mcp_lister`] (SSE answers read by [`sse_events`]),
//!   mapped by [`scope_rule`].
//! - [`oci_image`]: the filter's `.wasm` as an OCI image layout (`cargo xtask oci`), its one layer
//!   made reproducibly by [`oci_tar`].

pub mod assertion_vectors;
pub mod bench_envoy;
pub mod bench_setup;
pub mod bench_tokens;
pub mod deploy;
pub mod dev_certs;
pub mod dev_keys;
pub mod docker_envoy;
pub mod json_member;
pub mod mcp_lister;
pub mod oci_image;
pub mod oci_tar;
pub mod scaled_envoy;
pub mod scope_rule;
pub mod sse_events;
pub mod sync_config;
pub mod tls_envoy;
pub mod tool_scopes;

pub use dev_keys::{DevKeys, TokenSpec, claims_for};
