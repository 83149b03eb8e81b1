#!/usr/bin/env bash
# The side-by-side benchmark (issue 11): what mcp-edge costs at the edge next to Envoy alone, a wasm
# filter that only buffers the body, Envoy's own filters doing a subset of the job
# (bench/native-chain.yaml), and the seed design (bench/node-seed). Not part of the test command.
#
#   scripts/bench.sh                              # 10 s per run, two rounds: about 15 minutes once built
#   BENCH_SECONDS=2 BENCH_ROUNDS=1 scripts/bench.sh   # a smoke run: about three minutes once built
#
# Every process is pinned: the edge (Envoy --concurrency 1, or the Node seed server) on core
# BENCH_EDGE_CORE (0); the upstream (an Envoy answering a fixed 200), the real backend and wrk -t1 on
# BENCH_LOAD_CORE (1). Each measurement starts a fresh edge process (empty token caches), warms it up
# with one token for BENCH_WARMUP_SECONDS, then runs wrk for BENCH_SECONDS at 16 and at 1
# connection; the setups take turns, round after round (BENCH_ROUNDS). The edge's CPU time per
# request comes from /proc/<pid>/stat (utime + stime) around the measured run.
# Writes docs/benchmarks.md and docs/benchmarks.png (bench/report.py); raw results stay in
# .local/bench/results.jsonl. Fails (after writing the page, which marks them) when requests failed
# or a token file ran out. Stops everything it started, also when interrupted.
#
# Other settings: BENCH_SETUPS (space-separated subset of the setup ids below), BENCH_TOKEN_RATE
# (new tokens per second of a run the token files cover, default 6000), BENCH_BACKEND_PROFILE
# (release, the default, or debug: the backend binary of the end-to-end row), BENCH_BEFORE_WASM (the
# path of an earlier build of the filter: adds the setups edge-before and edge-before-rs256, the
# same configuration with that .wasm, for a before/after table from one run).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
WARMUP_SECONDS="${BENCH_WARMUP_SECONDS:-2}"
ROUNDS="${BENCH_ROUNDS:-2}"
TOKEN_RATE="${BENCH_TOKEN_RATE:-6000}"
BACKEND_PROFILE="${BENCH_BACKEND_PROFILE:-release}"
EDGE_CORE="${BENCH_EDGE_CORE:-0}"
LOAD_CORE="${BENCH_LOAD_CORE:-1}"
ALL_SETUPS="passthrough noop native edge native-new edge-rs256 edge-es256 edge-eddsa edge-backend node-seed"
BEFORE_WASM="${BENCH_BEFORE_WASM:-}"
if [ -n "$BEFORE_WASM" ]; then
  ALL_SETUPS="$ALL_SETUPS edge-before edge-before-rs256"
fi
SETUPS="${BENCH_SETUPS:-$ALL_SETUPS}"
CONNECTIONS="16 1"
OUT=.local/bench
LOGS="$OUT/logs"
RESULTS="$OUT/results.jsonl"
# The benchmark's tools/call (about 120 bytes).
BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects","arguments":{"limit":20,"include_archived":false}}}'

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

# --- what the benchmark needs --------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "wrk is missing: install Debian's wrk (sudo apt-get install wrk)"
  log "installing wrk from the distribution"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
command -v taskset >/dev/null 2>&1 || die "taskset (util-linux) is missing"
[ "$(nproc)" -ge 2 ] || die "the benchmark pins the edge and the load to two different cores"
scripts/install-deps.sh
if ! [ bench/node-seed/node_modules/.package-lock.json -nt bench/node-seed/package-lock.json ]; then
  (cd bench/node-seed && npm ci --no-audit --no-fund --silent)
fi

log "building the filters (wasm32-wasip1, release), the backend ($BACKEND_PROFILE) and xtask"
cargo build --locked --release --target wasm32-wasip1 -p mcp-edge-filter -p mcp-edge-bench-noop-filter
if [ "$BACKEND_PROFILE" = release ]; then
  cargo build --locked --release -p mcp-edge-backend
else
  cargo build --locked -p mcp-edge-backend
fi
cargo build --locked -p xtask
BACKEND_BIN="target/$BACKEND_PROFILE/mcp-edge-backend"

# Five free loopback ports: edge, edge admin, upstream, upstream admin, backend (and Node reuses edge).
read -r EDGE_PORT EDGE_ADMIN UPSTREAM_PORT UPSTREAM_ADMIN BACKEND_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')

TOKENS=$((TOKEN_RATE * SECONDS_PER_RUN))
target/debug/xtask bench-setup --out "$OUT" --tokens "$TOKENS" \
  --edge-port "$EDGE_PORT" --edge-admin-port "$EDGE_ADMIN" \
  --upstream-port "$UPSTREAM_PORT" --upstream-admin-port "$UPSTREAM_ADMIN" --backend-port "$BACKEND_PORT"
# shellcheck disable=SC1091
. "$OUT/bench.env"
mkdir -p "$LOGS"
if [ -n "$BEFORE_WASM" ]; then
  # The same edge configuration with the earlier filter: only the .wasm path differs.
  [ -f "$BEFORE_WASM" ] || die "BENCH_BEFORE_WASM: no file at $BEFORE_WASM"
  filter_wasm="$(realpath -s target/wasm32-wasip1/release/mcp_edge_filter.wasm)"
  grep -q "$filter_wasm" "$OUT/envoy-edge.yaml" || die "envoy-edge.yaml does not name $filter_wasm"
  sed "s|$filter_wasm|$(realpath "$BEFORE_WASM")|" "$OUT/envoy-edge.yaml" >"$OUT/envoy-edge-before.yaml"
fi
: >"$RESULTS"
MCP_EDGE_GATEWAY_SECRET="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
export MCP_EDGE_GATEWAY_SECRET

# --- processes: started pinned, their pids kept, all stopped on exit -----------------------------
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CORE COMMAND...: runs COMMAND on CORE, output in $LOGS/NAME.log; the pid in STARTED.
start() {
  local name="$1" core="$2"
  shift 2
  taskset -c "$core" "$@" >"$LOGS/$name.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}

stop() {
  local pid="$1" kept=()
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do
    [ "$p" = "$pid" ] || kept+=("$p")
  done
  PIDS=("${kept[@]}")
}

envoy_cmd() {
  echo .venv/bin/envoy -c "$OUT/envoy-$1.yaml" --concurrency 1 --disable-hot-restart -l warning
}

# wait_for URL PID NAME: until URL answers 2xx (30 s at most, and only while PID lives).
wait_for() {
  for _ in $(seq 300); do
    kill -0 "$2" 2>/dev/null || die "$3 exited; see $LOGS/$3.log"
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  die "$3 did not come up; see $LOGS/$3.log"
}

# utime + stime of a process, in clock ticks.
cpu_ticks() {
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# check SETUP [TOKEN_FILE]: a call with the cached token, and one with the file's first token,
# must be answered 200.
check() {
  local status token
  for token in "$BENCH_CACHED_TOKEN" ${2:+"$(head -n1 "$2")"}; do
    status="$(curl -sS -o "$LOGS/check.out" -w '%{http_code}' -X POST "http://127.0.0.1:$EDGE_PORT/mcp" \
      -H "authorization: Bearer $token" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-06-18' -d "$BODY")"
    [ "$status" = 200 ] || die "$1: the check call was answered $status: $(head -c 400 "$LOGS/check.out")"
  done
}

# wrk_run CONNECTIONS SECONDS [TOKEN_FILE]: prints wrk.lua's JSON line.
wrk_run() {
  BENCH_BODY="$BODY" BENCH_TOKEN="$BENCH_CACHED_TOKEN" BENCH_TOKEN_FILE="${3:-}" \
    taskset -c "$LOAD_CORE" wrk -t1 -c"$1" -d"$2"s --timeout 5s -s bench/wrk.lua \
    "http://127.0.0.1:$EDGE_PORT/mcp" | grep '^{'
}

# --- the setups ----------------------------------------------------------------------------------
# edge_of SETUP: the edge process's config name (an Envoy) or "node".
edge_of() {
  case "$1" in
    passthrough | noop) echo "$1" ;;
    native | native-new) echo native ;;
    edge | edge-rs256 | edge-es256 | edge-eddsa) echo edge ;;
    edge-before | edge-before-rs256) echo edge-before ;;
    edge-backend) echo edge-backend ;;
    node-seed) echo node ;;
    *) die "unknown setup $1 (known: $ALL_SETUPS)" ;;
  esac
}

# tokens_of SETUP: the token file of a new-token-per-request setup (empty: the cached token).
tokens_of() {
  case "$1" in
    native-new | edge-rs256 | edge-before-rs256) echo "$OUT/tokens-RS256.txt" ;;
    edge-es256) echo "$OUT/tokens-ES256.txt" ;;
    edge-eddsa) echo "$OUT/tokens-EdDSA.txt" ;;
    *) echo "" ;;
  esac
}

for setup in $SETUPS; do edge_of "$setup" >/dev/null; done

log "upstream (fixed 200) and backend on core $LOAD_CORE"
# shellcheck disable=SC2046
start upstream "$LOAD_CORE" $(envoy_cmd upstream)
UPSTREAM_PID=$STARTED
wait_for "http://127.0.0.1:$UPSTREAM_ADMIN/ready" "$UPSTREAM_PID" upstream
BACKEND_PID=""
if [[ " $SETUPS " == *" edge-backend "* ]]; then
  start backend "$LOAD_CORE" "$BACKEND_BIN" --listen "127.0.0.1:$BACKEND_PORT" \
    --quota-free unlimited --quota-pro unlimited --quota-enterprise unlimited
  BACKEND_PID=$STARTED
  wait_for "http://127.0.0.1:$BACKEND_PORT/healthz" "$BACKEND_PID" backend
fi

# measure SETUP ROUND CONNECTIONS: one fresh edge process, warm-up, the measured run; one result line.
measure() {
  local setup="$1" round="$2" conns="$3" edge pid tokens line before after backend_before=0 backend_after=0
  edge="$(edge_of "$setup")"
  tokens="$(tokens_of "$setup")"
  if [ "$edge" = node ]; then
    start "edge-$setup" "$EDGE_CORE" env BENCH_NODE_PORT="$EDGE_PORT" BENCH_JWKS_FILE="$OUT/jwks.json" \
      BENCH_ISSUER="$BENCH_ISSUER" BENCH_AUDIENCE="$BENCH_AUDIENCE" NODE_ENV=production \
      .venv/bin/node bench/node-seed/server.mjs
    pid=$STARTED
    for _ in $(seq 300); do
      kill -0 "$pid" 2>/dev/null || die "the node seed server exited; see $LOGS/edge-$setup.log"
      grep -q listening "$LOGS/edge-$setup.log" && break
      sleep 0.1
    done
  else
    # shellcheck disable=SC2046
    start "edge-$setup" "$EDGE_CORE" $(envoy_cmd "$edge")
    pid=$STARTED
    wait_for "http://127.0.0.1:$EDGE_ADMIN/ready" "$pid" "edge-$setup"
  fi
  check "$setup" "$tokens"
  wrk_run 16 "$WARMUP_SECONDS" >/dev/null
  [ -z "$BACKEND_PID" ] || backend_before="$(cpu_ticks "$BACKEND_PID")"
  before="$(cpu_ticks "$pid")"
  line="$(wrk_run "$conns" "$SECONDS_PER_RUN" "$tokens")"
  after="$(cpu_ticks "$pid")"
  [ -z "$BACKEND_PID" ] || backend_after="$(cpu_ticks "$BACKEND_PID")"
  stop "$pid"
  printf '{"setup":"%s","round":%d,"connections":%d,"edge_cpu_ticks":%d,"backend_cpu_ticks":%d,"wrk":%s}\n' \
    "$setup" "$round" "$conns" $((after - before)) $((backend_after - backend_before)) "$line" >>"$RESULTS"
  log "$setup round $round c$conns: $line"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  for setup in $SETUPS; do
    for conns in $CONNECTIONS; do
      measure "$setup" "$round" "$conns"
    done
  done
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

.venv/bin/python bench/report.py --results "$RESULTS" --out docs/benchmarks.md --chart docs/benchmarks.png \
  --seconds "$SECONDS_PER_RUN" --rounds "$ROUNDS" --warmup "$WARMUP_SECONDS" \
  --backend-profile "$BACKEND_PROFILE" --edge-core "$EDGE_CORE" --load-core "$LOAD_CORE" \
  --load-before "$LOAD_BEFORE" --load-after "$LOAD_AFTER" --clock-ticks "$(getconf CLK_TCK)"
log "wrote docs/benchmarks.md and docs/benchmarks.png"
