#!/usr/bin/env bash
# Trains the candidate models of model/candidates/ on the CPU, one command each, and writes
# their comparison table (training/compare.py). Every candidate is a loadable model folder:
# the ONNX file, its model.json (written by evaluate.py) and training.json.
#
#   bash training/candidates.sh [plain plain-lungs plain-probe plain-ensemble plain-process ref-4.0.0 compare]
#
# With no argument it does all of them in that order. DATA=... names another pool, PY=...
# another Python. Times on 2 cores are in each candidate's training.json and in the table.
# The shipped model is `plain`: training/run.sh trains it into model/ with its chest check,
# fixtures and card, and this copies it; ref-4.0.0 is the 4.0.0 model as it shipped, copied,
# not retrained. The plain-ensemble's first member is the run in build/candidates/plain.
set -euo pipefail
cd "$(dirname "$0")/.."
. training/env.sh
OUT=${OUT:-model/candidates}
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(plain plain-lungs plain-probe plain-ensemble plain-process ref-4.0.0 compare)
cargo build --release --locked --bin xray
X=target/release/xray

# One candidate: preprocess the pool through its path (once), train its recipe (TRAIN_ARGS
# adds to it), write its card, copy the loadable folder into $OUT.
candidate() {
  local name=$1 pre=$2 recipe=$3
  shift 3
  local out=build/candidates/$name
  [ -f "$pre/preprocess.json" ] || "$X" preprocess "$DATA" "$pre" "$@"
  # shellcheck disable=SC2086
  "$PY" training/train.py --data "$DATA" --pre "$pre" --out "$out" --recipe "$recipe" ${TRAIN_ARGS:-}
  publish "$name" "$pre"
}

publish() {
  local name=$1 pre=$2 out=build/candidates/$1
  "$PY" training/evaluate.py --data "$DATA" --pre "$pre" --model "$out" --version "5.0.0-$name" --no-fixtures --no-readme-headline
  mkdir -p "$OUT/$name"
  cp "$out/xray.onnx" "$out/model.json" "$out/training.json" "$OUT/$name/"
  # The card without its pictures, which stay in the build folder.
  grep -v '^!\[' "$out/README.md" > "$OUT/$name/README.md"
  if [[ $("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["input"]["preprocess"])' "$out/model.json") == *lungbox* ]]; then
    cp model/lungs.onnx "$OUT/$name/"   # the finder it was trained with, beside it
  fi
}

for step in "${steps[@]}"; do
  case $step in
    # The shipped model (training/run.sh trains it into model/): its files, as served.
    plain)
      mkdir -p "$OUT/plain"
      cp model/xray.onnx model/model.json model/training.json "$OUT/plain/"
      grep -v '^!\[' model/README.md > "$OUT/plain/README.md"
      ;;
    # The same recipe on the lung finder's crops (the finder reads the equalised whole film).
    plain-lungs) candidate plain-lungs build/pre-plain-lungs plain --plain --lungs model/lungs.onnx --crops 4 ;;
    # The plain CNN probe's own network and input size (224 px), in this pipeline.
    plain-probe) candidate plain-probe build/pre-plain-224 plain-probe --plain --lungs none --size 224 --crops 4 ;;
    # The plain recipe from two seeds (3, the shipped one, and 4), joined into one network
    # whose logits are the members' mean (train.py --ensemble).
    plain-ensemble)
      [ -f build/candidates/plain/weights.pt ] ||
        "$PY" training/train.py --data "$DATA" --pre build/pre-plain --out build/candidates/plain --recipe plain
      for seed in 4; do
        [ -f "build/candidates/plain-s$seed/weights.pt" ] ||
          "$PY" training/train.py --data "$DATA" --pre build/pre-plain --out "build/candidates/plain-s$seed" --recipe plain --seed "$seed"
      done
      "$PY" training/train.py --data "$DATA" --pre build/pre-plain --out build/candidates/plain-ensemble --recipe plain \
        --ensemble build/candidates/plain build/candidates/plain-s4
      publish plain-ensemble build/pre-plain
      ;;
    # The plain recipe with console processing and CLAHE on half the films, not equalised again.
    plain-process) candidate plain-process build/pre-plain plain-process --plain --lungs none --crops 4 ;;
    ref-4.0.0)
      # The 4.0.0 model as it shipped (commit 3b5625a): its files, not a retraining.
      mkdir -p "$OUT/ref-4.0.0"
      for f in xray.onnx model.json training.json; do
        git show "3b5625a:model/$f" > "$OUT/ref-4.0.0/$f"
      done
      git show 3b5625a:model/README.md | grep -v '^!\[' > "$OUT/ref-4.0.0/README.md"
      ;;
    compare) "$PY" training/compare.py --data "$DATA" --candidates "$OUT" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
