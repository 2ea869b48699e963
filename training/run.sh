#!/usr/bin/env bash
# The whole training pipeline, from the pool to model/ and tests/fixtures/.
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
cargo run --release --bin xray -- preprocess "$DATA" build/pre --crops 4
"$PY" training/train.py --data "$DATA" --pre build/pre --out model
"$PY" training/evaluate.py --data "$DATA" --pre build/pre --model model
