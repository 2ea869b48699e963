"""Validation and test figures of trained models, overall and collection by collection.

    .venv/bin/python training/probes/by_collection.py build/model-a [build/model-b ...] [--split-name test]

For each model folder train.py wrote: ROC-AUC and balanced accuracy at the model's own
threshold over the chosen split, then each collection's specificity (normals) or sensitivity
(COVID) and mean P(covid). Reading the test split is for a model already decided on; a
candidate is judged on `--split-name val` and on `holdout.py`.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from evaluate import open_model, p_covid_of  # noqa: E402
from train import balanced_accuracy, data_args, load_split, roc_auc  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--split-name", default="val", choices=["val", "test"])
    data_args(ap)
    args = ap.parse_args()
    rows = load_split(args.data, args.pre, args.split)[args.split_name]
    is_covid = np.array([r["label"] == "covid" for r in rows])
    for folder in args.models:
        sess, training, mean, std, threshold = open_model(folder)
        p = p_covid_of(sess, rows, mean, std)
        bacc, sens, spec = balanced_accuracy(p, is_covid, threshold)
        left_out = training.get("left_out_sources") or []
        print(f"{folder}: {args.split_name} n={len(rows)} ROC-AUC {roc_auc(p, is_covid):.4f} balanced accuracy {bacc:.3f} "
              f"sensitivity {sens:.3f} specificity {spec:.3f} threshold {threshold:.3f}" + (f" (trained without {', '.join(left_out)})" if left_out else ""))
        for source in sorted({r["source"] for r in rows}):
            idx = np.array([r["source"] == source for r in rows])
            label = rows[int(np.argmax(idx))]["label"]
            right = (p[idx] < threshold) if label == "normal" else (p[idx] >= threshold)
            what = "specificity" if label == "normal" else "sensitivity"
            print(f"  {source:20s} n={idx.sum():4d} {what} {right.mean():.3f} mean P(covid) {p[idx].mean():.3f}")


if __name__ == "__main__":
    main()
