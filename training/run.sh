#!/usr/bin/env bash
# The training pipeline of the shipped models, from the pool to model/ and tests/fixtures/, on
# the CPU: the classifier (5.0.0, the plain recipe: unequalised whole films, every pool v2
# collection), its collection-held-out table, and the chest check that refuses what is not a
# frontal chest X-ray. DATA=... names another pool (training/DATA.md), OOD=... the real
# negatives, PY=... another Python; HOLDOUT_EPOCHS=0 skips the collection-held-out runs.
# training/candidates.sh trains the candidates of model/candidates/ and their table.
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
target/release/xray preprocess "$DATA" build/pre-plain --plain --lungs none --crops 4
"$PY" training/train.py --data "$DATA" --pre build/pre-plain --out model --recipe plain
if [ "${HOLDOUT_EPOCHS:-40}" != 0 ]; then
  "$PY" training/holdout.py --data "$DATA" --pre build/pre-plain --out build/holdout-plain \
    --collections openist-normal nih-nofinding covid-cxnet ieee8023-covid --jobs 2 --epochs "${HOLDOUT_EPOCHS:-40}" \
    --shipped model/model.json -- --recipe plain
  HOLDOUT=build/holdout-plain/holdout.json
fi
cargo build --release --locked --bin xray
"$PY" training/evaluate.py --data "$DATA" --pre build/pre-plain --model model ${HOLDOUT:+--holdout "$HOLDOUT"}
# The robustness figures the tests hold the served pipeline to, and the docs beside them.
XRAY_WRITE_DOCS=1 cargo test --locked --test robustness
