#!/usr/bin/env bash
# The filter's pure core timed where it runs in Envoy, V8 (issue 11): filter/examples/core_timings.rs
# built for wasm32-wasip1 and run under Node's WASI with Liftoff off, as proxy-wasm's V8 host runs
# it, beside the same program built natively. Not part of the test command; takes about a minute
# once built. Prints `name  wasm ns  native ns  ratio`, one line per measurement.
#
#   scripts/bench-core-wasm.sh            # every measurement, fresh-token verifications included
#   scripts/bench-core-wasm.sh --quick    # short runs, no verifications
#   scripts/bench-core-wasm.sh --only gate
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { echo "needs node (20 or newer)" >&2; exit 1; }
rustup target list --installed | grep -q wasm32-wasip1 || rustup target add wasm32-wasip1
cargo build -q --release --target wasm32-wasip1 -p mcp-edge-filter --example core_timings
cargo build -q --release -p mcp-edge-filter --example core_timings

wasm_out="$(node --no-warnings --no-liftoff bench/wasm-core/run.mjs \
  target/wasm32-wasip1/release/examples/core_timings.wasm "$@")"
native_out="$(target/release/examples/core_timings "$@")"
printf '%-26s %12s %12s %8s\n' measurement "wasm ns" "native ns" ratio
join -t $'\t' <(sort <<<"$wasm_out") <(sort <<<"$native_out") |
  awk -F '\t' '{ printf "%-26s %12d %12d %7.1fx\n", $1, $2, $3, ($3 > 0 ? $2 / $3 : 0) }'
