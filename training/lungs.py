"""Train the lung finder: a small segmentation network that marks the lung fields of a film,
so that the classifier sees the lungs and not the borders, labels and framing around them.

Input: what `xray preprocess` wrote for every film of the pool, through the Rust code serving
runs: `whole/<file>.png`, the whole film trimmed, resized to 192x192 and equalised (the lung
finder's input in serving too), and `boxes.csv`, each film's content box (what trimming
kept). Each of the pool's lung masks (`masks.csv`) is cropped to its film's content box and
averaged down to the network's 24x24 output grid, as the film was resized.

Only the training patients of `split.csv` train it and only the validation patients choose
the epoch; `evaluate.py` reports its Dice on the test patients.

Output: `model/lungs.onnx` (input `image` [1, 1, 192, 192], normalised as the classifier's;
output `lungs` [1, 1, 24, 24], P(lung) per cell of 8x8 pixels) and `model/lungs.json`.

    python training/lungs.py --data ../shared/data/cxr --pre build/pre --out model
"""
import argparse
import csv
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from train import affine_grid, clahe_like_another_hospital, data_args, normalise, process_like_another_hospital, seed_everything

GRID = 24  # output cells a side: 192 / 8
SEED = 7


def conv(cin, cout, k=3, stride=1):
    pad = (k - 1) // 2 if stride == 1 else 0
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LungNet(nn.Module):
    """A U-Net small enough to cost a fraction of the classifier (about 10 MMAC against 82).

    An 8x8 stride-8 stem takes the 192x192 film to 24x24 (a learned projection of each 8x8
    patch, the shape tract runs fast), two 2x2 stride-2 convolutions go down to 6x6, and two
    2x2 transposed convolutions come back up with the skip connections. The output is coarse
    (8 pixels a cell) because it only has to give a box: where the lungs are, not their edge.
    """

    def __init__(self, width=16):
        super().__init__()
        w = width
        self.stem = conv(1, w, 8, 8)  # 24
        self.c1 = conv(w, w)
        self.d2 = conv(w, 2 * w, 2, 2)  # 12
        self.c2 = conv(2 * w, 2 * w)
        self.d3 = conv(2 * w, 3 * w, 2, 2)  # 6
        self.c3 = conv(3 * w, 3 * w)
        self.u2 = nn.Sequential(nn.ConvTranspose2d(3 * w, 2 * w, 2, stride=2, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True))
        self.m2 = conv(4 * w, 2 * w)
        self.u1 = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 2, stride=2, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        self.m1 = conv(2 * w, w)
        self.head = nn.Conv2d(w, 1, 1)

    def forward(self, x):
        s1 = self.c1(self.stem(x))
        s2 = self.c2(self.d2(s1))
        s3 = self.c3(self.d3(s2))
        y = self.m2(torch.cat([self.u2(s3), s2], 1))
        y = self.m1(torch.cat([self.u1(y), s1], 1))
        return self.head(y)


class Exported(nn.Module):
    """What is exported: the network's logits through a sigmoid (chest_check.py's too)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return torch.sigmoid(self.net(image))


def content_boxes(pre):
    return {r["file"]: tuple(int(r[k]) for k in ("x", "y", "w", "h")) for r in csv.DictReader(open(os.path.join(pre, "boxes.csv"), newline=""))}


def mask_target(mask_path, box):
    """The mask cropped to the film's content box and averaged to GRID x GRID: the share of
    each cell that is lung, in [0, 1]."""
    m = Image.open(mask_path).convert("L")
    x, y, w, h = box
    m = m.crop((x, y, x + w, y + h)).resize((192, 192), Image.BILINEAR)
    a = (np.asarray(m, dtype=np.float32) / 255.0).reshape(GRID, 8, GRID, 8).mean(axis=(1, 3))
    return a


def load(args):
    split = {r["file"]: r["split"] for r in csv.DictReader(open(args.split, newline=""))}
    boxes = content_boxes(args.pre)
    out = {"train": [], "val": [], "test": []}
    for r in csv.DictReader(open(os.path.join(args.data, "masks.csv"), newline="")):
        f = r["file"]
        img = np.asarray(Image.open(os.path.join(args.pre, "whole", f + ".png")), dtype=np.uint8)
        out[split[f]].append((f, r["kind"], img, mask_target(os.path.join(args.data, r["mask"]), boxes[f])))
    return out


def tensors(items):
    x = torch.from_numpy(np.stack([i[2] for i in items])).unsqueeze(1)
    y = torch.from_numpy(np.stack([i[3] for i in items])).unsqueeze(1)
    return x, y


def augment(x_u8, y, gen):
    """The same random zoom, aspect, shift, rotation and flip for a film and its mask, then the
    classifier's console processing, exposure changes and noise on the film alone. Zoom goes
    out to 0.55 so that the lungs can fill a small part of the frame, as in a child's film or a
    whole-body exposure."""
    b = x_u8.shape[0]
    u = lambda *s: torch.rand(*s, generator=gen)
    x_u8 = process_like_another_hospital(x_u8, 0.3, gen)
    x_u8 = clahe_like_another_hospital(x_u8, 0.3, gen)
    x = x_u8.float() / 255.0
    scale = 0.55 + 0.65 * u(b)
    aspect = torch.exp((u(b) - 0.5) * 0.4)
    angle = (u(b) - 0.5) * math.radians(24)
    flip = torch.where(u(b) < 0.5, -1.0, 1.0)
    tx, ty = (u(b) - 0.5) * 0.3, (u(b) - 0.5) * 0.3
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = scale * aspect.sqrt(), scale / aspect.sqrt()
    theta = torch.stack([torch.stack([cos * sx * flip, -sin * sy, tx], 1), torch.stack([sin * sx * flip, cos * sy, ty], 1)], 1)
    fill = u(b).view(b, 1, 1, 1)
    grid = affine_grid(theta, 192)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = F.grid_sample(torch.ones_like(x), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = warped + (1 - inside) * fill
    y = F.grid_sample(y, affine_grid(theta, GRID), mode="bilinear", padding_mode="zeros", align_corners=False)
    gamma = torch.exp((u(b) - 0.5) * 0.8).view(b, 1, 1, 1)
    x = x.clamp(1e-4, 1).pow(gamma)
    x = (x - 0.5) * (0.7 + 0.6 * u(b)).view(b, 1, 1, 1) + 0.5
    x = x + torch.randn(x.shape, generator=gen) * 0.02 * u(b).view(b, 1, 1, 1)
    return x.clamp(0, 1), y


def dice(p, y, eps=1e-6):
    """Soft Dice per film of probabilities `p` against target shares `y`, [B]."""
    inter = (p * y).flatten(1).sum(1)
    return (2 * inter + eps) / (p.flatten(1).sum(1) + y.flatten(1).sum(1) + eps)


@torch.no_grad()
def predict(net, x_u8, mean, std):
    net.eval()
    return torch.sigmoid(net(normalise(x_u8.float() / 255.0, mean, std)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_args(ap)
    ap.add_argument("--out", default="model")
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    seed_everything(SEED)
    torch.set_num_threads(args.threads)
    params = json.load(open(os.path.join(args.pre, "preprocess.json")))
    mean, std = params["mean"], params["std"]
    data = load(args)
    xtr, ytr = tensors(data["train"])
    xva, yva = tensors(data["val"])
    print(f"lung masks: train {len(xtr)} val {len(xva)} test {len(data['test'])}", flush=True)
    net = LungNet()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = math.ceil(len(xtr) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(SEED)
    best, started = None, time.time()
    for epoch in range(1, args.epochs + 1):
        net.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for i in range(0, len(perm), args.batch):
            idx = perm[i : i + args.batch]
            xb, yb = augment(xtr[idx], ytr[idx], gen)
            logits = net(normalise(xb, mean, std))
            loss = F.binary_cross_entropy_with_logits(logits, yb) + (1 - dice(torch.sigmoid(logits), yb)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        val_dice = float(dice(predict(net, xva, mean, std), yva).mean())
        if best is None or val_dice > best[0]:
            best = (val_dice, epoch, {k: v.clone() for k, v in net.state_dict().items()})
        if epoch % 10 == 0 or epoch == args.epochs:
            print(f"epoch {epoch:3d} loss {total / len(xtr):.4f} val dice {val_dice:.4f} [{time.time() - started:.0f}s]", flush=True)
    val_dice, best_epoch, state = best
    net.load_state_dict(state)
    net.eval()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "lungs.onnx")
    torch.onnx.export(Exported(net).eval(), (torch.zeros(1, 1, 192, 192),), path, input_names=["image"], output_names=["lungs"], opset_version=17, dynamo=False, do_constant_folding=True)
    import hashlib

    card = {
        "name": "covid-xray-lungs",
        "version": "1.0.0",
        "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
        "input": {"size": 192, "preprocess": params["version"].replace("-lungbox", ""), "mean": mean, "std": std},
        "output": {"grid": GRID, "meaning": "P(lung) per cell of 8x8 input pixels"},
        "training": {
            "masks": {k: len(v) for k, v in data.items()},
            "epochs": args.epochs,
            "best_epoch": best_epoch,
            "val_dice": val_dice,
            "seconds": round(time.time() - started),
            "threads": args.threads,
            "torch": torch.__version__,
        },
    }
    json.dump(card, open(os.path.join(args.out, "lungs.json"), "w"), indent=2)
    print(f"best epoch {best_epoch}, validation Dice {val_dice:.4f}; wrote {path}")


if __name__ == "__main__":
    main()
