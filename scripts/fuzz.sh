#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target in fuzz/ in turn, one libFuzzer process (one job, one worker) at a
# time, and prints executions and coverage per target.
#
#   scripts/fuzz.sh [seconds-per-target]     default 300
#   FUZZ_RUNS=10000000 scripts/fuzz.sh       a number of executions per target instead of a time
#   FUZZ_TARGETS="policy jwt" scripts/fuzz.sh
#
# Needs the nightly toolchain (installed if missing) and cargo-fuzz (installed from crates.io if
# missing). New corpus entries go to fuzz/work/<target>/ (not committed; fuzz/corpus/<target>/ is
# only read), logs to fuzz/work/<target>.log, crashes to fuzz/artifacts/<target>/. Built without a
# sanitizer (the code under test is safe Rust) but with debug assertions, so overflows panic.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-300}"
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
if [[ -n "${FUZZ_RUNS:-}" ]]; then
    bound=(-runs="$FUZZ_RUNS")
else
    bound=(-max_total_time="$seconds")
fi
cargo +nightly fuzz build --sanitizer none

status=0
summary=()
for target in $targets; do
    work="fuzz/work/$target"
    log="fuzz/work/$target.log"
    mkdir -p "$work"
    echo "== $target (${bound[*]})"
    if cargo +nightly fuzz run --sanitizer none "$target" "$work" "fuzz/corpus/$target" -- \
        "${bound[@]}" -dict=fuzz/mcp.dict -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result="FAILED (see $log and fuzz/artifacts/$target/)"
        status=1
        tail -n 30 "$log"
    fi
    execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
    line=$(printf '%-12s %12s executions  %-22s %s' "$target" "${execs:-?}" "${cov:-cov: ?}" "$result")
    echo "$line"
    summary+=("$line")
done

echo
printf '%s\n' "${summary[@]}"
exit "$status"
