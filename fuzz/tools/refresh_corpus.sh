#!/usr/bin/env bash
# Rebuilds the committed corpus fuzz/corpus/<target>/ from itself and what fuzzing added
# (fuzz/work/<target>/): `cargo fuzz cmin` on edge coverage, then at most 40 files by greedy set
# cover (pick_corpus.py). Files named regression-* (inputs that once failed) are always kept.
#
#   fuzz/tools/refresh_corpus.sh [target...]        default: every target
set -euo pipefail
cd "$(dirname "$0")/../.."

host=$(rustc -vV | sed -n 's/^host: //p')
targets="${*:-$(cargo +nightly fuzz list)}"
for target in $targets; do
    corpus="fuzz/corpus/$target"
    tmp=$(mktemp -d)
    mkdir -p "$tmp/all" "$tmp/empty" "$tmp/picked" "$tmp/regressions"
    cp "$corpus"/regression-* "$tmp/regressions/" 2>/dev/null || true
    find "$corpus" "fuzz/work/$target" -maxdepth 1 -type f -exec cp -t "$tmp/all" {} + 2>/dev/null || true
    cargo +nightly fuzz cmin --sanitizer none "$target" "$tmp/all" -- -use_counters=0 \
        >"$tmp/cmin.log" 2>&1
    "fuzz/target/$host/release/$target" -set_cover_merge=1 -use_counters=0 \
        -merge_control_file="$tmp/control" "$tmp/empty" "$tmp/all" >"$tmp/merge.log" 2>&1
    echo -n "$target: $(grep -o '[0-9]* new files' "$tmp/cmin.log" | tail -n 1) after cmin; "
    python3 fuzz/tools/pick_corpus.py "$tmp/control" "$tmp/picked"
    rm -rf "$corpus"
    mkdir -p "$corpus"
    find "$tmp/picked" "$tmp/regressions" -type f -exec cp -t "$corpus" {} +
    rm -rf "$tmp"
done
