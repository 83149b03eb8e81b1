//! The end-to-end test harness (the library of the top-level `tests/` package): starts real
//! servers on free loopback ports, stops them by pid.
//!
//! - [`procs`]: child processes that are killed when their guard drops, with logs kept in a
//!   temporary directory and printed when a test fails.
//! - [`envoy`]: the Envoy configuration for a test, derived from the repository's `envoy.yaml`.
//! - [`recorder`]: a recording upstream (a mock backend, named as such) that shows exactly what
//!   Envoy forwarded.
//! - [`stack`]: the whole request path: Redis, dev issuer or OAuth server, backend (or a
//!   third-party MCP server in Node or Python), recorder, Envoy.
//! - [`compose`]: docker-compose's Envoy configuration, derived from `envoy.yaml`.
//! - [`idp`]: tokens shaped as other identity providers shape them, and what the edge made of them;
//!   [`jwks_standin`]: an https stand-in for a provider's JWKS endpoint.
//! - [`keyless`]: a burst of requests to an Envoy whose JWKS answers the test holds back.
//! - [`client`]: HTTP and MCP client helpers; [`stats`]: Envoy's counters, read before and after;
//!   [`memory`]: the wasm VMs' linear memory and Envoy's resident size, from `/proc`;
//!   [`otlp`]: an OTLP trace receiver (gRPC and HTTP) on the official protobuf definitions;
//!   [`rmcp_client`]: rmcp's client at a pinned protocol version;
//!   [`runner`]: one stack per test binary, cases in parallel (or alone, when they read counters);
//!   [`streamable`]: raw Streamable HTTP requests (sessions, GET streams, refusals);
//!   [`upstream_cases`]: the cases every third-party server behind the edge must pass.
//! - [`tls_stack`]: the request path with TLS on every hop (`envoy.tls.yaml`), and [`https`], a
//!   client that shows the handshake (ALPN, the server's certificate, refusals).

pub mod client;
pub mod compose;
pub mod envoy;
pub mod https;
pub mod idp;
pub mod jwks_standin;
pub mod keyless;
pub mod memory;
pub mod otlp;
pub mod procs;
pub mod recorder;
pub mod rmcp_client;
pub mod runner;
pub mod stack;
pub mod stats;
pub mod streamable;
pub mod tls_stack;
pub mod upstream_cases;
pub mod wrk;

use std::path::PathBuf;

/// The workspace root (parent of this package, `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Cargo's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}
