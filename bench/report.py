"""Writes docs/benchmarks.md and its chart from the results of scripts/bench.sh.

Reads .local/bench/results.jsonl (one line per measurement: setup, round, connections, the edge's
and the backend's CPU ticks, the seeded answer's size, the global limit's verdicts, and wrk.lua's
JSON line) and rss.jsonl (the memory row: each Envoy's VmRSS before and after the distinct tokens),
averages the rounds, computes every ratio within a round (the setups of one round ran minutes apart
at most), and describes the machine and versions it ran on.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import subprocess
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Setup id -> what the table calls it. The order is the table's.
LABELS = {
    "passthrough": "Envoy passthrough",
    "noop": "a wasm filter that only buffers the body",
    "native": "Envoy's native chain: jwt_authn (inline JWKS, token cache) → envoy.filters.http.mcp"
    " → rbac (tool ∈ allowed_tools, scope) → local_ratelimit per tenant",
    "edge": "mcp-edge, cached token",
    "edge-global": "mcp-edge, cached token, asking the global rate limit service (Redis) on every request",
    "native-new": "native chain, new RS256 token per request",
    "edge-rs256": "mcp-edge, new RS256 token per request",
    "edge-es256": "mcp-edge, new ES256 token per request",
    "edge-eddsa": "mcp-edge, new EdDSA token per request",
    "edge-backend": "mcp-edge + the real backend, cached token, list_projects",
    "edge-backend-rs256": "mcp-edge + the real backend, new RS256 token per request, list_projects",
    "edge-backend-write": "mcp-edge + the real backend, cached token, create_task",
    "node-seed": "the seed design (Node + @modelcontextprotocol/sdk + express + jsonwebtoken), list_projects",
    "node-seed-rs256": "the seed design, new RS256 token per request, list_projects",
    "node-seed-write": "the seed design, create_task",
    "edge-before": "mcp-edge before (BENCH_BEFORE_WASM), cached token",
    "edge-before-global": "mcp-edge before (BENCH_BEFORE_WASM), cached token, global rate limit",
    "edge-before-rs256": "mcp-edge before (BENCH_BEFORE_WASM), new RS256 token per request",
    "edge-before-es256": "mcp-edge before (BENCH_BEFORE_WASM), new ES256 token per request",
    "edge-before-eddsa": "mcp-edge before (BENCH_BEFORE_WASM), new EdDSA token per request",
}
SHORT = {
    "passthrough": "passthrough",
    "noop": "wasm noop (buffers body)",
    "native": "native chain, cached",
    "edge": "mcp-edge, cached",
    "edge-global": "mcp-edge, cached, global limit",
    "native-new": "native chain, new RS256",
    "edge-rs256": "mcp-edge, new RS256",
    "edge-es256": "mcp-edge, new ES256",
    "edge-eddsa": "mcp-edge, new EdDSA",
    "edge-backend": "mcp-edge + backend",
    "edge-backend-rs256": "mcp-edge + backend, new RS256",
    "edge-backend-write": "mcp-edge + backend, create_task",
    "node-seed": "Node seed",
    "node-seed-rs256": "Node seed, new RS256",
    "node-seed-write": "Node seed, create_task",
    "edge-before": "mcp-edge before, cached",
    "edge-before-global": "mcp-edge before, global limit",
    "edge-before-rs256": "mcp-edge before, new RS256",
    "edge-before-es256": "mcp-edge before, new ES256",
    "edge-before-eddsa": "mcp-edge before, new EdDSA",
}
# The end-to-end rows: mcp-edge + the backend, each with the seed design's row it is compared with.
END_TO_END = {"edge-backend": "node-seed", "edge-backend-rs256": "node-seed-rs256",
              "edge-backend-write": "node-seed-write"}
# Rows of the first table: the edge alone, in front of the fixed-200 upstream.
EDGE_ROWS = [s for s in LABELS if s not in END_TO_END and s not in END_TO_END.values()]
# Before/after pairs (BENCH_BEFORE_WASM): the setup with the current filter, with the earlier one.
BEFORE = {"edge": "edge-before", "edge-global": "edge-before-global", "edge-rs256": "edge-before-rs256",
          "edge-es256": "edge-before-es256", "edge-eddsa": "edge-before-eddsa"}
# The memory row's target: Envoy's RSS growth over a passthrough-only Envoy, per worker.
RSS_TARGET_MB = 20
RSS_LABELS = {"passthrough": "Envoy passthrough", "edge": "mcp-edge",
              "edge-before": "mcp-edge before (BENCH_BEFORE_WASM)"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", required=True)
    p.add_argument("--rss", help="rss.jsonl of the memory row (absent or empty: no memory section)")
    p.add_argument("--out", required=True)
    p.add_argument("--chart", required=True)
    p.add_argument("--seconds", type=int, required=True)
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--warmup", type=int, required=True)
    p.add_argument("--backend-profile", required=True)
    p.add_argument("--edge-core", required=True)
    p.add_argument("--load-core", required=True)
    p.add_argument("--load-before", required=True)
    p.add_argument("--load-after", required=True)
    p.add_argument("--clock-ticks", type=int, required=True)
    return p.parse_args()


class Run:
    """One measurement."""

    def __init__(self, line, clock_ticks):
        self.setup = line["setup"]
        self.round = line["round"]
        self.connections = line["connections"]
        w = line["wrk"]
        self.requests = w["requests"]
        self.rps = w["requests"] / (w["duration_us"] / 1e6)
        self.mean_us = w["mean_us"]
        self.p50_us = w["p50_us"]
        self.p99_us = w["p99_us"]
        self.errors = sum(w[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx"))
        self.wrapped = w["wrapped"]
        per_request = 1e6 / clock_ticks / max(self.requests, 1)
        self.edge_cpu_us = line["edge_cpu_ticks"] * per_request
        self.backend_cpu_us = line["backend_cpu_ticks"] * per_request
        # Results of older runs lack these.
        self.answer_bytes = line.get("answer_bytes") or None
        self.global_ok = line.get("global_ok", 0)
        self.global_failed = line.get("global_failed", 0)


def load(path, clock_ticks):
    runs = defaultdict(list)  # (setup, connections) -> [Run]
    for text in Path(path).read_text().splitlines():
        if text.strip():
            r = Run(json.loads(text), clock_ticks)
            runs[(r.setup, r.connections)].append(r)
    return runs


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def per_round(runs, setup, base, connections, value):
    """The mean over rounds of value(run of setup, run of base) in the same round."""
    base_by_round = {r.round: r for r in runs.get((base, connections), [])}
    return mean(
        value(r, base_by_round[r.round]) for r in runs.get((setup, connections), []) if r.round in base_by_round
    )


def fmt(value, digits=0, unit=""):
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}".replace(",", " ")
    return f"{text}{unit}"


def fmt_us(value):
    """Microseconds, as µs below 1 ms and as ms above."""
    if value is None:
        return "—"
    sign = "+" if value >= 0 else "−"
    v = abs(value)
    return f"{sign}{v / 1000:.2f} ms" if v >= 1000 else f"{sign}{v:.0f} µs"


def lat(value):
    if value is None:
        return "—"
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} µs"


def problems(runs, setup):
    """(what invalidates the setup's figures, what only qualifies them): both marked ⚠ on the page."""
    fatal, notes = [], []
    all_runs = [r for c in (16, 1) for r in runs.get((setup, c), [])]
    if any(r.errors for r in all_runs):
        fatal.append(f"{sum(r.errors for r in all_runs)} failed requests")
    if any(r.wrapped for r in all_runs):
        fatal.append("token file exhausted: tokens repeated")
    if setup.endswith("global"):
        failed = sum(r.global_failed for r in all_runs)
        asked = failed + sum(r.global_ok for r in all_runs)
        if all_runs and not all(r.global_ok for r in all_runs):
            fatal.append("a run never counted a global limit verdict")
        elif failed:
            # A few checks past the timeout on a loaded machine leave the figures meaningful.
            (fatal if failed > asked / 100 else notes).append(
                f"{failed} of {asked} global limit checks failed open")
    return fatal, notes


def flags(runs, setup):
    fatal, notes = problems(runs, setup)
    return f" ⚠ {', '.join(fatal + notes)}" if fatal or notes else ""


def command_output(*cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


class ChartRow:
    """One row of the chart: the setup, its label, and both panels' figures for it."""

    def __init__(self, setup, label, rps, added_us):
        self.setup = setup
        self.label = label
        self.rps = rps  # requests/s at 16 connections
        self.added_us = added_us  # mean latency added at 1 connection vs passthrough; None for it


def chart_rows(runs, setups):
    """The chart's rows, top to bottom: each label and both of its bars from the same setup."""
    return [
        ChartRow(
            s,
            SHORT[s],
            mean(r.rps for r in runs[(s, 16)]),
            None if s == "passthrough" else per_round(runs, s, "passthrough", 1, lambda r, b: r.mean_us - b.mean_us),
        )
        for s in setups
        if (s, 16) in runs
    ]


def chart(runs, setups, path):
    """Draws the chart into path and returns the figure.

    Both panels share one y axis with fixed limits, so row i is at the same height in both: the
    latency panel once drew passthrough's missing bar as NaN, autoscaling dropped that row, and
    every latency bar stood one row above its label."""
    rows = chart_rows(runs, setups)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.45 * len(rows) + 1.8), sharey=True)
    y = list(range(len(rows)))
    colors = ["#888888" if r.setup in ("passthrough", "noop") else "#4c72b0" if r.setup.startswith("native") else
              "#55a868" if r.setup.startswith("node-seed") else "#dd8452" for r in rows]
    left.barh(y, [r.rps for r in rows], color=colors)
    left.set_yticks(y, [r.label for r in rows])
    left.set_ylim(len(rows) - 0.5, -0.5)  # top to bottom, whatever a panel's bars are
    left.set_xlabel("requests/s at 16 connections (higher is better)")
    left.set_xlim(0, max([r.rps for r in rows] + [1]) * 1.18)
    for i, r in enumerate(rows):
        left.text(r.rps, i, f" {r.rps:,.0f}".replace(",", " "), va="center", fontsize=8)
    shown = [(i, r) for i, r in enumerate(rows) if r.added_us is not None]
    right.barh([i for i, _ in shown], [max(r.added_us, 1) for _, r in shown], color=[colors[i] for i, _ in shown])
    right.tick_params(axis="y", labelleft=False)
    right.set_xscale("log")
    positive = [r.added_us for _, r in shown if r.added_us >= 1]
    low = max(min(positive + [10]) / 3, 1)  # a figure below it (noise: even negative) sits at its edge
    right.set_xlim(low, max(positive + [10]) * 4)
    right.set_xlabel("mean latency added at 1 connection vs passthrough, µs (log; lower is better)")
    for i, r in enumerate(rows):
        text = " baseline" if r.added_us is None else f" {r.added_us:,.0f} µs".replace(",", " ")
        right.text(max(r.added_us or low, low), i, text, va="center", fontsize=8)
    fig.suptitle("mcp-edge side by side (scripts/bench.sh)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def load_rss(path):
    """The memory row's lines by setup (empty without the file)."""
    if not path or not Path(path).exists():
        return {}
    lines = [json.loads(t) for t in Path(path).read_text().splitlines() if t.strip()]
    return {line["setup"]: line for line in lines}


def rss_failures(line):
    w = line["wrk"]
    return sum(w[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx")) + (
        1 if w["wrapped"] or w["requests"] < line["tokens"] else 0)


def write_memory(w, rss, edge_core):
    """The memory row: each Envoy's RSS after the distinct tokens, and mcp-edge's growth over passthrough."""
    base = rss.get("passthrough")
    tokens = next(iter(rss.values()))["tokens"]
    w(f"## Memory after {fmt(tokens)} distinct tokens")
    w("")
    workers = next(iter(rss.values()))["workers"]
    w(f"A fresh Envoy of each setup (`--concurrency {workers}`, on core {edge_core}) answers a warm-up with one")
    w(f"token, then {fmt(tokens)} requests at 16 connections, each with a different EdDSA token (passthrough")
    w("ignores them); then its VmRSS (`/proc/<pid>/status`). Growth: over the passthrough Envoy that answered")
    w(f"as many requests, divided by the {workers} worker(s) (so the main thread's wasm VM is shared out among")
    w(f"them); the target is ≤ {RSS_TARGET_MB} MB per worker. The last column splits off what the tokens")
    w("themselves added (its growth from warm to after, less passthrough's; verified-token caches hold at most")
    w("1024 per worker): the rest is there before the first token, the wasm VMs and the filter's configuration.")
    w("")
    w("| setup | VmRSS warm | VmRSS after the tokens | growth over passthrough, per worker | of which the tokens, per worker |")
    w("|---|---|---|---|---|")
    for setup, line in rss.items():
        mark = " ⚠ failed requests or too few tokens" if rss_failures(line) else ""
        growth = by_tokens = "—"
        if base is not None and setup != "passthrough":
            per_worker_mb = (line["rss_kb"] - base["rss_kb"]) / 1024 / line["workers"]
            verdict = "within" if per_worker_mb <= RSS_TARGET_MB else "over"
            growth = f"{per_worker_mb:+.1f} MB ({verdict} the target)"
            added_kb = (line["rss_kb"] - line["warm_rss_kb"]) - (base["rss_kb"] - base["warm_rss_kb"])
            by_tokens = f"{added_kb / 1024 / line['workers']:+.1f} MB"
        w(f"| {RSS_LABELS.get(setup, setup)}{mark} | {line['warm_rss_kb'] / 1024:.1f} MB | {line['rss_kb'] / 1024:.1f} MB |"
          f" {growth} | {by_tokens} |")
    w("")


def main():
    a = parse_args()
    runs = load(a.results, a.clock_ticks)
    rss = load_rss(a.rss)
    setups = [s for s in LABELS if (s, 16) in runs or (s, 1) in runs]
    base = "passthrough"
    smoke = a.seconds < 10 or a.rounds < 2
    out = []
    w = out.append
    w("# Benchmarks: mcp-edge side by side")
    w("")
    w("Written by `scripts/bench.sh` (`bench/report.py`); do not edit by hand. Run it again on a quiet machine")
    w("to refresh every figure here at once.")
    w("")
    if smoke:
        w(f"**Smoke run** ({a.seconds} s per run, {a.rounds} round(s), on a machine busy with other work): the")
        w("figures show that every setup runs, not what they cost. Run `scripts/bench.sh` with its defaults")
        w("(10 s, two rounds) on a quiet machine for figures to quote.")
        w("")
    w("## How it was measured")
    w("")
    w(f"- Edge: Envoy 1.40 `--concurrency 1` pinned to core {a.edge_core} (or, for the seed design, the Node")
    w(f"  server on that core). Upstream: a second Envoy answering every request with a fixed 200 and a small")
    w(f"  JSON-RPC result, pinned to core {a.load_core} with `wrk -t1` (and the real backend for the end-to-end")
    w("  rows, the global rate limit service and its Redis for the global row).")
    w("- Request: `tools/call` of `list_projects`, 130 bytes, with `Authorization: Bearer`, `Accept`,")
    w("  `Content-Type` and `MCP-Protocol-Version: 2025-06-18`, over HTTP/1.1 keep-alive connections (the")
    w("  end-to-end write rows: `create_task`).")
    w("- Global row: the mcp-edge configuration plus `global_rate_limit` as `scripts/run.sh --scaled` sets it")
    w("  (`xtask/src/scaled_envoy.rs`: shared secret, fail open for paid tiers) but a 100 ms timeout, asking")
    w("  `mcp-edge-ratelimit` (release, counters in Redis, budgets never reached) on every request; the page")
    w("  marks the row if a check failed open all the same.")
    w(f"- Each measurement starts a fresh edge process (empty token caches), warms it up for {a.warmup} s at 16")
    w(f"  connections with one token, then runs wrk for {a.seconds} s at 16 and at 1 connection. Setups take turns,")
    w(f"  {a.rounds} round(s); figures are means over rounds, ratios are taken within a round.")
    w("- Every setup derives from the repository's `envoy.yaml` (the same listener, connection manager settings,")
    w("  access log and overload manager); only the HTTP filters differ (`cargo xtask bench-setup`,")
    w("  `xtask/src/bench_envoy.rs`). mcp-edge runs envoy.yaml's configuration with its JWKS inline instead of")
    w("  fetched and rate limits that never throttle (every check still runs, the bucket is still taken).")
    w("- New token per request: wrk's script (`bench/wrk.lua`) sends a different pre-signed token on every")
    w("  request (2048-bit RSA, P-256, Ed25519), so every request is a verification.")
    w("- Edge CPU per request: the edge process's utime + stime (`/proc/<pid>/stat`) over the measured run at")
    w("  16 connections, divided by the requests answered. Added latency: the setup's mean (and p50) at 1")
    w("  connection minus passthrough's in the same round.")
    w("- End to end: a fresh backend (memory store) per measurement too; before the warm-up both it (through")
    w("  the edge) and the Node seed server are seeded through their own tools with the same 20 projects")
    w("  (`bench/seed.py`), so `list_projects` answers about 7.9 KB on both sides; the write rows send")
    w("  `create_task`, each request on the next project. Backend CPU per call: the backend's utime + stime over")
    w("  the measured run, divided by the requests answered.")
    w("- Memory: after the rounds, a fresh passthrough Envoy and a fresh mcp-edge Envoy (same configurations,")
    w("  `BENCH_RSS_WORKERS` workers) each answer `BENCH_RSS_TOKENS` requests, every one with a different")
    w("  EdDSA token; their VmRSS (`/proc/<pid>/status`) is compared per worker.")
    w("- `BENCH_BEFORE_WASM`: every mcp-edge row of the first table and the memory row also run with an")
    w("  earlier filter build (only the `.wasm` path differs), for the before → now table.")
    w("- Where the cached request's edge CPU goes, apart (not part of this run):")
    w("  `cargo bench -p mcp-edge-tests --bench host_calls` loads a probe filter (`bench/host-calls-filter`)")
    w("  that buffers the body and makes only the cached path's host calls, in groups switched by its")
    w("  configuration (request header map, clock, 9 header writes — 2 since contract v3 —, 5 access-log properties, 2 counters,")
    w("  the shared-data bucket, 2 response headers), into several Envoys of one stack: every group, none,")
    w("  and all but one; a group's cost is what leaving it out saves in Envoy's CPU per request.")
    w("  `scripts/bench-core-wasm.sh` times the filter's pure core under V8 beside natively (the")
    w("  computing without host calls); `EDGE_CPU_BEFORE_WASM=<earlier .wasm> cargo bench -p")
    w("  mcp-edge-tests --bench edge_cpu` compares two filter builds in one run.")
    w("")
    w("![throughput and added latency](benchmarks.png)")
    w("")
    w("## The edge alone (fixed-200 upstream)")
    w("")
    w("| setup | c16 req/s | vs passthrough | edge CPU µs/req | c1 mean added | c1 p50 added |")
    w("|---|---|---|---|---|---|")
    for s in [s for s in EDGE_ROWS if s in setups]:
        rps = mean(r.rps for r in runs.get((s, 16), []))
        ratio = per_round(runs, s, base, 16, lambda r, b: r.rps / b.rps)
        cpu = mean(r.edge_cpu_us for r in runs.get((s, 16), []))
        if s == base:
            added_mean = added_p50 = "—"
        else:
            added_mean = fmt_us(per_round(runs, s, base, 1, lambda r, b: r.mean_us - b.mean_us))
            added_p50 = fmt_us(per_round(runs, s, base, 1, lambda r, b: r.p50_us - b.p50_us))
        w(f"| {LABELS[s]}{flags(runs, s)} | {fmt(rps)} | {fmt(ratio, 2)} | {fmt(cpu)} | {added_mean} | {added_p50} |")
    w("")
    w("## Latency")
    w("")
    w("| setup | c1 p50 | c1 p99 | c16 p50 | c16 p99 |")
    w("|---|---|---|---|---|")
    for s in setups:
        c1, c16 = runs.get((s, 1), []), runs.get((s, 16), [])
        w(f"| {SHORT[s]} | {lat(mean(r.p50_us for r in c1))} | {lat(mean(r.p99_us for r in c1))} | "
          f"{lat(mean(r.p50_us for r in c16))} | {lat(mean(r.p99_us for r in c16))} |")
    w("")
    e2e = [s for pair in END_TO_END.items() for s in pair if s in setups]
    if e2e:
        w("## End to end: mcp-edge + backend against the seed design, on the same seeded data")
        w("")
        w("The real backend (`mcp-edge-backend`, " + a.backend_profile + " build, memory store, quotas unlimited,")
        w(f"pinned to core {a.load_core} beside wrk) behind mcp-edge, against the seed design: one Node process")
        w("(`bench/node-seed/server.mjs`: express, jsonwebtoken verifying every request, the MCP SDK stateless)")
        w(f"checking the token and `allowed_tools` itself and serving the same tools, pinned to core {a.edge_core}.")
        w("Before every measured run both sides start empty and are seeded through their own tools with the same")
        w("20 projects (`bench/seed.py`), so `list_projects` answers the bytes in the table; the write rows call")
        w("`create_task`, each request on the next of the 20 projects. mcp-edge + backend use a part of core")
        w(f"{a.load_core} too; the seed design does not. Ratios: to the seed design's row with the same tool and")
        w("token kind, in the same round.")
        w("")
        backend = mean(r.backend_cpu_us for r in runs.get(("edge-backend", 16), []))
        if backend is not None:
            w(f"**Backend CPU per `list_projects` call** (cached token, 16 connections): {fmt(backend)} µs.")
            w("")
        w("| setup | list_projects answer, bytes | c16 req/s | ratio to the seed design | c1 p50 | c1 p99 | edge CPU µs/req | backend CPU µs/call |")
        w("|---|---|---|---|---|---|---|---|")
        for s in e2e:
            c1, c16 = runs.get((s, 1), []), runs.get((s, 16), [])
            seed = END_TO_END.get(s, s)
            ratio = per_round(runs, s, seed, 16, lambda r, b: r.rps / b.rps)
            backend_cpu = mean(r.backend_cpu_us for r in c16) if s in END_TO_END else None
            answer = None if s.endswith("-write") else mean(r.answer_bytes for r in c1 + c16)
            w(f"| {LABELS[s]}{flags(runs, s)} | {fmt(answer)} | {fmt(mean(r.rps for r in c16))} | {fmt(ratio, 2)} | "
              f"{lat(mean(r.p50_us for r in c1))} | {lat(mean(r.p99_us for r in c1))} | "
              f"{fmt(mean(r.edge_cpu_us for r in c16))} | {fmt(backend_cpu)} |")
        w("")
    if rss:
        write_memory(w, rss, a.edge_core)
    pairs = [(now, before) for now, before in BEFORE.items() if now in setups and before in setups]
    if pairs:
        w("## Before and after (BENCH_BEFORE_WASM)")
        w("")
        w("The same configuration with the earlier filter build, in the same run.")
        w("")
        w("| setup | edge CPU µs/req, before → now | c16 vs passthrough, before → now | c1 p50 added, before → now |")
        w("|---|---|---|---|")
        for now, before in pairs:
            cpu = [mean(r.edge_cpu_us for r in runs.get((x, 16), [])) for x in (before, now)]
            ratio = [per_round(runs, x, base, 16, lambda r, b: r.rps / b.rps) for x in (before, now)]
            p50 = [per_round(runs, x, base, 1, lambda r, b: r.p50_us - b.p50_us) for x in (before, now)]
            w(f"| {SHORT[now]} | {fmt(cpu[0])} → {fmt(cpu[1])} | {fmt(ratio[0], 2)} → {fmt(ratio[1], 2)} | "
              f"{fmt_us(p50[0])} → {fmt_us(p50[1])} |")
        w("")
    w("## Every round")
    w("")
    w("requests/s at 16 connections, per round (the spread between rounds is the noise of the run).")
    w("")
    w("| setup | " + " | ".join(f"round {i}" for i in range(1, a.rounds + 1)) + " |")
    w("|---|" + "---|" * a.rounds)
    for s in setups:
        by_round = {r.round: r.rps for r in runs.get((s, 16), [])}
        w(f"| {SHORT[s]} | " + " | ".join(fmt(by_round.get(i)) for i in range(1, a.rounds + 1)) + " |")
    w("")
    w("## What the native chain does not do")
    w("")
    w("`bench/native-chain.yaml` is the configuration a user would write with Envoy 1.40's own filters. RBAC")
    w("cannot compare the tool named in the body with the token's `allowed_tools` list, so it spells out one")
    w("policy per tool. It has no JSON-RPC error bodies, no RFC 9728 metadata or `insufficient_scope`")
    w("challenge, no signed identity headers for the backend, no strict JSON, protocol-version or batch rules,")
    w("no tools/list filtering, no limit on bad tokens per address and no RateLimit headers: it does a subset")
    w("of mcp-edge's job, and its figures are a bound from below on what that job costs with native filters.")
    w("")
    w("## Machine and versions")
    w("")
    w(f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores")
    w(f"- Kernel: {platform.system()} {platform.release()}")
    w(f"- Envoy: {command_output('.venv/bin/envoy', '--version').split('version: ')[-1]}")
    w(f"- Node: {command_output('.venv/bin/node', '--version')}; wrk: {command_output('wrk', '-v')}")
    w(f"- Rust: {command_output('rustc', '-V')}")
    w(f"- Commit: {command_output('git', 'describe', '--always', '--dirty')}; "
      f"run: {command_output('date', '-u', '+%Y-%m-%d %H:%M UTC')}")
    w(f"- Load average (1, 5, 15 min) before: {a.load_before}; after: {a.load_after}")
    w("")
    Path(a.out).write_text("\n".join(out))
    chart(runs, setups, a.chart)
    marked = [s for s in setups if problems(runs, s)[0]] + [f"memory: {s}" for s, line in rss.items() if rss_failures(line)]
    if marked:
        sys.exit("written, but these setups are marked ⚠ (failed requests, repeated tokens, too few tokens or "
                 f"global checks failed open): {', '.join(marked)}")


if __name__ == "__main__":
    main()
