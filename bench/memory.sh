#!/usr/bin/env bash
# Peak RSS and wall time of `hhq run` with no memory limit and with two limits, on a synthetic
# data set larger than testdata/, and whether the outputs match the unlimited run's.
#
#   bench/memory.sh [LIMIT ...]        (default: 1G 512M)
#
# Environment: HHQ (binary; default target/release/hhq if built, else target/debug/hhq, under
# CARGO_TARGET_DIR when set), MEMBERS (20000), DATA (/tmp/hhq-mem: generated once, reused), WORK
# (/tmp/hhq-mem-out). Needs GNU time (/usr/bin/time). Figures are recorded in docs/memory.md.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
if [[ -z ${HHQ:-} ]]; then
    HHQ=$target/release/hhq
    [[ -x $HHQ ]] || HHQ=$target/debug/hhq
fi
[[ -x $HHQ ]] || { echo "no hhq binary at $HHQ: cargo build first, or set HHQ" >&2; exit 1; }
members=${MEMBERS:-20000}
data=${DATA:-/tmp/hhq-mem}
work=${WORK:-/tmp/hhq-mem-out}
limits=("$@")
[[ ${#limits[@]} -gt 0 ]] || limits=(1G 512M)

if [[ ! -f $data/claims.parquet ]]; then
    echo "generating $members members into $data ..." >&2
    "$HHQ" synth --members "$members" --seed 1 --start-year 2024 --years 2 --out "$data" >&2
fi
mkdir -p "$work"
echo "binary: $HHQ; data: $data ($(du -sh "$data" | cut -f1)); $(nproc) cores"

# One run: prints limit, peak RSS, wall time, the engine's own memory line and the comparison.
run() {
    local limit=$1 out=$work/$1 log=$work/$1.log
    local args=(run --data "$data" --out "$out")
    [[ $limit == none ]] || args+=(--memory-limit "$limit")
    if ! /usr/bin/time -v "$HHQ" "${args[@]}" >/dev/null 2>"$log"; then
        printf '%-6s failed: %s\n' "$limit" "$(grep '^error' "$log" | head -1)"
        return
    fi
    local rss wall engine same
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f MiB", $2 / 1024}' "$log")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
    engine=$(grep '^memory:' "$log" | sed 's/^memory: //')
    same=-
    if [[ $limit != none ]]; then
        if diff -r -q "$work/none" "$out" >/dev/null; then same="identical outputs"; else same="OUTPUTS DIFFER"; fi
    fi
    printf '%-6s peak RSS %-9s wall %-8s | %s | %s\n' "$limit" "$rss" "$wall" "$engine" "$same"
}

run none
for l in "${limits[@]}"; do run "$l"; done
