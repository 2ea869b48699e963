"""How much a model's answer depends on how a hospital processed the film, not on the lungs.

    .venv/bin/python training/probe_processing.py build/model-loso

Films of the validation patients (and, for a leave-out probe, up to 80 films of each
collection it never saw) are given a large-kernel unsharp mask or a softening
(`train.unsharp`: sigma 8 or 24 pixels, then equalised again, as `xray preprocess` would after
a console had processed the film that way), and the mean P(covid) of each collection is
printed for each. A model that reads lungs barely moves; run 20's recipe trained without
Kermany and ieee8023 (session 9) called NIH normals COVID at mean P 0.65 once sharpened, 0.17
as they are. Only validation and unseen collections are read, never the test split.
"""

import argparse
import json

from evaluate import load_x, open_model, p_transformed
from train import data_args, gaussian_blur, load_split, unsharp

TRANSFORMS = {
    "as prepared": lambda x: x,
    "blur sigma 1": lambda x: gaussian_blur(x, [1.0] * len(x)),
    "unsharp sigma 8 amount 1": lambda x: unsharp(x, [1.0] * len(x), [8.0] * len(x)),
    "unsharp sigma 24 amount 1": lambda x: unsharp(x, [1.0] * len(x), [24.0] * len(x)),
    "soften sigma 8 amount -0.5": lambda x: unsharp(x, [-0.5] * len(x), [8.0] * len(x)),
    "soften sigma 24 amount -0.5": lambda x: unsharp(x, [-0.5] * len(x), [24.0] * len(x)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    data_args(ap)
    args = ap.parse_args()
    sess, training, mean, std, threshold = open_model(args.model)
    splits = load_split(args.data, args.pre, args.split)
    left_out = training.get("left_out_sources") or []
    sets = {}
    for r in splits["val"]:
        if r["source"] not in left_out:
            sets.setdefault(f"val:{r['source']}", []).append(r)
    for source in left_out:
        sets[f"unseen:{source}"] = [r for rs in splits.values() for r in rs if r["source"] == source][:80]

    out = {"model": args.model, "threshold": threshold, "mean_p_covid": {}}
    for name, rows in sorted(sets.items()):
        x = load_x(rows, mean, std)
        out["mean_p_covid"][f"{name} (n={len(rows)}, {rows[0]['label']})"] = {
            t: round(float(p_transformed(sess, x, f, mean, std).mean()), 3) for t, f in TRANSFORMS.items()
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
