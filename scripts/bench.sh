#!/usr/bin/env bash
# The side-by-side benchmark (issues 11 and 20): what mcp-edge costs at the edge next to Envoy alone,
# a wasm filter that only buffers the body, Envoy's own filters doing a subset of the job
# (bench/native-chain.yaml), mcp-edge asking the global rate limit service, the real backend behind
# it against the seed design (bench/node-seed) on the same seeded data, and what 100 000 distinct
# tokens cost in Envoy's memory. Not part of the test command.
#
#   scripts/bench.sh                              # 10 s per run, two rounds: about 25 minutes once built
#   BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_RSS_TOKENS=5000 scripts/bench.sh   # a smoke run
#
# Every process is pinned: the edge (Envoy --concurrency 1, or the Node seed server) on core
# BENCH_EDGE_CORE (0); the upstream (an Envoy answering a fixed 200), the real backend, the rate limit
# service and its Redis, and wrk -t1 on BENCH_LOAD_CORE (1). Each measurement starts a fresh edge
# process (empty token caches) and, for the end-to-end rows, a fresh backend, both sides seeded with
# the same 20 projects through their own tools (bench/seed.py); it warms up with one token for
# BENCH_WARMUP_SECONDS, then runs wrk for BENCH_SECONDS at 16 and at 1 connection; the setups take
# turns, round after round (BENCH_ROUNDS). The edge's and the backend's CPU time per request come
# from /proc/<pid>/stat (utime + stime) around the measured run. After the rounds, the memory row:
# a fresh passthrough Envoy and a fresh mcp-edge Envoy (BENCH_RSS_WORKERS workers, default 2) each
# get BENCH_RSS_TOKENS requests, each with a distinct EdDSA token, and their VmRSS
# (/proc/<pid>/status) is compared, per worker.
# Writes docs/benchmarks.md and docs/benchmarks.png (bench/report.py); raw results stay in
# .local/bench/results.jsonl and rss.jsonl. Fails (after writing the page, which marks them) when
# requests failed, a token file ran out or more than 1% of the global limit checks failed open (fewer
# are only marked). Stops everything it started, also when interrupted.
#
# Other settings: BENCH_SETUPS (space-separated subset of the setup ids below), BENCH_TOKEN_RATE
# (new tokens per second of a run the token files cover, default 6000), BENCH_RSS_TOKENS (distinct
# tokens of the memory row, default 100000; 0 leaves the row out), BENCH_BACKEND_PROFILE (release,
# the default, or debug: the backend binary of the end-to-end rows), BENCH_BEFORE_WASM (the path of
# an earlier build of the filter: adds edge-before, edge-before-global, edge-before-rs256,
# edge-before-es256 and edge-before-eddsa, the same configurations with that .wasm, and that build's
# memory row, for a before/after table from one run; the end-to-end rows keep the current filter,
# which the backend's trust contract must match).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
WARMUP_SECONDS="${BENCH_WARMUP_SECONDS:-2}"
ROUNDS="${BENCH_ROUNDS:-2}"
TOKEN_RATE="${BENCH_TOKEN_RATE:-6000}"
RSS_TOKENS="${BENCH_RSS_TOKENS:-100000}"
RSS_WORKERS="${BENCH_RSS_WORKERS:-2}"
# Envoy's worker threads (--concurrency): 1 for every measured run, RSS_WORKERS for the memory row.
ENVOY_WORKERS=1
BACKEND_PROFILE="${BENCH_BACKEND_PROFILE:-release}"
EDGE_CORE="${BENCH_EDGE_CORE:-0}"
LOAD_CORE="${BENCH_LOAD_CORE:-1}"
ALL_SETUPS="passthrough noop native edge edge-global native-new edge-rs256 edge-es256 edge-eddsa
  edge-backend edge-backend-rs256 edge-backend-write node-seed node-seed-rs256 node-seed-write"
BEFORE_WASM="${BENCH_BEFORE_WASM:-}"
if [ -n "$BEFORE_WASM" ]; then
  ALL_SETUPS="$ALL_SETUPS edge-before edge-before-global edge-before-rs256 edge-before-es256 edge-before-eddsa"
fi
ALL_SETUPS="$(echo $ALL_SETUPS)"
SETUPS="${BENCH_SETUPS:-$ALL_SETUPS}"
CONNECTIONS="16 1"
OUT=.local/bench
LOGS="$OUT/logs"
RESULTS="$OUT/results.jsonl"
RSS_RESULTS="$OUT/rss.jsonl"
# The benchmark's tools/call (about 120 bytes); the write rows send bench/seed.py's create_task bodies.
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

log "building the filters (wasm32-wasip1, release), the backend ($BACKEND_PROFILE), the rate limit service (release) and xtask"
cargo build --locked --release --target wasm32-wasip1 -p mcp-edge-filter -p mcp-edge-bench-noop-filter
cargo build --locked --release -p mcp-edge-ratelimit
if [ "$BACKEND_PROFILE" = release ]; then
  cargo build --locked --release -p mcp-edge-backend
else
  cargo build --locked -p mcp-edge-backend
fi
cargo build --locked -p xtask
BACKEND_BIN="target/$BACKEND_PROFILE/mcp-edge-backend"
RATELIMIT_BIN=target/release/mcp-edge-ratelimit
command -v redis-server >/dev/null 2>&1 || die "redis-server is missing (scripts/install-deps.sh installs it as root)"

# Seven free loopback ports: edge, edge admin, upstream, upstream admin, backend, rate limit service,
# its Redis (the Node seed server reuses the edge's).
read -r EDGE_PORT EDGE_ADMIN UPSTREAM_PORT UPSTREAM_ADMIN BACKEND_PORT RATELIMIT_PORT REDIS_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')

TOKENS=$((TOKEN_RATE * SECONDS_PER_RUN))
# The memory row's token file has spares: wrk may send a few requests past its stop.
RSS_FILE_TOKENS=$((RSS_TOKENS > 0 ? RSS_TOKENS + 64 : 0))
target/debug/xtask bench-setup --out "$OUT" --tokens "$TOKENS" --rss-tokens "$RSS_FILE_TOKENS" \
  --edge-port "$EDGE_PORT" --edge-admin-port "$EDGE_ADMIN" \
  --upstream-port "$UPSTREAM_PORT" --upstream-admin-port "$UPSTREAM_ADMIN" --backend-port "$BACKEND_PORT" \
  --ratelimit-port "$RATELIMIT_PORT"
# shellcheck disable=SC1091
. "$OUT/bench.env"
mkdir -p "$LOGS"
if [ -n "$BEFORE_WASM" ]; then
  # The same edge configuration with the earlier filter: the .wasm path differs, and the plugin
  # configuration's `assertion` block (trust contract v3, issue 20) is left out, as a build from
  # before it refuses the unknown field; envoy.yaml names the defaults, so nothing else changes.
  [ -f "$BEFORE_WASM" ] || die "BENCH_BEFORE_WASM: no file at $BEFORE_WASM"
  filter_wasm="$(realpath -s target/wasm32-wasip1/release/mcp_edge_filter.wasm)"
  for config in edge edge-global; do
    grep -q "$filter_wasm" "$OUT/envoy-$config.yaml" || die "envoy-$config.yaml does not name $filter_wasm"
    sed -e "s|$filter_wasm|$(realpath "$BEFORE_WASM")|" -e '/"assertion": {/,/},/d' "$OUT/envoy-$config.yaml" \
      >"$OUT/envoy-${config/edge/edge-before}.yaml"
  done
fi
: >"$RESULTS"
: >"$RSS_RESULTS"
MCP_EDGE_GATEWAY_SECRET="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
export MCP_EDGE_GATEWAY_SECRET
# The global setup's filter presents this to the rate limit service (scaled_envoy::global_rate_limit).
MCP_EDGE_RATELIMIT_SECRET="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
export MCP_EDGE_RATELIMIT_SECRET

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

# forget PID: no longer stopped on exit (it has ended).
forget() {
  local kept=() p
  for p in "${PIDS[@]}"; do
    [ "$p" = "$1" ] || kept+=("$p")
  done
  PIDS=("${kept[@]}")
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}

envoy_cmd() {
  echo .venv/bin/envoy -c "$OUT/envoy-$1.yaml" --concurrency "$ENVOY_WORKERS" --disable-hot-restart -l warning
}

# wait_until PID NAME COMMAND...: until COMMAND succeeds (30 s at most, and only while PID, whose
# output is $LOGS/NAME.log, lives).
wait_until() {
  local pid="$1" name="$2"
  shift 2
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || die "$name exited; see $LOGS/$name.log"
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$name did not come up; see $LOGS/$name.log"
}

# wait_for URL PID NAME: until URL answers 2xx.
wait_for() {
  wait_until "$2" "$3" curl -fsS -o /dev/null "$1"
}

# utime + stime of a process, in clock ticks.
cpu_ticks() {
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# check SETUP BODY [TOKEN_FILE]: a call with the cached token, and one with the file's first token,
# must be answered 200 with a result that is not a tool error.
check() {
  local status token
  for token in "$BENCH_CACHED_TOKEN" ${3:+"$(head -n1 "$3")"}; do
    status="$(curl -sS -o "$LOGS/check.out" -w '%{http_code}' -X POST "http://127.0.0.1:$EDGE_PORT/mcp" \
      -H "authorization: Bearer $token" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-06-18' -d "$2")"
    [ "$status" = 200 ] || die "$1: the check call was answered $status: $(head -c 400 "$LOGS/check.out")"
    if grep -q '"isError":true\|"error":{' "$LOGS/check.out"; then
      die "$1: the check call was answered an error: $(head -c 400 "$LOGS/check.out")"
    fi
  done
}

# wrk_run CONNECTIONS SECONDS [TOKEN_FILE] [BODY_FILE]: prints wrk.lua's JSON line. Other variables
# of wrk.lua (BENCH_MAX_REQUESTS) pass through the environment.
wrk_run() {
  BENCH_BODY="$BODY" BENCH_TOKEN="$BENCH_CACHED_TOKEN" BENCH_TOKEN_FILE="${3:-}" BENCH_BODY_FILE="${4:-}" \
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
    edge-global) echo edge-global ;;
    edge-before | edge-before-rs256 | edge-before-es256 | edge-before-eddsa) echo edge-before ;;
    edge-before-global) echo edge-before-global ;;
    edge-backend | edge-backend-rs256 | edge-backend-write) echo edge-backend ;;
    node-seed | node-seed-rs256 | node-seed-write) echo node ;;
    *) die "unknown setup $1 (known: $ALL_SETUPS)" ;;
  esac
}

# tokens_of SETUP: the token file of a new-token-per-request setup (empty: the cached token).
tokens_of() {
  case "$1" in
    native-new | *-rs256) echo "$OUT/tokens-RS256.txt" ;;
    *-es256) echo "$OUT/tokens-ES256.txt" ;;
    *-eddsa) echo "$OUT/tokens-EdDSA.txt" ;;
    *) echo "" ;;
  esac
}

for setup in $SETUPS; do edge_of "$setup" >/dev/null; done

log "upstream (fixed 200) and backend on core $LOAD_CORE"
# shellcheck disable=SC2046
start upstream "$LOAD_CORE" $(envoy_cmd upstream)
UPSTREAM_PID=$STARTED
wait_for "http://127.0.0.1:$UPSTREAM_ADMIN/ready" "$UPSTREAM_PID" upstream
if [[ " $SETUPS " == *global* ]]; then
  log "the global rate limit service and its Redis on core $LOAD_CORE"
  start ratelimit-redis "$LOAD_CORE" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no
  wait_until "$STARTED" ratelimit-redis redis-cli -p "$REDIS_PORT" ping
  # Budgets the run never reaches: every request is still counted in Redis.
  printf 'domain: mcp-edge\ntiers:\n  free:\n    requests_per_minute: 4000000000\n  pro:\n    requests_per_minute: 4000000000\n  enterprise:\n    requests_per_minute: 4000000000\n' \
    >"$OUT/ratelimit-limits.yaml"
  start ratelimit "$LOAD_CORE" env RATELIMIT_SHARED_SECRET="$MCP_EDGE_RATELIMIT_SECRET" "$RATELIMIT_BIN" \
    --listen "127.0.0.1:$RATELIMIT_PORT" --limits "$OUT/ratelimit-limits.yaml" \
    --redis-url "redis://127.0.0.1:$REDIS_PORT/0"
  wait_until "$STARTED" ratelimit grep -q listening "$LOGS/ratelimit.log"
fi

# start_backend: a fresh backend (empty memory store) for one end-to-end measurement; its pid in
# BACKEND_PID. Tasks per project: the write rows add one per request, spread over 20 projects.
start_backend() {
  start backend "$LOAD_CORE" "$BACKEND_BIN" --listen "127.0.0.1:$BACKEND_PORT" \
    --quota-free unlimited --quota-pro unlimited --quota-enterprise unlimited \
    --max-tasks-per-project 100000
  BACKEND_PID=$STARTED
  wait_for "http://127.0.0.1:$BACKEND_PORT/healthz" "$BACKEND_PID" backend
}

# global_counts ADMIN_PORT: "<ok> <failed>": the filter's global limit verdicts so far.
global_counts() {
  curl -fsS "http://127.0.0.1:$1/stats?filter=mcp_edge.global_ratelimit" |
    awk -F': ' '/\.ok:/ { ok += $2 } /\.failed_/ { failed += $2 } END { printf "%d %d", ok, failed }'
}

# start_edge SETUP: a fresh edge process for SETUP (an Envoy, or the Node seed server), up and
# answering; its pid in EDGE_PID.
start_edge() {
  local setup="$1" edge
  edge="$(edge_of "$setup")"
  if [ "$edge" = node ]; then
    start "edge-$setup" "$EDGE_CORE" env BENCH_NODE_PORT="$EDGE_PORT" BENCH_JWKS_FILE="$OUT/jwks.json" \
      BENCH_ISSUER="$BENCH_ISSUER" BENCH_AUDIENCE="$BENCH_AUDIENCE" NODE_ENV=production \
      .venv/bin/node bench/node-seed/server.mjs
    EDGE_PID=$STARTED
    wait_until "$EDGE_PID" "edge-$setup" grep -q listening "$LOGS/edge-$setup.log"
  else
    # shellcheck disable=SC2046
    start "edge-$setup" "$EDGE_CORE" $(envoy_cmd "$edge")
    EDGE_PID=$STARTED
    wait_for "http://127.0.0.1:$EDGE_ADMIN/ready" "$EDGE_PID" "edge-$setup"
  fi
}

# measure SETUP ROUND CONNECTIONS: one fresh edge process (and backend), seeded, warm-up, the
# measured run; one result line.
measure() {
  local setup="$1" round="$2" conns="$3" tokens pid line before after backend_before=0 backend_after=0
  local bodies="" body="$BODY" answer_bytes=0 global_before="0 0" global_after="0 0"
  tokens="$(tokens_of "$setup")"
  BACKEND_PID=""
  case "$setup" in edge-backend*) start_backend ;; esac
  start_edge "$setup"
  pid=$EDGE_PID
  case "$setup" in
    edge-backend* | node-seed*)
      answer_bytes="$(python3 bench/seed.py "http://127.0.0.1:$EDGE_PORT/mcp" "$BENCH_CACHED_TOKEN" \
        "$LOGS/write-bodies-$setup.txt")" || die "$setup: seeding failed"
      ;;
  esac
  case "$setup" in
    *-write)
      bodies="$LOGS/write-bodies-$setup.txt"
      body="$(head -n1 "$bodies")"
      ;;
  esac
  check "$setup" "$body" "$tokens"
  wrk_run 16 "$WARMUP_SECONDS" "" "$bodies" >/dev/null
  case "$setup" in *global) global_before="$(global_counts "$EDGE_ADMIN")" ;; esac
  [ -z "$BACKEND_PID" ] || backend_before="$(cpu_ticks "$BACKEND_PID")"
  before="$(cpu_ticks "$pid")"
  line="$(wrk_run "$conns" "$SECONDS_PER_RUN" "$tokens" "$bodies")"
  after="$(cpu_ticks "$pid")"
  [ -z "$BACKEND_PID" ] || backend_after="$(cpu_ticks "$BACKEND_PID")"
  case "$setup" in
    *global)
      sleep 1.2 # the filter hands its counts to Envoy once a second (stats_flush_ms)
      global_after="$(global_counts "$EDGE_ADMIN")"
      ;;
  esac
  stop "$pid"
  [ -z "$BACKEND_PID" ] || stop "$BACKEND_PID"
  read -r ok_before failed_before <<<"$global_before"
  read -r ok_after failed_after <<<"$global_after"
  printf '{"setup":"%s","round":%d,"connections":%d,"edge_cpu_ticks":%d,"backend_cpu_ticks":%d,"answer_bytes":%d,"global_ok":%d,"global_failed":%d,"wrk":%s}\n' \
    "$setup" "$round" "$conns" $((after - before)) $((backend_after - backend_before)) "$answer_bytes" \
    $((ok_after - ok_before)) $((failed_after - failed_before)) "$line" >>"$RESULTS"
  log "$setup round $round c$conns: $line"
  if [ -n "$BACKEND_PID" ]; then
    log "$setup round $round c$conns: backend CPU per call $(python3 -c "import json,sys; w=json.loads(sys.argv[1]); print(round($((backend_after - backend_before)) * 1e6 / $(getconf CLK_TCK) / max(w['requests'], 1)))" "$line") µs"
  fi
}

# rss_kb PID: the process's resident set (VmRSS), in kB.
rss_kb() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# measure_rss SETUP: a fresh Envoy of SETUP (ENVOY_WORKERS workers, all on the edge core) gets
# RSS_TOKENS requests at 16 connections, each with a distinct EdDSA token (passthrough does not look
# at them); one line of rss.jsonl.
measure_rss() {
  local setup="$1" pid line warm_kb after_kb wrk_pid
  start_edge "$setup"
  pid=$EDGE_PID
  check "$setup" "$BODY" "$OUT/tokens-EdDSA.txt"
  wrk_run 16 1 >/dev/null # the cached token: buffers, connections and the VM warmed
  warm_kb="$(rss_kb "$pid")"
  # wrk stops sending after RSS_TOKENS answers and says so with a file, but waits for its -d: it is
  # interrupted then (SIGINT makes it print its results at once).
  rm -f "$OUT/rss-done"
  BENCH_BODY="$BODY" BENCH_TOKEN_FILE="$OUT/tokens-EdDSA.txt" BENCH_MAX_REQUESTS="$RSS_TOKENS" \
    BENCH_DONE_FILE="$OUT/rss-done" taskset -c "$LOAD_CORE" wrk -t1 -c16 -d3600s --timeout 5s \
    -s bench/wrk.lua "http://127.0.0.1:$EDGE_PORT/mcp" >"$LOGS/rss-wrk-$setup.out" &
  wrk_pid=$!
  PIDS+=("$wrk_pid")
  until [ -e "$OUT/rss-done" ]; do
    kill -0 "$wrk_pid" 2>/dev/null || die "memory row, $setup: wrk ended early; see $LOGS/rss-wrk-$setup.out"
    sleep 0.2
  done
  kill -INT "$wrk_pid"
  wait "$wrk_pid" || true
  forget "$wrk_pid"
  line="$(grep '^{' "$LOGS/rss-wrk-$setup.out")" || die "memory row, $setup: no wrk results"
  sleep 1
  after_kb="$(rss_kb "$pid")"
  stop "$pid"
  printf '{"setup":"%s","tokens":%d,"workers":%d,"warm_rss_kb":%d,"rss_kb":%d,"wrk":%s}\n' \
    "$setup" "$RSS_TOKENS" "$ENVOY_WORKERS" "$warm_kb" "$after_kb" "$line" >>"$RSS_RESULTS"
  log "memory, $setup after $RSS_TOKENS distinct tokens: VmRSS $warm_kb kB warm, $after_kb kB after: $line"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  for setup in $SETUPS; do
    for conns in $CONNECTIONS; do
      measure "$setup" "$round" "$conns"
    done
  done
done
if [ "$RSS_TOKENS" -gt 0 ]; then
  RSS_SETUPS="passthrough edge"
  [ -z "$BEFORE_WASM" ] || RSS_SETUPS="$RSS_SETUPS edge-before"
  ENVOY_WORKERS=$RSS_WORKERS
  for setup in $RSS_SETUPS; do
    measure_rss "$setup"
  done
  ENVOY_WORKERS=1
fi
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

.venv/bin/python bench/report.py --results "$RESULTS" --rss "$RSS_RESULTS" --out docs/benchmarks.md --chart docs/benchmarks.png \
  --seconds "$SECONDS_PER_RUN" --rounds "$ROUNDS" --warmup "$WARMUP_SECONDS" \
  --backend-profile "$BACKEND_PROFILE" --edge-core "$EDGE_CORE" --load-core "$LOAD_CORE" \
  --load-before "$LOAD_BEFORE" --load-after "$LOAD_AFTER" --clock-ticks "$(getconf CLK_TCK)"
log "wrote docs/benchmarks.md and docs/benchmarks.png"
