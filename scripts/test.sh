#!/usr/bin/env bash
# The test command: installs what is missing, builds the filter (wasm32-wasip1, release), the
# backend and the dev tools, then runs every unit and end-to-end test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all --check
cargo build --locked -p mcp-edge-filter --target wasm32-wasip1 --release
cargo build --locked -p mcp-edge-backend -p mcp-edge-ratelimit -p xtask
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "workspace: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
