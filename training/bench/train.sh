#!/usr/bin/env bash
# Time the training loop of this checkout against a baseline commit, on the same machine in
# the same hour: short runs of each, alternating, so a slow spell of a shared machine hits both.
#
#   bash training/bench/train.sh BASE_COMMIT [EPOCHS] [ROUNDS]
#
# Each run is `train.py --epochs EPOCHS` (default 10) with its own defaults; its time is the
# last epoch's elapsed seconds (training and validation, not the export). A run of fewer epochs
# keeps the proportions of a 200-epoch run: the one-cycle schedule and --select-from scale with
# --epochs. Prints each run's seconds and the ratio of the sums (this checkout / baseline).
# Needs the venv, build/pre (training/README.md, steps 0-2) and the pool (DATA=...).
set -euo pipefail
cd "$(dirname "$0")/../.."
base=${1:?usage: bash training/bench/train.sh BASE_COMMIT [EPOCHS] [ROUNDS]}
epochs=${2:-10}
rounds=${3:-2}
DATA=${DATA:-../shared/data/cxr}
PY=${PY:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp/base" "$base" >/dev/null 2>&1
run() { # side script -> seconds
  "$PY" "$2" --data "$DATA" --pre build/pre --split training/split.csv --epochs "$epochs" --out "$tmp/out-$1" >"$tmp/$1.log" 2>&1
  grep '^epoch' "$tmp/$1.log" | tail -1 | sed 's/.*\[\([0-9]*\)s\]$/\1/'
}
sum_base=0 sum_head=0
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then order="base head"; else order="head base"; fi
  for side in $order; do
    if [ "$side" = base ]; then s=$(run base "$tmp/base/training/train.py"); sum_base=$((sum_base + s))
    else s=$(run head training/train.py); sum_head=$((sum_head + s)); fi
    echo "round $r $side: $s s for $epochs epochs"
  done
done
echo "base $(git rev-parse --short "$base"): $sum_base s; this checkout: $sum_head s; ratio $(awk -v h="$sum_head" -v b="$sum_base" 'BEGIN { printf "%.3f", h / b }')"
