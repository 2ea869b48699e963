#!/usr/bin/env bash
# Exploration on a many-core machine: the collection-held-out runs (holdout.py) of two
# recipes and each recipe's full run, at once, two CPU threads each, the network on DEVICE.
#
#   bash training/bench/sweep.sh OUT [EPOCHS] [DEVICE]
#
# Recipe L is the lung-field recipe (`--crop-normal 0`: the lung box fixes the framing);
# recipe P is L without the console processing (`--process 0 --clahe 0`). DATA, PRE and PY
# name the pool, the preprocessed films and the Python. Sixteen threads in all: the figures
# are a sweep's, for choosing a recipe; the shipped model trains on two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: bash training/bench/sweep.sh OUT [EPOCHS] [DEVICE]}
epochs=${2:-100}
device=${3:-cpu}
DATA=${DATA:-../shared/data/cxr}
PRE=${PRE:-build/pre}
PY=${PY:-.venv/bin/python}
mkdir -p "$out"
common=(--data "$DATA" --pre "$PRE" --epochs "$epochs")
L=(--crop-normal 0 --device "$device")
P=(--crop-normal 0 --process 0 --clahe 0 --device "$device")
"$PY" training/holdout.py "${common[@]}" --out "$out/L" --jobs 4 --threads 2 --shipped none \
  --collections openist-normal nih-nofinding covid-cxnet ieee8023-covid -- "${L[@]}" >"$out/L.log" 2>&1 &
"$PY" training/holdout.py "${common[@]}" --out "$out/P" --jobs 2 --threads 2 --shipped none \
  --collections openist-normal nih-nofinding -- "${P[@]}" >"$out/P.log" 2>&1 &
"$PY" training/train.py "${common[@]}" --out "$out/L-full" --threads 2 "${L[@]}" >"$out/L-full.log" 2>&1 &
"$PY" training/train.py "${common[@]}" --out "$out/P-full" --threads 2 "${P[@]}" >"$out/P-full.log" 2>&1 &
wait
"$PY" training/probes/by_collection.py "$out/L-full" "$out/P-full" --data "$DATA" --pre "$PRE" >"$out/full-val.txt" 2>&1
tail -n 8 "$out/L.log" "$out/P.log" "$out/full-val.txt"
