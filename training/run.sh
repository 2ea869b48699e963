#!/usr/bin/env bash
# The training pipeline of the shipped model (3.2.1's recipe: whole films), from the pool to
# model/ and tests/fixtures/, on the CPU. DATA=... names another pool (training/DATA.md),
# PY=... another Python. training/run-lungs.sh is the lung-field recipe, a candidate.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cxr}
PY=${PY:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -r training/requirements.txt
  PY=.venv/bin/python
fi
"$PY" training/split.py --data "$DATA" --out training/split.csv
cargo build --release --locked --bin xray
target/release/xray preprocess "$DATA" build/pre --lungs none --crops 4
# 3.2.1 was trained on pool v1: the collections pool v2 added stay out of its training and
# validation (split.py kept every v1 assignment, so these are v1's very films).
"$PY" training/train.py --data "$DATA" --pre build/pre --out model --leave-out openist-normal ieee8023-nofinding
# Scored on every held-out patient of pool v2, the collections it never saw included.
"$PY" training/evaluate.py --data "$DATA" --pre build/pre --model model --unseen openist-normal ieee8023-nofinding \
  ${HOLDOUT:+--holdout "$HOLDOUT"}
