#!/usr/bin/env bash
# The lung finder (model/lungs.onnx and lungs.json), trained on the pool's lung masks: the
# network that crops films to their lung fields for the plain-lungs candidate
# (training/candidates.sh plain-lungs) and for the served lung-field paths.
# DATA=... names another pool (training/DATA.md), PY=... another Python.
set -euo pipefail
cd "$(dirname "$0")/.."
. training/env.sh
started=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - started )) s)"; }
step "1. split by patient (earlier assignments kept)"
"$PY" training/split.py --data "$DATA" --out training/split.csv
cargo build --release --locked --bin xray
step "2. whole films and their content boxes, for the lung finder"
target/release/xray preprocess "$DATA" build/pre-whole --lungs none
step "3. the lung finder"
"$PY" training/lungs.py --data "$DATA" --pre build/pre-whole --out model
# The classifier of lung crops is the `plain-lungs` candidate: training/candidates.sh plain-lungs
step done
