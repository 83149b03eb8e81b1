//! The proxy-wasm glue: the one module that talks to Envoy.
//!
//! It reads what Envoy hands over (headers, body, JWKS responses), gives it to the request's
//! [`crate::gate::Gate`] and carries out what that returns. It holds no policy of its own. Per worker thread there is one VM,
//! one root context (configuration, keys, token cache, stats) and one HTTP context per request.
//!
//! - [`root`]: the root context: configuration, the JWKS fetch (on a timer, or when requests
//!   wait for keys), and the waiting requests carried on when it ends.
//! - [`worker`]: what the root and the requests of one worker share (keys, token cache, stats,
//!   the requests waiting for keys).
//! - [`request`]: one HTTP request: feed its gate, apply the gate's output.

mod request;
mod root;
mod worker;

use root::EdgeRoot;
use worker::Worker;

use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;

use crate::rate_limit::{SharedStore, WriteFailed};

#[allow(unsafe_code)] // the SDK's entry point macro exports `_initialize`
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
        proxy_wasm::set_root_context(|context_id| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::EdgeRoot::new(context_id))
        });
    }}
}

/// Envoy's shared data (one map per Envoy, shared by every worker thread's VM).
struct HostShared;

impl SharedStore for HostShared {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteFailed> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|_| WriteFailed)
    }
}

fn unix_now_nanos() -> u128 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// The client's IP address, without the port.
fn client_ip() -> Option<String> {
    let raw = hostcalls::get_property(vec!["source", "address"]).ok()??;
    let text = String::from_utf8(raw).ok()?;
    let ip = match text.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => text.as_str(),
    };
    Some(ip.trim_start_matches('[').trim_end_matches(']').to_string())
}

/// 16 bytes from the VM's randomly keyed hasher (WASI randomness under Envoy).
fn random_bytes() -> [u8; 16] {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    let a = state.hash_one(unix_now_nanos());
    let b = state.hash_one(a);
    let mut out = [0; 16];
    out[..8].copy_from_slice(&a.to_le_bytes());
    out[8..].copy_from_slice(&b.to_le_bytes());
    out
}

fn unix_now() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}
