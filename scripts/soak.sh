#!/usr/bin/env bash
# The metering soak: the backend killed (-9) at random points under load, with Redis up and hung in
# turn, many times over; acknowledged <= billed <= acknowledged + unanswered, never an event twice.
# Not part of the test command (which runs the same test with 4 kills).
#   scripts/soak.sh [kills]          # default 50; USAGE_FAULT_SEED=<n> replays a run's kill times
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
USAGE_FAULT_ITERATIONS="${1:-50}" exec cargo test --locked -p mcp-edge-backend --test usage_fault \
  kill_9_at_random_points_never_loses_an_acknowledged_call -- --exact --nocapture
