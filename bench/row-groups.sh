#!/usr/bin/env bash
# Opening an extract written in many small row groups (issue 33): testdata with its claims in
# 1,000 and 10,000 row groups (10,000 claim lines), the time to open the data directory (every
# file checked, every page decoded) and to count the claims, in process (the `row_groups_open_time`
# benchmark of tests/suite/hostile.rs, which writes the data), then `hhq sql "SELECT count(*) FROM
# claims"` as a process under GNU time (wall time, peak RSS).
#
#   bench/row-groups.sh [GROUPS ...]        (default: 1000 10000)
#
# Environment: HHQ (binary; default $CARGO_TARGET_DIR/debug/hhq), DATA (/tmp/hhq-row-groups),
# PROFILE (cargo profile of the in-process figures: dev, or release). Needs GNU time
# (/usr/bin/time). Figures are recorded in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
profile=${PROFILE:-dev}
[[ $profile == dev ]] && dir=debug || dir=$profile
HHQ=${HHQ:-$target/$dir/hhq}
data=${DATA:-/tmp/hhq-row-groups}
groups=("$@")
[[ ${#groups[@]} -gt 0 ]] || groups=(1000 10000)
list=$(IFS=,; echo "${groups[*]}")

echo "in process ($profile build): open = check every file and register it; count = SELECT count(*)"
ROW_GROUPS=$list ROW_GROUPS_DATA=$data cargo test --profile "$profile" --features ballista \
    --test hostile -- --ignored --nocapture --exact row_groups_open_time 2>/dev/null |
    grep '^row_groups='

[[ -x $HHQ ]] || { echo "no hhq binary at $HHQ: cargo build first, or set HHQ" >&2; exit 1; }
echo "hhq sql \"SELECT count(*) FROM claims\" ($HHQ):"
for g in "${groups[@]}"; do
    /usr/bin/time -f "row_groups=$g wall_s=%e rss_mib=%M" "$HHQ" sql --data "$data/groups-$g" \
        "SELECT count(*) FROM claims" --format csv 2>&1 >/dev/null |
        awk '{ sub(/rss_mib=[0-9]+/, "rss_mib=" int(substr($3, 9) / 1024)); print }'
done
