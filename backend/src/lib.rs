//! mcp-edge backend: the MCP tool server behind the mcp-edge Envoy filter.
//!
//! Requests reach it only through the filter, which signs the tenant identity into one assertion,
//! `x-mcp-identity` (a JWS). [`gateway_auth`] verifies it with the `mcp-edge-trust` crate and builds
//! a [`tenant::TenantContext`]; the
//! [`tools`] run on rmcp's Streamable HTTP server (JSON-RPC batches of MCP 2025-03-26 split by
//! [`batch`]) and keep data per tenant in a [`store`];
//! [`metering`] enforces the daily quota of billable calls and emits usage events, which the
//! `usage` subcommand ([`usage_cli`]) reports and exports for billing.

pub mod app;
pub mod batch;
pub mod config;
pub mod export_file;
pub mod gateway_auth;
pub mod jsonrpc_error;
pub mod keyspace;
pub mod metering;
pub mod metrics;
pub mod openapi;
/// A throwaway `redis-server` for tests: compiled only into this crate's own tests (the
/// `test-support` feature its dev-dependency on itself turns on), never into the server.
#[cfg(any(test, feature = "test-support"))]
pub mod redis_server;
pub mod request_log;
pub mod shed;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod tls;
pub mod tools;
pub mod usage_cli;
