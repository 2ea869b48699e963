"""Would serving do better by averaging the model over several framings of each film?

    .venv/bin/python training/probes/framing_tta.py model [build/model-run34 ...]

The model card shows that tighter framings of normal films read as COVID more often than the
whole films. One remedy would cost nothing in training: serve the mean logit margin of the
whole film and its four tighter framings (`xray preprocess --crops 4`, cropped from the
original film and prepared as serving prepares a film), so that no single framing decides.
This prints, for each model, validation ROC-AUC of the whole film (what serving does now), of
each framing alone, of the framings' mean, and of the whole film with its framings, and the
mean P(covid) of each class whole and framed. Only the validation split is read.
"""

import argparse
import json
import os

import numpy as np

import sys
# The pipeline modules (train.py, evaluate.py) live one folder up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from evaluate import CROPS_PER_FILM, load_x, open_model, run_batch  # noqa: E402
from train import crop_path, data_args, roc_auc, validation_films  # noqa: E402


def margin(p):
    """The logit margin back from a calibrated probability (a monotone map: AUC is unchanged)."""
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    data_args(ap)
    args = ap.parse_args()
    rows, is_covid = validation_films(args)
    crops = [{"pre": crop_path(args.pre, r["file"], k)} for r in rows for k in range(CROPS_PER_FILM)]
    if not all(os.path.exists(c["pre"]) for c in crops):
        raise SystemExit(f"no framings under {args.pre}/crops: run `xray preprocess --crops {CROPS_PER_FILM}`")
    for folder in args.models:
        sess, _, mean, std, _ = open_model(folder)
        p = run_batch(sess, load_x(rows, mean, std))
        q = run_batch(sess, load_x(crops, mean, std)).reshape(len(rows), CROPS_PER_FILM)
        whole_and_framed = (margin(p) + margin(q).sum(axis=1)) / (1 + CROPS_PER_FILM)
        print(
            json.dumps(
                {
                    "model": folder,
                    "val_roc_auc_whole": roc_auc(p, is_covid),
                    "val_roc_auc_each_framing": [roc_auc(q[:, k], is_covid) for k in range(CROPS_PER_FILM)],
                    "val_roc_auc_framings_mean": roc_auc(margin(q).mean(axis=1), is_covid),
                    "val_roc_auc_whole_and_framings_mean": roc_auc(whole_and_framed, is_covid),
                    "mean_p_covid": {
                        "covid_whole": float(p[is_covid].mean()),
                        "covid_framed": float(q[is_covid].mean()),
                        "normal_whole": float(p[~is_covid].mean()),
                        "normal_framed": float(q[~is_covid].mean()),
                    },
                }
            )
        )


if __name__ == "__main__":
    main()
