#!/usr/bin/env bash
# The lung-field recipe, a candidate (docs/research/4.x.md): lung finder, lung crops, the
# collection-held-out threshold, the model and its card. It writes model/ like run.sh.
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
step "4. every film cropped to its lungs, through the serving code"
target/release/xray preprocess "$DATA" build/pre --lungs model/lungs.onnx --crops 4
step "5. one collection left out at a time: the threshold for hospitals the pool does not hold"
"$PY" training/holdout.py --data "$DATA" --pre build/pre --out build/holdout --epochs 60 --shipped none \
  --collections openist-normal nih-nofinding covid-cxnet -- --crop-normal 0
step "6. the model"
"$PY" training/train.py --data "$DATA" --pre build/pre --out model --crop-normal 0 --threshold-from build/holdout/holdout.json
step "7. held-out patients, the card, the plots and the test fixtures"
"$PY" training/evaluate.py --data "$DATA" --pre build/pre --model model --holdout build/holdout/holdout.json
step done
