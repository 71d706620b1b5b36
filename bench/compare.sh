#!/usr/bin/env bash
# Whether this checkout's release build runs the full measure suite as fast as another
# revision's, at one size: both built in the release profile (fat LTO), the extracts made once
# by `hhq synth`, then `hhq run` timed under GNU time, the two binaries alternating, ROUNDS
# times each. Prints wall time and peak resident memory per run and the medians. For changes
# meant to keep speed (a refactoring); docs/benchmarks.md states the figures.
#
#   bench/compare.sh REV [MEMBERS] [ROUNDS]     # e.g. bench/compare.sh 8e319ac 1000000 2
#
# REV is built in a git worktree (once: its binary is kept under ~/.cache/hhq-compare) with the
# same build directory (HHQ_RELEASE_TARGET, default
# ~/.cache/hhq-target-release: a cold build of the dependencies takes about 28 min on 2 cores,
# each hhq build then a few minutes of linking). The extracts are kept under
# /tmp/hhq-bench/data/m<MEMBERS> (as bench/scale.py keeps them) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/compare.sh REV [MEMBERS] [ROUNDS]}
members=${2:-1000000}
rounds=${3:-2}
export CARGO_TARGET_DIR="${HHQ_RELEASE_TARGET:-${HOME:-/tmp}/.cache/hhq-target-release}"
export CARGO_INCREMENTAL=0
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" 2>/dev/null || true; rm -rf "$work"' EXIT

# REV's binary is kept (by commit) so that more rounds later need no second build.
kept="${HHQ_COMPARE_BINARIES:-${HOME:-/tmp}/.cache/hhq-compare}/hhq-$(git rev-parse "$rev")"
if [ -x "$kept" ]; then
    cp "$kept" "$work/hhq-base"
else
    git worktree add --quiet --detach "$work/base" "$rev"
    echo "== building $rev (release)"
    (cd "$work/base" && cargo clean --quiet --release -p hhq && cargo build --quiet --release --bin hhq)
    cp "$CARGO_TARGET_DIR/release/hhq" "$work/hhq-base"
    mkdir -p "$(dirname "$kept")" && cp "$work/hhq-base" "$kept"
fi
echo "== building this checkout (release)"
cargo clean --quiet --release -p hhq
cargo build --quiet --release --bin hhq
cp "$CARGO_TARGET_DIR/release/hhq" "$work/hhq-here"

data=/tmp/hhq-bench/data/m$members
if [ ! -f "$data/claims.parquet" ]; then
    echo "== hhq synth --members $members"
    mkdir -p "$data"
    "$work/hhq-here" synth --members "$members" --seed 1 --start-year 2025 --years 1 \
        --out "$data" > /dev/null
fi

for round in $(seq 1 "$rounds"); do
    for who in base here; do
        /usr/bin/time -f "%e %M" -o "$work/time" "$work/hhq-$who" run --data "$data" \
            --period 2025 --out "$work/out-$who" --quiet 2> "$work/$who.err" \
            || { cat "$work/$who.err" >&2; exit 1; }
        read -r wall kib < "$work/time"
        echo "$who $round: ${wall} s, $((kib / 1024)) MiB" | tee -a "$work/times"
    done
done
if ! diff -q "$work/out-base/summary.csv" "$work/out-here/summary.csv" > /dev/null; then
    echo "summary.csv differs between $rev and this checkout" >&2
    exit 1
fi
for who in base here; do
    median=$(awk -v w="$who" '$1 == w { print $3 + 0 }' "$work/times" | sort -n \
        | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }')
    echo "median $who ($( [ "$who" = base ] && echo "$rev" || git rev-parse --short HEAD )): $median s"
done
