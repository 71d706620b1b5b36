#!/usr/bin/env bash
# Wall time and peak RSS of `hhq cohort` (target populations, high-risk flags, lists and
# evidence) on synthetic data sets, with the list sizes and output bytes.
#
#   bench/cohort.sh [MEMBERS ...]        (default: 10000 100000)
#
# Environment: HHQ (binary; default target/release/hhq if built, else target/debug/hhq, under
# CARGO_TARGET_DIR when set), DATA_ROOT (/tmp/hhq-cohort-data: data generated once per size,
# reused), WORK (/tmp/hhq-cohort-out). Needs GNU time (/usr/bin/time). Figures are recorded in
# docs/cohorts.md.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
if [[ -z ${HHQ:-} ]]; then
    HHQ=$target/release/hhq
    [[ -x $HHQ ]] || HHQ=$target/debug/hhq
fi
[[ -x $HHQ ]] || { echo "no hhq binary at $HHQ: cargo build --release first, or set HHQ" >&2; exit 1; }
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(10000 100000)
root=${DATA_ROOT:-/tmp/hhq-cohort-data}
work=${WORK:-/tmp/hhq-cohort-out}
mkdir -p "$root" "$work"
echo "binary: $HHQ; $(nproc) cores"
printf '%-9s %9s %10s %9s %9s %9s %9s %9s %10s\n' members claims wall_s peak_MB not_enr no_longer both worklist evidence_MB
for n in "${sizes[@]}"; do
    data=$root/$n
    if [[ ! -f $data/claims.parquet ]]; then
        echo "generating $n members into $data ..." >&2
        "$HHQ" synth --members "$n" --seed 1 --start-year 2025 --years 1 --out "$data" >&2
    fi
    out=$work/$n log=$work/$n.log
    /usr/bin/time -v "$HHQ" cohort --data "$data" --out "$out" >"$log" 2>&1 \
        || { echo "$n: failed, see $log" >&2; continue; }
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" \
        | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$log")
    count() { awk -v l="$1" '$1 == l {print $2}' "$log"; }
    lines=$("$HHQ" sql "SELECT count(*) AS n FROM claims" --data "$data" --format csv | tail -1)
    ev=$(awk -v b="$(stat -c %s "$out/evidence.csv")" 'BEGIN {printf "%.1f", b / 1048576}')
    printf '%-9s %9s %10s %9s %9s %9s %9s %9s %10s\n' "$n" "$lines" "$wall" "$rss" \
        "$(count not_enrolled)" "$(count no_longer_qualify)" "$(count both_populations)" \
        "$(count worklist)" "$ev"
done
