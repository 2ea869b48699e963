#!/usr/bin/env bash
# The training pipeline of the shipped models, from the pool to model/ and tests/fixtures/, on
# the CPU: the classifier (4.0.0's recipe: whole films, every pool v2 collection), its
# collection-held-out table, and the chest check that refuses what is not a frontal chest
# X-ray. DATA=... names another pool (training/DATA.md), OOD=... the real negatives, PY=...
# another Python; HOLDOUT_EPOCHS=0 skips the collection-held-out runs (7-9 minutes each on one
# thread, two at a time).
# training/run-lungs.sh is the lung-field recipe, a candidate.
set -euo pipefail
cd "$(dirname "$0")/.."
OOD=${OOD:-../shared/data/ood}
. training/env.sh
"$PY" training/split.py --data "$DATA" --out training/split.csv
cargo build --release --locked --bin xray
target/release/xray preprocess "$DATA" build/pre --lungs none --crops 4
# The chest check first: evaluate.py's heatmaps run through the served code, which needs it.
"$PY" training/negatives.py --data "$DATA" --ood "$OOD" --out build/negatives
target/release/xray preprocess build/negatives build/pre-neg --lungs none
"$PY" training/chest_check.py --data "$DATA" --pre build/pre --neg-src build/negatives --neg build/pre-neg \
  --out model --crops 1 --pool 3
"$PY" training/train.py --data "$DATA" --pre build/pre --out model
if [ "${HOLDOUT_EPOCHS:-60}" != 0 ]; then
  "$PY" training/holdout.py --data "$DATA" --pre build/pre --out build/holdout \
    --collections openist-normal nih-nofinding covid-cxnet ieee8023-covid --jobs 2 --epochs "${HOLDOUT_EPOCHS:-60}" \
    --shipped model/model.json
  HOLDOUT=build/holdout/holdout.json
fi
cargo build --release --locked --bin xray
"$PY" training/evaluate.py --data "$DATA" --pre build/pre --model model ${HOLDOUT:+--holdout "$HOLDOUT"}
