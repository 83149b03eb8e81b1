//! mcp-edge backend: the MCP tool server behind the mcp-edge Envoy filter.
//!
//! Requests reach it only through the filter, which signs the tenant identity into `x-mcp-*`
//! headers. [`gateway_auth`] checks that signature and builds a [`tenant::TenantContext`]; the
//! [`tools`] run on rmcp's Streamable HTTP server and keep data per tenant in a [`store`];
//! [`metering`] enforces the daily quota of billable calls and emits usage events, which the
//! `usage` subcommand ([`usage_cli`]) reports and exports for billing.

pub mod app;
pub mod config;
pub mod gateway_auth;
pub mod jsonrpc_error;
pub mod metering;
pub mod request_log;
pub mod store;
pub mod tenant;
#[doc(hidden)]
pub mod test_support;
pub mod tools;
pub mod usage_cli;
