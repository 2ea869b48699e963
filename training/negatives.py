"""Inputs that are not frontal chest X-rays, for the check that refuses them (`chest_check.py`).

    python training/negatives.py --data ../shared/data/cxr --ood ../shared/data/ood --out build/negatives

Writes OUT/images/<kind>/... and OUT/manifest.csv (`file,kind,group,split`), rebuilt the same
on every machine without the network (a fixed seed, scikit-image's bundled samples):

- `ct_axial`, `ct_coronal`, `lateral`: the real films of ../shared/data/ood (ieee8023), split
  by their patient `group`, so no patient's slices are on both sides;
- `photo`: scikit-image's sample photographs and micrographs (astronaut, camera, cat, coffee,
  coins, moon, retina, cells, ...), each in a few crops, turns and tones; one group per photo;
- `drawing`: line, bar, scatter and pie charts, histograms, tables and pages of text, shapes,
  gradients, noise, checkerboards and phantoms, in gray and in colour, drawn here; one group
  per drawing;
- `rotated`: pool films turned 90 or 270 degrees or upside down, which are not frontal films
  as acquired; each keeps its patient's pool split (training/split.csv), so a held-out
  patient's films are held out here too.

The groups that are new here are dealt per kind, in the order of a hash of their names:
six to training, two to validation, two to test of every ten, so that every kind has held-out
groups to score.
"""
import argparse
import csv
import hashlib
import io
import os
import shutil
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter, ImageOps  # noqa: E402

SEED = 7
PHOTOS = [
    "astronaut", "brick", "camera", "cat", "clock", "coffee", "coins", "colorwheel", "grass",
    "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page",
    "rocket", "text", "retina", "cell", "microaneurysms", "binary_blobs", "shepp_logan_phantom",
    "checkerboard",
]
WORDS = "lung chest x-ray figure table result patient normal covid pneumonia score model data sample method".split()


def deal(rows):
    """Fills in the split of every row without one: its kind's groups in hash order, six to
    train, two to val, two to test of every ten."""
    by_kind = {}
    for r in rows:
        if r["split"] is None:
            by_kind.setdefault(r["kind"], set()).add(r["group"])
    split = {}
    for kind, groups in by_kind.items():
        ordered = sorted(groups, key=lambda g: hashlib.sha256(f"{SEED}:{g}".encode()).hexdigest())
        for i, g in enumerate(ordered):
            split[(kind, g)] = "train" if i % 10 < 6 else "val" if i % 10 < 8 else "test"
    for r in rows:
        if r["split"] is None:
            r["split"] = split[(r["kind"], r["group"])]


def to_u8(a):
    a = np.asarray(a, dtype=np.float64)
    if a.max() <= 1.0:
        a = a * 255.0
    return np.clip(a, 0, 255).astype(np.uint8)


def photos(rng):
    """(group, image) for each variant of each bundled sample image."""
    import skimage.data as data

    for name in PHOTOS:
        a = to_u8(getattr(data, name)())
        if a.ndim == 3 and a.shape[2] == 4:
            a = a[..., :3]
        base = Image.fromarray(a)
        for v in range(8):
            img = base
            w, h = img.size
            if v > 0:
                # A random crop of 60-100% of each side, sometimes turned or mirrored, toned.
                cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
                x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                img = img.crop((x0, y0, x0 + cw, y0 + ch))
                if rng.random() < 0.3:
                    img = img.rotate(90 * int(rng.integers(1, 4)), expand=True)
                if rng.random() < 0.5:
                    img = ImageOps.mirror(img)
                if rng.random() < 0.5:
                    img = img.convert("L")
                if rng.random() < 0.3:
                    img = ImageOps.invert(img.convert("RGB"))
            yield f"photo-{name}", f"{name}-{v}", img


def chart(rng, kind, colour):
    fig, ax = plt.subplots(figsize=(rng.uniform(3, 6), rng.uniform(3, 6)), dpi=80)
    style = {} if colour else {"color": "black"}
    x = np.linspace(0, 10, 50)
    if kind == "line":
        for _ in range(int(rng.integers(1, 4))):
            ax.plot(x, np.sin(x * rng.uniform(0.3, 2)) * rng.uniform(1, 5) + rng.normal(0, 0.3, x.size), **style)
    elif kind == "bar":
        n = int(rng.integers(3, 12))
        ax.bar(range(n), rng.uniform(0, 10, n), **style)
    elif kind == "scatter":
        ax.scatter(rng.normal(0, 1, 200), rng.normal(0, 1, 200), s=6, **({} if colour else {"c": "black"}))
    elif kind == "hist":
        ax.hist(rng.normal(0, 1, 1000), bins=int(rng.integers(10, 40)), **style)
    elif kind == "pie":
        ax.pie(rng.uniform(1, 5, int(rng.integers(3, 7))), colors=None if colour else ["0.2", "0.4", "0.6", "0.8", "0.5", "0.3"])
    elif kind == "roc":
        fpr = np.sort(rng.uniform(0, 1, 30))
        ax.plot(np.r_[0, fpr, 1], np.r_[0, np.sqrt(fpr), 1], **style)
        ax.plot([0, 1], [0, 1], "--", color="gray")
    ax.set_title(" ".join(rng.choice(WORDS, 3)))
    ax.set_xlabel(str(rng.choice(WORDS)))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white" if rng.random() < 0.8 else "black")
    plt.close(fig)
    buf.seek(0)
    img = Image.open(buf).convert("RGB")
    return img if colour else img.convert("L")


def text_page(rng, colour):
    w, h = int(rng.integers(300, 700)), int(rng.integers(300, 700))
    bg, fg = (255, 0) if rng.random() < 0.8 else (0, 255)
    img = Image.new("L", (w, h), bg)
    d = ImageDraw.Draw(img)
    y = 10
    table = rng.random() < 0.3
    while y < h - 20:
        if table:
            for c in range(0, w, w // 4):
                d.text((c + 5, y), f"{rng.uniform(0, 1):.3f}", fill=fg)
            d.line((0, y + 14, w, y + 14), fill=fg)
        else:
            d.text((10, y), " ".join(rng.choice(WORDS, int(rng.integers(3, 10)))), fill=fg)
        y += int(rng.integers(14, 24))
    return ImageOps.colorize(img, "navy", "lightyellow") if colour else img


def shapes(rng, colour):
    w, h = int(rng.integers(200, 600)), int(rng.integers(200, 600))
    img = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(0, 256, 3)) if colour else (int(rng.integers(0, 256)),) * 3)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 15))):
        box = sorted(rng.integers(0, w, 2).tolist()), sorted(rng.integers(0, h, 2).tolist())
        fill = tuple(int(c) for c in rng.integers(0, 256, 3)) if colour else (int(rng.integers(0, 256)),) * 3
        xy = (box[0][0], box[1][0], box[0][1], box[1][1])
        [d.ellipse, d.rectangle, d.line][int(rng.integers(0, 3))](xy, fill=fill)
    return img


def texture(rng, kind, colour):
    w, h = int(rng.integers(200, 600)), int(rng.integers(200, 600))
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    if kind == "gradient":
        a = np.cos(rng.uniform(0, 6.3)) * xx + np.sin(rng.uniform(0, 6.3)) * yy
        if rng.random() < 0.5:
            a = np.hypot(xx - rng.uniform(0, 1), yy - rng.uniform(0, 1))
    elif kind == "noise":
        a = rng.normal(0, 1, (h, w))
        if rng.random() < 0.5:
            a = np.asarray(Image.fromarray(to_u8((a - a.min()) / np.ptp(a))).filter(ImageFilter.GaussianBlur(rng.uniform(1, 8))), dtype=np.float64)
    else:  # checker / stripes
        f = rng.uniform(4, 30)
        a = np.sign(np.sin(xx * f * 6.28)) * (np.sign(np.sin(yy * f * 6.28)) if rng.random() < 0.5 else 1)
    a = (a - a.min()) / max(np.ptp(a), 1e-9)
    g = Image.fromarray(to_u8(a))
    return ImageOps.colorize(g, tuple(int(c) for c in rng.integers(0, 256, 3)), tuple(int(c) for c in rng.integers(0, 256, 3))) if colour else g


def drawings(rng, n):
    makers = ["line", "bar", "scatter", "hist", "pie", "roc", "text", "shapes", "gradient", "noise", "checker"]
    for i in range(n):
        kind = makers[i % len(makers)]
        colour = rng.random() < 0.5
        if kind in ("line", "bar", "scatter", "hist", "pie", "roc"):
            img = chart(rng, kind, colour)
        elif kind == "text":
            img = text_page(rng, colour)
        elif kind == "shapes":
            img = shapes(rng, colour)
        else:
            img = texture(rng, kind, colour)
        yield f"drawing-{i}", f"{kind}-{i}", img


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cxr")
    ap.add_argument("--ood", default="../shared/data/ood")
    ap.add_argument("--split", default="training/split.csv")
    ap.add_argument("--out", default="build/negatives")
    ap.add_argument("--drawings", type=int, default=440)
    ap.add_argument("--rotated", type=int, default=480, help="pool films turned, about a tenth of them per kind of turn")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(SEED)
    images = os.path.join(args.out, "images")
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    rows = []

    def save(kind, group, name, img, split=None):
        rel = f"images/{kind}/{name}.png"
        os.makedirs(os.path.join(args.out, "images", kind), exist_ok=True)
        img.save(os.path.join(args.out, rel))
        rows.append({"file": rel, "kind": kind, "group": group, "split": split})

    for r in csv.DictReader(open(os.path.join(args.ood, "manifest.csv"), newline="")):
        img = Image.open(os.path.join(args.ood, r["file"]))
        img.load()
        name = os.path.splitext(os.path.basename(r["file"]))[0]
        save(r["kind"], f"ood-{r['group']}", name, img)
    for group, name, img in photos(rng):
        save("photo", group, name, img)
    for group, name, img in drawings(rng, args.drawings):
        save("drawing", group, name, img)
    split = {r["file"]: r["split"] for r in csv.DictReader(open(args.split, newline=""))}
    pool = [r for r in csv.DictReader(open(os.path.join(args.data, "manifest.csv"), newline=""))]
    picks = rng.choice(len(pool), size=min(args.rotated, len(pool)), replace=False)
    for j, i in enumerate(sorted(picks)):
        r = pool[i]
        img = Image.open(os.path.join(args.data, r["file"])).convert("L")
        turn = [Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_180][j % 3]
        name = os.path.splitext(r["file"].replace("images/", "").replace("/", "-"))[0]
        save("rotated", f"pool-{r['group']}", f"{name}-{turn.name.lower()}", img.transpose(turn), split[r["file"]])

    deal(rows)
    with open(os.path.join(args.out, "manifest.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "kind", "group", "split"])
        w.writeheader()
        w.writerows(rows)
    counts = {}
    for r in rows:
        counts[(r["kind"], r["split"])] = counts.get((r["kind"], r["split"]), 0) + 1
    for k in sorted({k for k, _ in counts}):
        print(k, {s: counts.get((k, s), 0) for s in ("train", "val", "test")})


if __name__ == "__main__":
    sys.exit(main())
