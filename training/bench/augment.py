"""Benchmark and check the training augmentation against its straightforward form.

Three steps of the augmentation are written for speed without changing one bit of their
output, so that the committed training command still reproduces model/xray.onnx:
- `affine_grid`: three multiply-adds per position instead of `F.affine_grid`'s batched
  matrix product;
- `add_noise`: the sensor noise added only to the quarter of films that get it;
- `clahe_like_another_hospital`: one `clahe` call per tile count instead of one per film.

This script runs the augmentation of `--epochs` epochs twice from the same seed, once with
each step in its straightforward form (below) and once as train.py has it, in alternating
order, and reports the time of each part per epoch and whether every batch is bit for bit
equal. It exits non-zero if any batch differs. Bit-equality holds on the CPU and PyTorch
build where it was checked (AMD EPYC, torch in requirements.txt); elsewhere, run this first.

    .venv/bin/python training/bench/augment.py --epochs 3
"""

import argparse
import sys
import time

import torch
import torch.nn.functional as F

import os
# The pipeline modules (train.py, evaluate.py) live one folder up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train as T  # noqa: E402


def straightforward_affine_grid(theta, s):
    return F.affine_grid(theta, (len(theta), 1, s, s), align_corners=False)


def straightforward_add_noise(x, chosen, noise, level):
    return x + chosen.float().view(-1, 1, 1, 1) * noise * 0.03 * level


def straightforward_clahe_like(x_u8, p, gen):
    if p <= 0:
        return x_u8
    chosen = (torch.rand(x_u8.shape[0], generator=gen) < p).nonzero().flatten().tolist()
    x = x_u8.clone()
    for i in chosen:
        tiles = (4, 6, 8, 12)[int(torch.randint(4, (1,), generator=gen))]
        clip = 1.5 + 3.5 * float(torch.rand(1, generator=gen))
        x[i : i + 1] = (T.clahe(x_u8[i : i + 1].float() / 255, tiles, clip) * 255).round().to(torch.uint8)
    return x


FAST = {"affine_grid": T.affine_grid, "add_noise": T.add_noise, "clahe_like_another_hospital": T.clahe_like_another_hospital}
PLAIN = {
    "affine_grid": straightforward_affine_grid,
    "add_noise": straightforward_add_noise,
    "clahe_like_another_hospital": straightforward_clahe_like,
}


def one_epoch(forms, xtr, ytr, crops, p_crop, gen, batch, times):
    """The data side of train.py's loop (default options), with the given forms of the steps."""
    for name, fn in forms.items():
        setattr(T, name, fn)
    out = []
    perm = torch.randperm(len(ytr), generator=gen)
    for i in range(0, len(perm), batch):
        idx = perm[i : i + batch]
        t0 = time.perf_counter()
        x = T.frame(xtr[idx], crops[idx], ytr[idx], p_crop, gen)
        t1 = time.perf_counter()
        x = T.process_like_another_hospital(x, 0.5, gen)
        t2 = time.perf_counter()
        x = T.clahe_like_another_hospital(x, 0.5, gen)
        t3 = time.perf_counter()
        x = T.augment(x, gen)
        t4 = time.perf_counter()
        for part, dt in zip(("frame", "process", "clahe", "augment"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[part] = times.get(part, 0.0) + dt
        out.append(x)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    T.data_args(ap)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=T.MODEL_SEED)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = T.load_split(args.data, args.pre, args.split)["train"]
    xtr, ytr = T.load_images(rows)
    crops = T.load_crops(rows, args.pre, 4)
    p_crop = torch.tensor([0.0, 0.5])  # train.py's defaults: --crop-covid 0, --crop-normal 0.5
    gens = {"plain": torch.Generator().manual_seed(args.seed), "fast": torch.Generator().manual_seed(args.seed)}
    times = {"plain": {}, "fast": {}}
    differ = 0
    for epoch in range(args.epochs):
        # Alternate which form goes first, so a slow spell of the machine hits both.
        order = ("plain", "fast") if epoch % 2 == 0 else ("fast", "plain")
        got = {k: one_epoch(PLAIN if k == "plain" else FAST, xtr, ytr, crops, p_crop, gens[k], args.batch, times[k]) for k in order}
        differ += sum(not torch.equal(a, b) for a, b in zip(got["plain"], got["fast"]))
    for name, fn in FAST.items():
        setattr(T, name, fn)
    print(f"seconds per epoch ({args.epochs} epochs of {len(ytr)} films, batch {args.batch}, {args.threads} threads)")
    print(f"{'part':10s} {'plain':>8s} {'fast':>8s} {'ratio':>6s}")
    for part in ("frame", "process", "clahe", "augment"):
        p, f = times["plain"][part] / args.epochs, times["fast"][part] / args.epochs
        print(f"{part:10s} {p:8.3f} {f:8.3f} {f / p:6.2f}")
    p, f = (sum(times[k].values()) / args.epochs for k in ("plain", "fast"))
    print(f"{'total':10s} {p:8.3f} {f:8.3f} {f / p:6.2f}")
    batches = args.epochs * ((len(ytr) + args.batch - 1) // args.batch)
    print(f"batches bit for bit equal: {batches - differ} of {batches}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
