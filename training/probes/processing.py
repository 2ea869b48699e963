"""How much a model's answer depends on how a hospital processed the film, not on the lungs.

    .venv/bin/python training/probes/processing.py build/model-loso

Films of the validation patients (and, for a leave-out probe, up to 80 films of each
collection it never saw) are given a large-kernel unsharp mask or a softening
(`train.unsharp`: sigma 8 or 24 pixels), CLAHE (`train.clahe`), Gaussian noise or a
low-quality JPEG round trip, each equalised again as `xray preprocess` would after a console
had processed the film that way, and the mean P(covid) of each collection is printed for
each. A model that reads lungs barely moves; run 20's recipe trained without
Kermany and ieee8023 (leave-out probe L1) called NIH normals COVID at mean P 0.65 once sharpened, 0.17
as they are; model 3.1.0 calls them COVID at mean P 0.59 under CLAHE (8x8 tiles, clip 4),
3.2.0, trained against it (`train.py --clahe`), at 0.32.
Only validation and unseen collections are read, never the test split.
"""

import argparse
import io
import json

import numpy as np
import torch
from PIL import Image

import sys
import os
# The pipeline modules (train.py, evaluate.py) live one folder up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from evaluate import load_x, open_model, p_transformed  # noqa: E402
from train import clahe, data_args, equalize, gaussian_blur, load_split, unsharp  # noqa: E402


def noisy(x, sigma, seed=0):
    """Gaussian noise of `sigma` (in [0,1] units, at model resolution), equalised again."""
    gen = torch.Generator().manual_seed(seed)
    return equalize(x + sigma * torch.randn(x.shape, generator=gen))


def jpeg(x, quality):
    """Each film saved as a JPEG of `quality` at model resolution and read back, equalised again."""
    out = []
    for film in x[:, 0]:
        buf = io.BytesIO()
        Image.fromarray((film.clamp(0, 1) * 255).round().byte().numpy()).save(buf, "JPEG", quality=quality)
        out.append(torch.from_numpy(np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255))
    return equalize(torch.stack(out).unsqueeze(1))


TRANSFORMS = {
    "as prepared": lambda x: x,
    "blur sigma 1": lambda x: gaussian_blur(x, [1.0] * len(x)),
    "unsharp sigma 8 amount 1": lambda x: unsharp(x, [1.0] * len(x), [8.0] * len(x)),
    "unsharp sigma 24 amount 1": lambda x: unsharp(x, [1.0] * len(x), [24.0] * len(x)),
    "soften sigma 8 amount -0.5": lambda x: unsharp(x, [-0.5] * len(x), [8.0] * len(x)),
    "soften sigma 24 amount -0.5": lambda x: unsharp(x, [-0.5] * len(x), [24.0] * len(x)),
    "CLAHE 8x8 tiles clip 2": lambda x: clahe(x, 8, 2.0),
    "CLAHE 8x8 tiles clip 4": lambda x: clahe(x, 8, 4.0),
    "noise sigma 0.03": lambda x: noisy(x, 0.03),
    "JPEG quality 20": lambda x: jpeg(x, 20),
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
