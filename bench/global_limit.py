#!/usr/bin/env python3
"""What the global rate limit check adds (issue 12), and why the wasm filter asks the service.

One interleaved run, each setup its own edge Envoy (one worker, pinned to core 0) in front of the
fixed-200 upstream of `cargo xtask bench-setup`:

  off        the edge without a global limit
  wasm-mem   the filter asks the service itself (`global_rate_limit`), service counting in memory
  native-mem Envoy's envoy.filters.http.ratelimit after the filter asks it, service in memory;
             its descriptors are the benchmark tenant's and tier as fixed values (`generic_key`):
             since trust contract v3 the filter sets no per-field headers a route could read, so
             this measures the cost of the native call, not a way to run it
  wasm-redis, native-redis   the same with the service counting in Redis

wrk (`bench/wrk.lua`, core 1) at 1 and 16 connections, ROUNDS rounds of SECS seconds, limits
never reached; prints the median round (by p50) of each setup as a Markdown table, plus the
stats that show each setup really asked. Not part of the test command. Needs wrk, redis-server,
PyYAML, the release `.wasm` and the service:

  cargo build -p mcp-edge-filter --target wasm32-wasip1 --release
  cargo build -p xtask && cargo build --release -p mcp-edge-ratelimit
  SECS=4 ROUNDS=3 python3 bench/global_limit.py

Settings (environment): SECS (5), ROUNDS (2), SERVICE_BIN (target/release/mcp-edge-ratelimit).
Every port is picked free at start; every process started is stopped at the end.
"""
import copy
import json
import os
import socket
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, ".local/bench-global")
SETUP = os.path.join(WORK, "setup")
SERVICE = os.environ.get("SERVICE_BIN", os.path.join(ROOT, "target/release/mcp-edge-ratelimit"))
ENVOY = os.path.join(ROOT, ".venv/bin/envoy")
SECS = int(os.environ.get("SECS", "5"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
BODY = ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects",'
        '"arguments":{"limit":20,"include_archived":false}}}')
UNREACHABLE = 4_000_000_000  # requests per minute: the budget is never the question here

processes = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(name, args):
    log = open(os.path.join(WORK, f"{name}.log"), "w")
    processes.append(subprocess.Popen(args, stdout=log, stderr=log, cwd=ROOT))


def wait_for_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {seconds} s (logs in {WORK})")


def edge_config(base, listen, admin, ask, service_port):
    """The bench edge's configuration with its ports, and `ask` = None, "wasm" or "native"."""
    config = copy.deepcopy(base)
    config["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = listen
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    wasm = hcm["http_filters"][0]["typed_config"]["config"]
    plugin = json.loads(wasm["configuration"]["value"])
    if ask == "wasm":
        plugin["global_rate_limit"] = {"cluster": "mcp_edge_ratelimit", "timeout_ms": 100,
                                       "failure_mode": {"free": "open"}}
    wasm["configuration"]["value"] = json.dumps(plugin)
    if ask == "native":
        hcm["http_filters"].insert(1, {
            "name": "envoy.filters.http.ratelimit",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
                "domain": "mcp-edge", "timeout": "0.1s", "failure_mode_deny": False,
                "rate_limit_service": {"transport_api_version": "V3", "grpc_service": {
                    "envoy_grpc": {"cluster_name": "mcp_edge_ratelimit"}}}}})
        for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
            route["route"]["rate_limits"] = [{"actions": [
                {"generic_key": {"descriptor_key": "tenant", "descriptor_value": "tenant-bench"}},
                {"generic_key": {"descriptor_key": "tier", "descriptor_value": "pro"}}]}]
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "mcp_edge_ratelimit":
            endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            endpoint["address"]["socket_address"]["port_value"] = service_port
    return config


def wrk(port, connections, seconds, token):
    env = dict(os.environ, BENCH_BODY=BODY, BENCH_TOKEN=token)
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
         "-s", os.path.join(ROOT, "bench/wrk.lua"), f"http://127.0.0.1:{port}/mcp"],
        env=env, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("{")))


def stats(admin, needle):
    text = subprocess.run(["curl", "-s", f"http://127.0.0.1:{admin}/stats?filter={needle}"],
                          capture_output=True, text=True).stdout
    return " ".join(line for line in text.splitlines() if not line.endswith(": 0"))


def main():
    os.makedirs(WORK, exist_ok=True)
    # The filter signs for the upstream with this key; any 32 bytes will do here.
    os.environ.setdefault("MCP_EDGE_GATEWAY_SECRET", os.urandom(32).hex())
    subprocess.run([os.path.join(ROOT, "target/debug/xtask"), "bench-setup", "--out", SETUP,
                    "--tokens", "10", "--upstream-port", str(free_port()),
                    "--upstream-admin-port", str(free_port())],
                   cwd=ROOT, check=True, capture_output=True)
    base = yaml.safe_load(open(os.path.join(SETUP, "envoy-edge.yaml")))
    bench_env = dict(line.split("=", 1) for line in open(os.path.join(SETUP, "bench.env"))
                     .read().splitlines() if "=" in line)
    limits = os.path.join(WORK, "limits.yaml")
    with open(limits, "w") as f:
        f.write("domain: mcp-edge\ntiers:\n" + "".join(
            f"  {tier}:\n    requests_per_minute: {UNREACHABLE}\n"
            for tier in ["free", "pro", "enterprise"]))

    upstream_path = os.path.join(SETUP, "envoy-upstream.yaml")
    upstream = yaml.safe_load(open(upstream_path))
    upstream_port = upstream["static_resources"]["listeners"][0]["address"]["socket_address"][
        "port_value"]
    spawn("upstream", ["taskset", "-c", "1", ENVOY, "-c", upstream_path, "--concurrency", "1",
                       "--disable-hot-restart", "-l", "warn"])
    redis_port, memory_port, redis_service_port = free_port(), free_port(), free_port()
    spawn("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no"])
    wait_for_port(redis_port)
    spawn("service-memory", ["taskset", "-c", "1", SERVICE, "--listen",
                             f"127.0.0.1:{memory_port}", "--limits", limits, "--memory"])
    spawn("service-redis", ["taskset", "-c", "1", SERVICE, "--listen",
                            f"127.0.0.1:{redis_service_port}", "--limits", limits,
                            "--redis-url", f"redis://127.0.0.1:{redis_port}/0",
                            "--redis-timeout-ms", "100"])
    setups = {}  # name -> (listen port, admin port)
    for name, ask, service in [("off", None, memory_port), ("wasm-mem", "wasm", memory_port),
                               ("native-mem", "native", memory_port),
                               ("wasm-redis", "wasm", redis_service_port),
                               ("native-redis", "native", redis_service_port)]:
        listen, admin = free_port(), free_port()
        path = os.path.join(WORK, f"{name}.yaml")
        yaml.safe_dump(edge_config(base, listen, admin, ask, service), open(path, "w"))
        spawn(name, ["taskset", "-c", "0", ENVOY, "-c", path, "--concurrency", "1",
                     "--disable-hot-restart", "-l", "warn"])
        setups[name] = (listen, admin)
    for port in [upstream_port, memory_port, redis_service_port] + [p for p, _ in setups.values()]:
        wait_for_port(port)
    token = bench_env["BENCH_CACHED_TOKEN"]
    for listen, _ in setups.values():  # warm every VM and connection
        wrk(listen, 4, 1, token)

    results = {}
    for _ in range(ROUNDS):
        for connections in [1, 16]:
            for name, (listen, _) in setups.items():
                run = wrk(listen, connections, SECS, token)
                results.setdefault((name, connections), []).append(run)
                print(name, connections, run["p50_us"], run["p99_us"], run["non_2xx"],
                      file=sys.stderr)
    for name, (_, admin) in setups.items():
        needle = "ratelimit.ok" if name.startswith("native") else "global_ratelimit"
        print(f"{name}: {stats(admin, needle) or '(no global check counted)'}", file=sys.stderr)

    print(f"\n{ROUNDS} rounds of {SECS} s, median round by p50\n")
    print("| setup | connections | p50 µs | p99 µs | req/s | non-2xx |")
    print("|---|---|---|---|---|---|")
    for (name, connections), runs in sorted(results.items(), key=lambda k: (k[0][1], k[0][0])):
        run = sorted(runs, key=lambda r: r["p50_us"])[len(runs) // 2]
        rps = round(run["requests"] / (run["duration_us"] / 1e6))
        print(f"| {name} | {connections} | {run['p50_us']} | {run['p99_us']} | {rps} | "
              f"{run['non_2xx']} |")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait()
