//! Per-request costs of the filter's pure core, measured where the filter really runs: built for
//! `wasm32-wasip1` and run under Node's WASI (V8, the engine Envoy uses), or natively for
//! comparison. `scripts/bench-core-wasm.sh` runs both and prints them side by side.
//!
//! Criterion (`benches/core.rs`) measures natively only; V8 runs the same code several times
//! slower, and not uniformly (64-bit multiplies, SHA-256 without CPU extensions), so the hot path
//! is judged here: the whole cached-token request through [`Gate`] (head, body, response head,
//! exactly as the glue drives it, with an in-memory host) and each step of it alone.
//!
//! Output: one line per measurement, `name<TAB>nanoseconds per iteration`. Arguments: `--quick`
//! (short runs, no token verification), `--only <part of a name>`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jwt_simple::prelude::*;
use mcp_edge_contract::{
    AssertionSigner, Binding, GatewayKey, Identity, IdentityClaims, body_digest,
};
use mcp_edge_filter::config::parse_config;
use mcp_edge_filter::gate::{Gate, Host, Step, WorkerState};
use mcp_edge_filter::jsonrpc::parse_payload;
use mcp_edge_filter::rate_limit::testing::MemoryShared;
use mcp_edge_filter::rate_limit::{SharedStore, SlotSecret};
use mcp_edge_filter::token_cache::TokenCache;
use serde_json::{Value, json};

#[path = "../benches/fixtures.rs"]
#[allow(dead_code)] // the criterion benches use all of it
mod fixtures;
use fixtures::{AUDIENCE, BODY, ISSUER, claims, token_policy, tokens_of_each_algorithm};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// The host with a real clock, as the glue gives it: shared data in memory.
struct TimedHost {
    shared: MemoryShared,
}

impl Host for TimedHost {
    fn now_nanos(&self) -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    }
    fn client_ip(&self) -> Option<String> {
        Some("10.0.0.1".into())
    }
    fn shared(&self) -> &dyn SharedStore {
        &self.shared
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Runs `f` for about `budget` and prints the mean time per call (only the measurements whose
/// name contains the `--only` argument, if given: for a profiler).
fn measure(name: &str, budget: Duration, mut f: impl FnMut()) {
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    if only.is_some_and(|only| !name.contains(&only)) {
        return;
    }
    for _ in 0..50 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..20 {
            f();
        }
        n += 20;
    }
    let nanos = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{name}\t{nanos:.0}");
}

/// Bytes walked between two timed calls of [`measure_cold`]: twice the L2 cache of this machine's
/// cores, so the data of one request is out of L1 and L2 when the next comes.
const EVICT_BYTES: usize = 4 << 20;

/// Like [`measure`], but every call comes after a write over [`EVICT_BYTES`] of other memory (not
/// timed), as Envoy's own work between two requests leaves the data caches: the gap between this
/// and the hot figure is what cold data costs. Code stays hot (one small walking loop runs between).
fn measure_cold(name: &str, budget: Duration, mut f: impl FnMut()) {
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    if only.is_some_and(|only| !name.contains(&only)) {
        return;
    }
    let mut other = vec![0u8; EVICT_BYTES];
    let mut evict = |round: u8| {
        for line in other.chunks_mut(64) {
            line[0] = line[0].wrapping_add(round);
        }
        black_box(&other);
    };
    let clock = {
        let start = Instant::now();
        for _ in 0..1000 {
            black_box(Instant::now());
        }
        start.elapsed() / 1000
    };
    let (mut timed, mut n, mut round) = (Duration::ZERO, 0u32, 0u8);
    let start = Instant::now();
    while start.elapsed() < budget * 4 {
        round = round.wrapping_add(1);
        evict(round);
        let call = Instant::now();
        f();
        timed += call.elapsed().saturating_sub(clock);
        n += 1;
    }
    let nanos = timed.as_nanos() as f64 / f64::from(n.max(1));
    println!("{name}\t{nanos:.0}");
}

fn config(jwk: &Value) -> mcp_edge_filter::config::EdgeConfig {
    let v = json!({
        "resource": AUDIENCE,
        "issuers": [ISSUER],
        "jwks": {"inline": {"keys": [jwk]}},
        "algorithms": ["RS256", "ES256", "EdDSA"],
        "gateway_secret": {"inline": SECRET},
        "prm": {"authorization_servers": [ISSUER], "scopes_supported": ["mcp:read", "mcp:write"]},
        "tool_scopes": {"list_projects": "mcp:read", "get_project": "mcp:read",
                        "create_project": "mcp:write"},
        "rate_limits": {
            "free": {"requests_per_minute": 1_000_000_000u64, "burst": 1_000_000_000u64},
            "pro": {"requests_per_minute": 1_000_000_000u64, "burst": 1_000_000_000u64},
            "enterprise": {"requests_per_minute": 1_000_000_000u64, "burst": 1_000_000_000u64}
        }
    });
    parse_config(v.to_string().as_bytes(), &|_| None).expect("a valid configuration")
}

/// The head Envoy hands the filter for the benchmark's request.
fn head(token: &str) -> Vec<(String, Vec<u8>)> {
    [
        (":authority", "127.0.0.1:10000"),
        (":path", "/mcp"),
        (":method", "POST"),
        (":scheme", "http"),
        ("host", "127.0.0.1"),
        ("content-type", "application/json"),
        ("authorization", token),
        ("content-length", "124"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "5f0e1a3c-2b4d-4e6f-8a9b-0c1d2e3f4a5b"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
    .collect()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 100 } else { 1000 });
    let now = now_secs();
    let ed = Ed25519KeyPair::generate().with_key_id("ed");
    let jwk: Value = serde_json::from_str(&ed.public_key().to_jwk()).expect("a JWK");
    let mut w = WorkerState::new(config(&jwk), SlotSecret([7; 16]));
    let host = TimedHost {
        shared: MemoryShared::default(),
    };
    let token = ed.sign(claims(now)).expect("signed");
    let bearer = format!("Bearer {token}");

    // One request through the gate, as the glue drives it; the token is cached after the first.
    let mut request = || {
        let mut gate = Gate::default();
        let out = gate.on_request_headers(&mut w, &host, head(&bearer), false);
        assert_eq!(out.step, Step::WaitForBody, "{out:?}");
        let cfg = w.config.clone();
        let out = gate.on_request_body(&cfg, BODY.len(), true);
        assert_eq!(out.step, Step::ReadBody);
        let out = gate.on_body(&w, &host, BODY);
        assert_eq!(out.step, Step::Continue, "{out:?}");
        black_box(gate.on_response_headers(&cfg, false, |_| None));
    };
    measure("gate/cached_request", budget, &mut request);
    measure_cold("gate/cached_request_cold_data", budget, &mut request);

    let mut head_only = || {
        let mut gate = Gate::default();
        black_box(gate.on_request_headers(&mut w, &host, head(&bearer), false));
    };
    measure("gate/head_only", budget, &mut head_only);
    measure("head/copy", budget, || {
        black_box(head(&bearer));
    });
    let cache = TokenCache::new(16, 0, [5; 16]);
    measure("token/cache_key", budget, || {
        black_box(cache.key_of(black_box(&token)));
    });
    measure("jsonrpc/parse", budget, || {
        black_box(parse_payload(black_box(BODY)).is_ok());
    });
    measure("request_id/new", budget, || {
        black_box(mcp_edge_filter::request_id::new_request_id(
            host.now_nanos(),
        ));
    });
    measure("host/now", budget, || {
        black_box(host.now_nanos());
    });
    let digest = body_digest(BODY);
    measure("signature/body_digest", budget, || {
        black_box(body_digest(black_box(BODY)));
    });
    let key = GatewayKey::new(SECRET.as_bytes()).expect("key");
    let identity = Identity::example("tenant-bench");
    // As the gate does: the signer is made per configuration, the claims per cached caller.
    let signer = AssertionSigner::new(&key, "mcp-edge", "mcp-edge-backend");
    let claims = IdentityClaims::new(&identity).expect("signable");
    let binding = Binding {
        method: "POST",
        path: "/mcp",
        protocol_version: "2025-06-18",
        request_id: "mcpe-0123456789abcdef0123456789abcdef",
        issued_at: now,
        body_digest: &digest,
    };
    measure("assertion/sign", budget, || {
        let _ = black_box(signer.sign(&claims, black_box(&binding)));
    });
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    if !quick
        && only.is_none_or(|o| {
            ["verify_bearer/", "rs256/signature_only"]
                .iter()
                .any(|name| name.contains(o.as_str()) || o.contains(name))
        })
    {
        fresh_verifications(now);
    }
}

/// A new token on every request: verification per algorithm, and RS256's signature alone.
fn fresh_verifications(now: u64) {
    use mcp_edge_filter::token::verify_bearer;
    let policy = token_policy();
    let (keys, tokens) = tokens_of_each_algorithm(now);
    rs256_parts(&keys, &tokens[0].1);
    for (alg, token) in tokens {
        assert!(verify_bearer(&token, &keys, &policy, now).is_ok());
        measure(
            &format!("verify_bearer/{alg}"),
            Duration::from_millis(1500),
            || {
                black_box(verify_bearer(black_box(&token), &keys, &policy, now).is_ok());
            },
        );
    }
}

/// An RS256 token's miss path split: the RSA signature alone (PKCS#1 v1.5 over SHA-256) beside the
/// whole verification measured in [`fresh_verifications`].
fn rs256_parts(keys: &mcp_edge_filter::keys::KeySet, token: &str) {
    use base64::Engine as _;
    use mcp_edge_filter::keys::{Algorithm, VerifyingKey};
    let Some(VerifyingKey::Rs256(key)) = keys.candidates(Some("rs"), Algorithm::Rs256).next()
    else {
        panic!("the fixture's RS256 key");
    };
    let (signed, signature) = token.rsplit_once('.').expect("a compact JWT");
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .expect("base64url");
    assert!(key.signs(signed.as_bytes(), &signature));
    measure("rs256/signature_only", Duration::from_millis(1500), || {
        black_box(key.signs(black_box(signed.as_bytes()), &signature));
    });
}
