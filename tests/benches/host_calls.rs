//! What each group of the cached-token request's host calls costs in Envoy (issue 11): the probe
//! filter `bench/host-calls-filter` makes only those calls, by group, with no computing of its own.
//! Envoys of one stack load it with every group on, with none (the body-buffering floor), and with
//! all but one group; a group's cost is Envoy's CPU per request with all groups minus with all but
//! that group. Phases are interleaved for `ROUNDS` rounds, each wrk `-t1 -c16` for `PHASE_SECS`.
//!
//! Run: `cargo build -p mcp-edge-bench-host-calls-filter --target wasm32-wasip1 --release` and
//! `cargo bench -p mcp-edge-tests --bench host_calls` (needs `wrk` on PATH). Prints a table.

use anyhow::{Context, Result};
use mcp_edge_tests::stack::{Stack, StackOptions};
use mcp_edge_tests::wrk::{SCRIPT, cpu_micros, wrk};
use serde_json::json;

const ROUNDS: usize = 3;
const PHASE_SECS: u64 = 5;

/// The probe's groups (see `bench/host-calls-filter/src/lib.rs`).
const GROUPS: [&str; 7] = [
    "request_headers",
    "clock",
    "header_writes",
    "access_log",
    "counters",
    "shared_data",
    "response_headers",
];

fn main() -> Result<()> {
    let probe = mcp_edge_tests::target_dir()
        .join("wasm32-wasip1/release/mcp_edge_bench_host_calls_filter.wasm");
    anyhow::ensure!(
        probe.exists(),
        "{} is missing: cargo build -p mcp-edge-bench-host-calls-filter --target wasm32-wasip1 --release",
        probe.display()
    );
    let stack = Stack::start_with(&StackOptions {
        authz: false,
        filter_wasm: Some(probe),
        plugin_overrides: json!({"probe_groups": GROUPS}),
        ..StackOptions::default()
    })?;
    let dir = stack.dir().to_path_buf();
    let script = dir.join("bench.lua");
    std::fs::write(&script, SCRIPT)?;
    // The probe reads no token; the request carries one of mcp-edge's length.
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, stack.token("tenant-bench")? + "\n")?;

    // (name, Envoy process name, URL)
    let mut setups = vec![
        (
            "Envoy without a filter".to_string(),
            "envoy",
            stack.baseline_mcp_url.clone(),
        ),
        (
            "probe, every group".to_string(),
            "envoy",
            stack.recorded_mcp_url.clone(),
        ),
    ];
    let none = stack.start_envoy("envoy-none", &json!({"probe_groups": []}))?;
    setups.push((
        "probe, no group (floor)".into(),
        "envoy-none",
        none.recorded_url.clone(),
    ));
    let names: Vec<String> = GROUPS.iter().map(|g| format!("envoy-no-{g}")).collect();
    let mut extra = vec![none];
    for (group, name) in GROUPS.iter().zip(&names) {
        let others: Vec<&str> = GROUPS.iter().copied().filter(|g| g != group).collect();
        let envoy = stack.start_envoy(name, &json!({"probe_groups": others}))?;
        setups.push((
            format!("probe, all but {group}"),
            name,
            envoy.recorded_url.clone(),
        ));
        extra.push(envoy);
    }
    for (_, _, url) in &setups {
        wrk(url, &tokens, 4, 1, &script)?;
    }

    let mut cpu = vec![0.0; setups.len()];
    let mut requests = vec![0.0; setups.len()];
    for _ in 0..ROUNDS {
        for (i, (_, process, url)) in setups.iter().enumerate() {
            let pid = stack.pid(process).context("no envoy pid")?;
            let before = cpu_micros(pid)?;
            let run = wrk(url, &tokens, 16, PHASE_SECS, &script)?;
            cpu[i] += cpu_micros(pid)? - before;
            requests[i] += run.requests;
        }
    }
    stack.stop();

    let per_request: Vec<f64> = cpu.iter().zip(&requests).map(|(c, r)| c / r).collect();
    let all = per_request[1];
    println!(
        "\nwrk -t1 -c16, Envoy --concurrency 2, {ROUNDS} interleaved rounds of {PHASE_SECS} s\n"
    );
    println!("| setup | Envoy CPU µs/req | vs every group |");
    println!("|---|---|---|");
    for ((name, _, _), cpu) in setups.iter().zip(&per_request) {
        println!("| {name} | {cpu:.1} | {:+.1} |", cpu - all);
    }
    println!(
        "\nhost calls in all: {:.1} µs/req over the floor; a group costs what leaving it out saves",
        all - per_request[2]
    );
    Ok(())
}
