"""The validation-split figures the adoption rules in docs/research/adoption-log.md are written in.

    .venv/bin/python training/probes/val.py build/model-run10 [model ...]

For each model folder (an `xray.onnx` and the `training.json` that train.py wrote beside it):
validation ROC-AUC and balanced accuracy through onnxruntime, the central-80% field-of-view probe (labels flipped),
the serving-path framing probe (needs `xray preprocess --crops 4`), the processing probe
(normals sharpened, COVID films softened, as other hospitals' consoles would), and the framing-matched
ROC-AUC: the COVID films against the normal films' tighter framings, so that framing cannot
tell the classes apart and only what is inside the frame can. Reads only the
validation split, so candidates can be compared before the test split is read.
"""

import argparse
import json

import sys
import os
# The pipeline modules (train.py, evaluate.py) live one folder up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from evaluate import field_of_view_probe, framing_probe, load_x, open_model, p_covid_of, processing_probe  # noqa: E402
from train import balanced_accuracy, data_args, roc_auc, validation_films  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    data_args(ap)
    args = ap.parse_args()
    rows, is_covid = validation_films(args)
    for folder in args.models:
        sess, _, mean, std, threshold = open_model(folder)
        p = p_covid_of(sess, rows, mean, std)
        x = load_x(rows, mean, std)
        fov = field_of_view_probe(sess, x, p, is_covid, threshold)
        out = {
            "model": folder,
            "val_roc_auc": roc_auc(p, is_covid),
            # At the model's own threshold, which validation chose (equal error): optimistic,
            # but the same for every candidate.
            "val_balanced_accuracy": balanced_accuracy(p, is_covid, threshold)[0],
            "central_80pct_flips": fov["normal_called_covid"] + fov["covid_called_normal"],
            # framing_probe's roc_auc_covid_vs_tighter_normals is the framing-matched AUC.
            "framing_probe": framing_probe(sess, rows, p, is_covid, threshold, args.pre, mean, std),
            # Normals sharpened like a console's output, COVID films softened (evaluate.py).
            "processing_probe": processing_probe(sess, x, p, is_covid, threshold, mean, std),
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
