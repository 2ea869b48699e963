# Sourced by the training pipelines (run.sh, run-lungs.sh) from the repository root: the pool
# (DATA=...) and a Python with training/requirements.txt (PY=...; .venv is made when absent).
DATA=${DATA:-../shared/data/cxr}
PY=${PY:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -r training/requirements.txt
  PY=.venv/bin/python
fi
