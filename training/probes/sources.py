"""How a model does on collections it never saw: the nearest the pool comes to another hospital.

    .venv/bin/python training/train.py --out build/model-loso --leave-out kermany-normal ieee8023-covid
    .venv/bin/python training/probes/sources.py build/model-loso

train.py's `--leave-out` keeps whole collections out of training and validation. This prints,
for each left-out collection, every one of its films classified by that model (accuracy at the
model's validation-chosen threshold, mean P(covid)), beside the model's figures on the test
patients of the collections it did see, and, when the left-out collections hold both labels,
their ROC-AUC against each other (threshold-free). A large gap means the model learned collections, not
lungs. Such a model is a probe, never the committed one.
"""

import argparse
import json

import numpy as np

import sys
import os
# The pipeline modules (train.py, evaluate.py) live one folder up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from evaluate import metrics, open_model, p_covid_of  # noqa: E402
from train import data_args, load_split  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    data_args(ap)
    args = ap.parse_args()
    sess, training, mean, std, threshold = open_model(args.model)
    left_out = training.get("left_out_sources") or []
    if not left_out:
        raise SystemExit(f"{args.model} was trained on every collection: nothing to probe")
    splits = load_split(args.data, args.pre, args.split)

    def figures(rows):
        p = p_covid_of(sess, rows, mean, std)
        is_covid = np.array([r["label"] == "covid" for r in rows])
        correct = (p >= threshold) == is_covid
        return p, is_covid, {"n": len(rows), "accuracy": float(correct.mean()), "mean_p_covid": float(p.mean())}

    seen = [r for r in splits["test"] if r["source"] not in left_out]
    p, is_covid, _ = figures(seen)
    m = metrics(p, is_covid, threshold)
    out = {
        "model": args.model,
        "threshold": threshold,
        "seen_collections_test": {k: m[k] for k in ("n", "balanced_accuracy", "sensitivity", "specificity", "roc_auc")},
    }
    unseen_p, unseen_is_covid = [], []
    for source in left_out:
        rows = [r for rs in splits.values() for r in rs if r["source"] == source]
        p, is_covid, f = figures(rows)
        out[f"unseen:{source}"] = f | {"label": rows[0]["label"]}
        unseen_p.append(p)
        unseen_is_covid.append(is_covid)
    # The unseen collections against each other: does the model still rank an unseen COVID film
    # above an unseen normal one, whatever the threshold? 0.5 is a coin.
    p, is_covid = np.concatenate(unseen_p), np.concatenate(unseen_is_covid)
    if is_covid.any() and not is_covid.all():
        m = metrics(p, is_covid, threshold)
        out["unseen_together"] = {k: m[k] for k in ("n", "balanced_accuracy", "roc_auc")}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
