//! Envoy's own CPU per request, with and without the mcp-edge filter: the figure the hot-path work
//! (issue 11) is judged by. Wall-clock ratios on a shared 2-core machine move with whatever else
//! runs; the CPU Envoy's process spends per request (utime + stime from `/proc`, divided by the
//! requests wrk completed) moves much less, and the difference between two listeners of the same
//! Envoy in the same run is the filter's cost.
//!
//! Phases, interleaved for `DEFAULT_ROUNDS` rounds (or `EDGE_CPU_ROUNDS`): baseline listener (no filter), cached token, cached
//! token on a second Envoy whose filter puts no access-log properties (`access_log_properties:
//! false`), a new RS256 / ES256 / EdDSA token on every request. Each phase is wrk (`-t1 -c16`) for `PHASE_SECS`,
//! then a c1 run for the mean latency. The second and third Envoys (below) get a phase on their
//! own listener without the filter too, and their rows are compared with it.
//!
//! With `EDGE_CPU_BEFORE_WASM=<path to an earlier mcp_edge_filter.wasm>`, a third Envoy loads
//! that build and its cached-token and new-RS256-token phases run interleaved with the others:
//! before and after from one run; `EDGE_CPU_BEFORE_ENVOY_YAML=<path>` gives that Envoy the
//! `envoy.yaml` of the same commit (when the access log read other filter state then).
//! `EDGE_CPU_TRACING=1` adds an Envoy with envoy.yaml's OpenTelemetry tracing on (spans sent in
//! Envoy's default batches to an OTLP receiver in this process, `harness/otlp.rs`): its listener
//! without the filter and its cached-token phase, whose CPU is set beside the first Envoy's (the
//! tracing cost is the difference of the absolute figures, two processes apart).
//! `EDGE_CPU_CACHED_ONLY=1` leaves out the new-token phases (for
//! work on the cached path: more rounds in the same time); `EDGE_CPU_ROUNDS=<n>` sets the rounds.
//!
//! Run: `cargo bench -p mcp-edge-tests --bench edge_cpu` (needs `wrk` on PATH and the release
//! `.wasm` that `scripts/test.sh` builds). Prints a table; fails if any answer was not 2xx.

use std::path::PathBuf;

use anyhow::{Context, Result};
use mcp_edge_tests::otlp::OtlpReceiver;
use mcp_edge_tests::stack::{Stack, StackOptions};
use mcp_edge_tests::wrk::{SCRIPT, cpu_micros, wrk};
use serde_json::json;
use xtask::claims_for;

const DEFAULT_ROUNDS: usize = 2;
/// The row of a second or third Envoy's listener without the filter; the rows after it are
/// compared with it.
const OWN_BASELINE: &str = "its Envoy without the filter";
const PHASE_SECS: u64 = 5;
const LATENCY_SECS: u64 = 3;
/// Enough that no token comes twice in a setup (about 1 600 req/s × 8 s × 2 rounds for RS256):
/// otherwise the second round meets cached tokens and the miss cost is diluted.
const FRESH_TOKENS: usize = 30_000;

#[derive(Default, Clone)]
struct Totals {
    requests: f64,
    cpu_us: f64,
    rps: Vec<f64>,
    latency_us: Vec<f64>,
}

fn main() -> Result<()> {
    let rounds = match std::env::var("EDGE_CPU_ROUNDS") {
        Ok(n) => n.parse().context("EDGE_CPU_ROUNDS is not a number")?,
        Err(_) => DEFAULT_ROUNDS,
    };
    let cached_only = std::env::var_os("EDGE_CPU_CACHED_ONLY").is_some_and(|v| v == "1");
    let unlimited = json!({"requests_per_minute": 100_000_000u64, "burst": 100_000_000u64});
    let options = StackOptions {
        authz: false,
        // The filter's own counting (`stats_flush_ms` left to its default), not the tests' per-request one.
        plugin_overrides: json!({"rate_limits": {"free": unlimited, "pro": unlimited, "enterprise": unlimited}, "stats_flush_ms": null}),
        ..StackOptions::default()
    };
    let stack = Stack::start_with(&options)?;
    let quiet = Stack::start_with(&StackOptions {
        authz: false,
        plugin_overrides: json!({
            "rate_limits": {"free": unlimited, "pro": unlimited, "enterprise": unlimited},
            "access_log_properties": false,
            "stats_flush_ms": null,
        }),
        ..StackOptions::default()
    });
    let before = match std::env::var_os("EDGE_CPU_BEFORE_WASM") {
        Some(wasm) => Some(Stack::start_with(&StackOptions {
            filter_wasm: Some(PathBuf::from(wasm)),
            envoy_yaml: std::env::var_os("EDGE_CPU_BEFORE_ENVOY_YAML").map(PathBuf::from),
            ..options.clone()
        })?),
        None => None,
    };
    let receiver = match std::env::var_os("EDGE_CPU_TRACING").is_some_and(|v| v == "1") {
        true => Some(OtlpReceiver::start()?),
        false => None,
    };
    let traced = match &receiver {
        Some(r) => Some(Stack::start_with(&StackOptions {
            otel_collector: Some(r.grpc_port),
            batched_spans: true,
            ..options.clone()
        })?),
        None => None,
    };
    let dir = stack.dir().to_path_buf();
    let script = dir.join("bench.lua");
    std::fs::write(&script, SCRIPT)?;
    let write_tokens = |name: &str, tokens: Vec<String>| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, tokens.join("\n") + "\n")?;
        Ok(path)
    };
    let cached = write_tokens("cached", vec![stack.token("tenant-bench")?])?;
    let fresh_on = |on: &Stack, alg: &str, file: &str| -> Result<PathBuf> {
        let tokens = (0..FRESH_TOKENS)
            .map(|i| {
                let mut spec = on.spec("tenant-bench");
                spec.sub = format!("bench-user-{i}");
                on.sign(alg, claims_for(&spec))
            })
            .collect::<Result<Vec<_>>>()?;
        write_tokens(file, tokens)
    };
    let fresh = |alg: &str| fresh_on(&stack, alg, alg);
    let main = &stack;
    let mut setups = vec![
        (
            "Envoy without the filter",
            main,
            &stack.baseline_mcp_url,
            cached.clone(),
        ),
        (
            "mcp-edge, cached token",
            main,
            &stack.recorded_mcp_url,
            cached.clone(),
        ),
    ];
    // Warm both workers' caches and VMs. A filter built before `access_log_properties` existed
    // refuses that configuration: then its phase is left out.
    wrk(&stack.recorded_mcp_url, &cached, 4, 2, &script)?;
    // The second stack has its own issuer keys: its token is signed there.
    let quiet_phase = |quiet: &Stack| -> Result<PathBuf> {
        let tokens = write_tokens("quiet-cached", vec![quiet.token("tenant-bench")?])?;
        wrk(&quiet.recorded_mcp_url, &tokens, 4, 2, &script)?;
        Ok(tokens)
    };
    match quiet
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .and_then(|q| Ok((q, quiet_phase(q)?)))
    {
        Ok((q, tokens)) => {
            setups.push((OWN_BASELINE, q, &q.baseline_mcp_url, tokens.clone()));
            setups.push((
                "mcp-edge, cached token, access_log_properties: false",
                q,
                &q.recorded_mcp_url,
                tokens,
            ));
        }
        Err(e) => println!("no access_log_properties phase: {e}"),
    }
    let algs: &[&str] = if cached_only {
        &[]
    } else {
        &["RS256", "ES256", "EdDSA"]
    };
    for &alg in algs {
        let name = match alg {
            "RS256" => "mcp-edge, new RS256 token",
            "ES256" => "mcp-edge, new ES256 token",
            _ => "mcp-edge, new EdDSA token",
        };
        setups.push((name, main, &stack.recorded_mcp_url, fresh(alg)?));
    }
    // Another Envoy's own baseline and cached-token phases (its token warmed up), for the rows
    // set beside the first Envoy's.
    let own_cached = |other: &Stack, file: &str| -> Result<PathBuf> {
        let tokens = write_tokens(file, vec![other.token("tenant-bench")?])?;
        wrk(&other.recorded_mcp_url, &tokens, 4, 2, &script)?;
        Ok(tokens)
    };
    for (other, file, label) in [
        (&before, "before-cached", "before: mcp-edge, cached token"),
        (
            &traced,
            "traced-cached",
            "tracing on: mcp-edge, cached token",
        ),
    ] {
        let Some(o) = other else { continue };
        let tokens = own_cached(o, file)?;
        setups.push((OWN_BASELINE, o, &o.baseline_mcp_url, tokens.clone()));
        setups.push((label, o, &o.recorded_mcp_url, tokens));
    }
    if let (Some(b), false) = (&before, cached_only) {
        setups.push((
            "before: mcp-edge, new RS256 token",
            b,
            &b.recorded_mcp_url,
            fresh_on(b, "RS256", "before-RS256")?,
        ));
    }
    let mut totals = vec![Totals::default(); setups.len()];
    for _ in 0..rounds {
        for ((_, on, url, tokens), total) in setups.iter().zip(totals.iter_mut()) {
            let envoy = on.pid("envoy").context("no envoy pid")?;
            let before = cpu_micros(envoy)?;
            let run = wrk(url, tokens, 16, PHASE_SECS, &script)?;
            total.cpu_us += cpu_micros(envoy)? - before;
            total.requests += run.requests;
            total.rps.push(run.rps);
            total
                .latency_us
                .push(wrk(url, tokens, 1, LATENCY_SECS, &script)?.latency_us);
        }
    }
    stack.stop();
    if let Ok(q) = &quiet {
        q.stop();
    }
    if let Some(b) = &before {
        b.stop();
    }
    if let Some(t) = &traced {
        t.stop();
    }
    if let Some(r) = &receiver {
        println!("spans received from the traced Envoy: {}", r.spans().len());
    }

    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let base_rps = mean(&totals[0].rps);
    println!(
        "\nwrk -t1, Envoy --concurrency 2, {rounds} interleaved rounds of {PHASE_SECS} s (c16) + {LATENCY_SECS} s (c1)\n"
    );
    println!(
        "| setup | c16 req/s | vs baseline | Envoy CPU µs/req | added CPU µs/req | c1 mean latency µs | c1 added µs |"
    );
    println!("|---|---|---|---|---|---|---|");
    // Each Envoy's filtered phases are compared with that Envoy's own listener without the
    // filter: two processes of the same build differ by several µs a request between runs.
    let is_baseline = |i: usize| i == 0 || setups[i].0 == OWN_BASELINE;
    for ((name, on, _, _), t) in setups.iter().zip(&totals) {
        let base = (0..setups.len())
            .find(|&j| is_baseline(j) && std::ptr::eq(setups[j].1, *on))
            .map_or(&totals[0], |j| &totals[j]);
        let (cpu, lat) = (t.cpu_us / t.requests, mean(&t.latency_us));
        let (base_cpu, base_lat) = (base.cpu_us / base.requests, mean(&base.latency_us));
        println!(
            "| {name} | {:.0} | {:.2} | {cpu:.0} | {:.0} | {lat:.0} | {:.0} |",
            mean(&t.rps),
            mean(&t.rps) / base_rps,
            cpu - base_cpu,
            lat - base_lat,
        );
    }
    Ok(())
}
