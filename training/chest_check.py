"""The check that refuses what is not a frontal chest X-ray (`not_a_chest_xray`).

    python training/negatives.py                                   # build/negatives
    target/release/xray preprocess build/negatives build/pre-neg --lungs none
    python training/chest_check.py --pre build/pre --neg build/pre-neg --out model

A small CNN, run by tract before the classifier, reads the same prepared whole film that the
classifier's preprocessing makes (trimmed, 192x192, equalised) and gives P(frontal chest
X-ray). Positives: every pool film (both classes, children included) and its tighter
framings; negatives: `negatives.py`'s CT slices, lateral films, photographs, drawings and
turned pool films. Splits: the pool's patients as training/split.csv has them, the negatives'
groups as negatives.py deals them, so every figure below is on patients and groups the
check never saw.

The threshold is chosen on validation for the films a service must never refuse: the
highest one at which no validation film of the pool is refused, halved (so that films of
hospitals the pool does not hold have room below the pool's lowest score). Writes
OUT/chest.onnx, OUT/chest.json (the card Rust reads, with the figures) and the card's
section in OUT/README.md between its `chest-check` markers.
"""
import argparse
import csv
import hashlib
import json
import math
import os
import sys
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lungs import Exported  # noqa: E402  (the network with a sigmoid on its logits)
from train import augment, clahe_like_another_hospital, load_split, normalise, process_like_another_hospital  # noqa: E402

REAL_KINDS = ("ct_axial", "ct_coronal", "lateral")
NAME = "chest-check"
VERSION = "1.0.0"
SEED = 11


def block(cin, cout, stride):
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ChestCheck(nn.Module):
    """192 -> 96 (`pool` 2; 3: 64) by an average, then four stride-2 3x3 convolutions to a 6x6
    (4x4) grid of 64 channels, read whole by one linear layer: where things are (two lung fields side by side,
    the spine in the middle, the diaphragm below) is what tells a frontal film from a lateral
    film, a CT slice or a turned film, so the grid is not averaged away. 3 MMAC at `pool` 3, 7 at 2."""

    def __init__(self, pool=3):
        super().__init__()
        self.features = nn.Sequential(nn.AvgPool2d(pool), *block(1, 16, 2), *block(16, 32, 2), *block(32, 64, 2), *block(64, 64, 2))
        grid = 192 // pool // 16
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * grid * grid, 1))

    def forward(self, x):
        return self.head(self.features(x))


def count_mmac(net, size):
    """Multiply-accumulates of one image, from the convolutions' and the linear layer's shapes."""
    total = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: total.append(o.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups))
        for m in net.modules()
        if isinstance(m, nn.Conv2d)
    ] + [m.register_forward_hook(lambda m, i, o: total.append(m.in_features * m.out_features)) for m in net.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 1, size, size))
    for h in hooks:
        h.remove()
    return sum(total) / 1e6


def load_pngs(paths):
    return torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.uint8) for p in paths])[:, None])


def load(args):
    pool = load_split(args.data, args.pre, args.split)
    out = {}
    for split in ("train", "val", "test"):
        rows = pool[split]
        pos = [os.path.join(args.pre, r["file"] + ".png") for r in rows]
        kinds = ["pool:" + r["source"] for r in rows]
        if split == "train" and args.crops:
            # The tighter framings `xray preprocess --crops` wrote: still frontal films.
            for r in rows:
                for i in range(args.crops):
                    p = os.path.join(args.pre, "crops", r["file"] + f".{i}.png")
                    if os.path.exists(p):
                        pos.append(p)
                        kinds.append("pool:" + r["source"])
        neg_rows = [r for r in csv.DictReader(open(os.path.join(args.neg_src, "manifest.csv"), newline="")) if r["split"] == split]
        if split == "train":
            # The real CT slices and lateral films are few (a few dozen) beside hundreds of
            # drawings and turned films: each is shown `--real-weight` times an epoch.
            real = [r for r in neg_rows if r["kind"] in REAL_KINDS]
            neg_rows = neg_rows + real * (args.real_weight - 1)
        neg = [os.path.join(args.neg, r["file"] + ".png") for r in neg_rows]
        x = load_pngs(pos + neg)
        y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
        out[split] = {"x": x, "y": y, "kind": kinds + [r["kind"] for r in neg_rows]}
        print(f"{split}: {len(pos)} frontal films, {len(neg)} negatives", flush=True)
    return out


@torch.no_grad()
def scores(net, x, mean, std, batch=256):
    net.eval()
    return torch.cat([torch.sigmoid(net(normalise(x[i : i + batch].float() / 255.0, mean, std))).flatten() for i in range(0, len(x), batch)]).numpy()


def train(args, data, mean, std):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    net = ChestCheck(args.pool)
    x, y = data["train"]["x"], data["train"]["y"]
    pos_weight = torch.tensor([(y == 0).sum().item() / max((y == 1).sum().item(), 1)])
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=5e-4)
    steps = math.ceil(len(y) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps, pct_start=0.2)
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        net.train()
        perm = torch.randperm(len(y), generator=gen)
        total = 0.0
        for i in range(0, len(perm), args.batch):
            idx = perm[i : i + args.batch]
            # Other hospitals' processing (unsharp masks, softening, CLAHE), then framing,
            # rotation within 10 degrees, mirror, exposure, blur, noise and painted marks, as
            # for the classifier, without hiding the periphery: the layout is the signal.
            xb = clahe_like_another_hospital(process_like_another_hospital(x[idx], args.process, gen), args.clahe, gen)
            xb = normalise(augment(xb, gen, zoom=(0.75, 1.15), periphery=0.0), mean, std)
            loss = F.binary_cross_entropy_with_logits(net(xb).flatten(), y[idx], pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch:2d} loss {total / len(y):.4f} [{time.time() - started:.0f}s]", flush=True)
    return net, time.time() - started


def report(split, s, threshold):
    by = defaultdict(list)
    for score, kind in zip(s, split["kind"]):
        by[kind].append(score)
    rows = {}
    for kind, v in sorted(by.items()):
        v = np.array(v)
        frontal = kind.startswith("pool:")
        refused = float((v < threshold).mean())
        rows[kind] = {"n": len(v), "refused": refused, "frontal": frontal, "min": float(v.min()), "max": float(v.max())}
    return rows


def card_section(card):
    t = card["metrics"]["test"]
    lines = [
        "| held-out input | n | refused |",
        "|---|---|---|",
    ]
    for kind, r in t.items():
        what = f"frontal films, `{kind[5:]}`" if r["frontal"] else f"not a frontal chest X-ray: {kind}"
        lines.append(f"| {what} | {r['n']} | {r['refused']:.3f} ({round(r['refused'] * r['n'])}) |")
    frontal = [r for r in t.values() if r["frontal"]]
    n = sum(r["n"] for r in frontal)
    refused = sum(round(r["refused"] * r["n"]) for r in frontal)
    short = [k for k, r in t.items() if not r["frontal"] and r["refused"] < 0.95]
    weak = (
        "**Below 95% refused:** "
        + ", ".join(f"`{k}` ({t[k]['refused']:.2f} of {t[k]['n']})" for k in short)
        + ". Coronal CT slices show two lung fields side by side, as a frontal film does, and the pool of real"
        " negatives holds few of them; more real negatives of that kind are what would close the gap.\n\n"
        if short
        else ""
    )
    return f"""<!-- chest-check:start (written by training/chest_check.py) -->
## Not a frontal chest X-ray: the check before the classifier

Every input first goes through `{card['name']}` {card['version']} (`model/chest.onnx`, sha256
`{card['sha256'][:16]}…`): a CNN of {card['mmac']:.1f} MMAC that reads the same prepared film and
gives P(frontal chest X-ray). Below {card['threshold']:.4f} the answer is the error
`not_a_chest_xray` (HTTP 422) instead of a label. Trained on every pool film (both classes,
children included, and their tighter framings) against real CT slices and lateral films
(ieee8023, `../shared/data/ood`), scikit-image's sample photographs, drawn charts, pages,
shapes and textures, and pool films turned 90, 180 or 270 degrees (`training/negatives.py`);
{card['training']['epochs']} epochs, {card['training']['seconds']} s on {card['training']['threads']} CPU thread{'s' if card['training']['threads'] != 1 else ''}. The threshold: {card['threshold_rule']}.

Held-out patients and groups (test split; the check never saw them). False refusals of frontal
films: **{refused} of {n}**.

{chr(10).join(lines)}

{weak}It is not a detector of every other input: a frontal film of another body part, or a drawing
made to look like a chest film, can pass; the colour, size and shape warnings stay for what is
borderline. The held-out CT slices and lateral films are few (the n above, from a handful of
patients): read those rows as a check, not a rate.
<!-- chest-check:end -->
"""


def write_section(readme, section):
    text = open(readme).read() if os.path.exists(readme) else ""
    start, end = text.find("<!-- chest-check:start"), text.find("<!-- chest-check:end -->")
    if start >= 0 and end >= 0:
        text = text[:start] + section.rstrip("\n") + text[end + len("<!-- chest-check:end -->") :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    open(readme, "w").write(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cxr")
    ap.add_argument("--pre", default="build/pre", help="`xray preprocess --lungs none` of the pool (whole films, equalised)")
    ap.add_argument("--split", default="training/split.csv")
    ap.add_argument("--neg-src", default="build/negatives", help="negatives.py's output (its manifest)")
    ap.add_argument("--neg", default="build/pre-neg", help="`xray preprocess --lungs none` of the negatives")
    ap.add_argument("--out", default="model")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--crops", type=int, default=4)
    ap.add_argument("--process", type=float, default=0.5, help="fraction of training images given a console-style unsharp mask or softening (train.py's)")
    ap.add_argument("--clahe", type=float, default=0.5, help="fraction given a random CLAHE (train.py's)")
    ap.add_argument("--pool", type=int, default=3, help="average-pool factor before the convolutions (3: 64x64, 2: 96x96)")
    ap.add_argument("--real-weight", type=int, default=6, help="times each real CT slice and lateral film is shown per epoch")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = json.load(open(os.path.join(args.pre, "preprocess.json")))
    if params["version"] != "gray-trim-resize-equalize-v1":
        raise SystemExit(f"{args.pre} holds '{params['version']}' films; the check reads whole equalised films (--lungs none)")
    mean, std = params["mean"], params["std"]
    data = load(args)
    net, seconds = train(args, data, mean, std)

    val = scores(net, data["val"]["x"], mean, std)
    frontal_val = val[data["val"]["y"].numpy() == 1]
    threshold = float(frontal_val.min()) / 2
    test = scores(net, data["test"]["x"], mean, std)
    metrics = {"validation": report(data["val"], val, threshold), "test": report(data["test"], test, threshold)}
    for split in ("validation", "test"):
        print(split)
        for kind, r in metrics[split].items():
            print(f"  {kind:28s} n {r['n']:4d} refused {r['refused']:.3f} (scores {r['min']:.4f}-{r['max']:.4f})")

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "chest.onnx")
    torch.onnx.export(
        Exported(net).eval(),
        (torch.zeros(1, 1, params["input_size"], params["input_size"]),),
        onnx_path,
        input_names=["image"],
        output_names=["p_chest"],
        opset_version=17,
        dynamo=False,
        do_constant_folding=True,
    )
    onnx_bytes = open(onnx_path, "rb").read()
    card = {
        "name": NAME,
        "version": VERSION,
        "file": "chest.onnx",
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "size_bytes": len(onnx_bytes),
        "mmac": round(count_mmac(net, params["input_size"]), 2),
        "input": {"size": params["input_size"], "preprocess": params["version"], "normalisation": f"(v / 255 - {mean}) / {std}"},
        "output": {"name": "p_chest", "shape": [1, 1], "meaning": "P(a frontal chest X-ray)"},
        "threshold": threshold,
        "threshold_rule": "half the lowest score of the validation patients' frontal films, so that none of them is refused and films of other hospitals have room below",
        "metrics": metrics,
        "training": {"epochs": args.epochs, "batch": args.batch, "lr": args.lr, "real_weight": args.real_weight, "pool": args.pool, "hospital_processing": args.process, "hospital_clahe": args.clahe, "seed": SEED, "seconds": round(seconds), "threads": args.threads, "torch": torch.__version__},
    }
    json.dump(card, open(os.path.join(args.out, "chest.json"), "w"), indent=1)
    write_section(os.path.join(args.out, "README.md"), card_section(card))
    print(f"threshold {threshold:.4f}; wrote {onnx_path}, chest.json and the card's section")


if __name__ == "__main__":
    sys.exit(main())
