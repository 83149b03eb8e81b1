//! What the mcp-edge filter costs, as ratios against Envoy without it, in the same run.
//!
//! One stack; three ways to the same recording upstream through the same Envoy (2 workers):
//! - baseline: a listener without the wasm filter;
//! - filtered, cached token: the full edge (JWT from the cache, strict JSON-RPC parse, policy,
//!   shared-data rate limit, HMAC signature);
//! - filtered, new token each request: the same plus an RS256 verification in wasm.
//!
//! Run: `cargo bench -p mcp-edge-tests --bench edge_overhead` (after `scripts/test.sh` built the
//! binaries). Prints a table; asserts only that every request was answered 200.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use mcp_edge_tests::client::http;
use mcp_edge_tests::stack::{Stack, StackOptions};
use serde_json::json;
use xtask::claims_for;

const CLIENTS: usize = 4;
const PHASE: Duration = Duration::from_secs(5);

struct Phase {
    name: &'static str,
    requests: usize,
    mean_latency_us: f64,
}

/// `CLIENTS` clients send calls for `PHASE`; `token(i)` gives the token of the i-th request.
fn run(
    name: &'static str,
    url: &str,
    token: Arc<dyn Fn(usize) -> String + Send + Sync>,
) -> Result<Phase> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "list_projects", "arguments": {"limit": 20}}})
    .to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let micros = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, body, token) = (url.to_string(), body.clone(), token.clone());
            let (count, failures, micros) = (count.clone(), failures.clone(), micros.clone());
            std::thread::spawn(move || {
                let client = http();
                while start.elapsed() < PHASE {
                    let i = count.fetch_add(1, Ordering::Relaxed);
                    let t0 = Instant::now();
                    let ok = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .bearer_auth(token(i))
                        .body(body.clone())
                        .send()
                        .is_ok_and(|r| r.status() == 200);
                    micros.fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("client panicked"))?;
    }
    let requests = count.load(Ordering::Relaxed);
    ensure!(
        failures.load(Ordering::Relaxed) == 0,
        "{name}: {} requests failed",
        failures.load(Ordering::Relaxed)
    );
    Ok(Phase {
        name,
        requests,
        mean_latency_us: micros.load(Ordering::Relaxed) as f64 / requests.max(1) as f64,
    })
}

fn main() -> Result<()> {
    let unlimited = json!({"requests_per_minute": 100_000_000u64, "burst": 100_000_000u64});
    let options = StackOptions {
        authz: false,
        // The filter's own counting (`stats_flush_ms` left to its default), not the tests' per-request one.
        plugin_overrides: json!({"rate_limits": {"free": unlimited, "pro": unlimited, "enterprise": unlimited}, "stats_flush_ms": null}),
        ..StackOptions::default()
    };
    let stack = Arc::new(Stack::start_with(&options)?);
    let cached = stack.token("tenant-bench")?;
    // Enough distinct tokens that none repeats within the phase.
    let fresh: Arc<Vec<String>> = Arc::new(
        (0..6000)
            .map(|i| {
                let mut spec = stack.spec("tenant-bench");
                spec.sub = format!("bench-user-{i}");
                stack.sign("RS256", claims_for(&spec))
            })
            .collect::<Result<_>>()?,
    );

    let warm = cached.clone();
    run(
        "warm-up",
        &stack.recorded_mcp_url,
        Arc::new(move |_| warm.clone()),
    )?;
    let c = cached.clone();
    let baseline = run(
        "Envoy without the filter",
        &stack.baseline_mcp_url,
        Arc::new(move |_| c.clone()),
    )?;
    let c = cached.clone();
    let filtered = run(
        "mcp-edge, cached token",
        &stack.recorded_mcp_url,
        Arc::new(move |_| c.clone()),
    )?;
    let f = fresh.clone();
    let verifying = run(
        "mcp-edge, new RS256 token each request",
        &stack.recorded_mcp_url,
        Arc::new(move |i| f[i % f.len()].clone()),
    )?;
    stack.stop();

    println!(
        "\n{CLIENTS} clients, {} s per phase, Envoy --concurrency 2, 2-core machine\n",
        PHASE.as_secs()
    );
    println!(
        "| path | requests/s | mean latency (µs) | throughput vs baseline | latency vs baseline |"
    );
    println!("|---|---|---|---|---|");
    for p in [&baseline, &filtered, &verifying] {
        let rps = p.requests as f64 / PHASE.as_secs_f64();
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} |",
            p.name,
            rps,
            p.mean_latency_us,
            p.requests as f64 / baseline.requests as f64,
            p.mean_latency_us / baseline.mean_latency_us
        );
    }
    Ok(())
}
