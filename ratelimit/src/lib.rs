//! mcp-edge-ratelimit: the global rate limit service of mcp-edge.
//!
//! Envoy's local buckets hold per replica; this service makes a tenant's per-tier budget hold
//! across all of them. It answers Envoy's rate limit protocol ([`service`]) from fixed-window
//! counters in Redis, decided in one atomic script ([`limiter`]) over windows aligned to the UTC
//! clock ([`clock_window`]), with the limits the operator
//! writes per tier in one file ([`limits_file`], turned into counters by [`policy`], reread by
//! [`reload`]).

pub mod caller_auth;
pub mod cli;
pub mod clock_window;
pub mod descriptor;
pub mod in_force;
pub mod limiter;
pub mod limits_file;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod response;
pub mod service;
