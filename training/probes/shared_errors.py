"""Which validation films every given model gets wrong: the errors more of the same recipe won't fix.

    .venv/bin/python training/probes/shared_errors.py model build/model-run30 build/model-run31 [--grid build/shared.png]

Each model is read at its own validation-chosen threshold. Films that independent draws of a
recipe all get wrong are where averaging draws (an ensemble) cannot help, and where the
labels or the films themselves deserve a look: `--grid` draws them, with label, collection,
view, age and the models' mean P(covid), for a person to read. The grid holds pool images
under mixed licences (some non-commercial): keep it in build/, do not commit it.
Only the validation split is read.
"""

import argparse
import json
import os
from collections import Counter

import numpy as np
from PIL import Image, ImageDraw

import sys
# The pipeline modules (train.py, evaluate.py) live one folder up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from evaluate import open_model, p_covid_of  # noqa: E402
from train import data_args, validation_films  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--grid", help="write the films every model gets wrong to this PNG")
    data_args(ap)
    args = ap.parse_args()
    rows, is_covid = validation_films(args)
    wrong, probs = [], []
    for folder in args.models:
        sess, _, mean, std, threshold = open_model(folder)
        p = p_covid_of(sess, rows, mean, std)
        probs.append(p)
        wrong.append((p >= threshold) != is_covid)
    every, some = np.logical_and.reduce(wrong), np.logical_or.reduce(wrong)
    shared = np.flatnonzero(every)
    mean_p = np.mean(probs, axis=0)
    print(
        json.dumps(
            {
                "validation_films": len(rows),
                "wrong_per_model": {m: int(w.sum()) for m, w in zip(args.models, wrong)},
                "wrong_per_model_by_collection": {m: dict(sorted(Counter(rows[i]["source"] for i in np.flatnonzero(w)).items())) for m, w in zip(args.models, wrong)},
                "wrong_under_every_model": {"covid_called_normal": int((every & is_covid).sum()), "normal_called_covid": int((every & ~is_covid).sum())},
                "wrong_under_some_model": int(some.sum()),
                "shared_by_collection_and_view": {f"{s}/{v}": n for (s, v), n in sorted(Counter((rows[i]["source"], rows[i]["view"]) for i in shared).items())},
                "shared_films": [{"file": rows[i]["file"], "label": rows[i]["label"], "mean_p_covid": round(float(mean_p[i]), 3)} for i in shared],
            },
            indent=1,
        )
    )
    if args.grid and len(shared):
        side, cols = 300, 4
        grid = Image.new("L", (side * cols, (side + 30) * -(-len(shared) // cols)), 255)
        for k, i in enumerate(shared):
            r = rows[i]
            film = Image.open(os.path.join(args.data, r["file"])).convert("L")
            film.thumbnail((side, side))
            x, y = (k % cols) * side, (k // cols) * (side + 30)
            grid.paste(film, (x + (side - film.width) // 2, y + 30))
            caption = f"{r['label']} {r['source']} {r['view']} age {r['age'] or '?'} P={mean_p[i]:.2f}"
            ImageDraw.Draw(grid).text((x + 5, y + 8), caption, fill=0)
        grid.save(args.grid)
        print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
