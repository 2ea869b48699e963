"""Do the heatmaps sit on the lungs? Class activation maps of held-out films against their
lung masks, through the served code.

    python training/probes/heatmaps.py --data ../shared/data/cxr --pre build/pre \\
        [--xray target/release/xray] [--grid model/heatmaps.png] [--json build/heatmaps.json]

For every test-split film with a lung mask (`masks.csv`: hand-drawn for the OpenIST normals,
lungVAE's for ieee8023 films), `xray predict --json --heatmap` gives the map of the evidence
for the answered label (the served code, the served model: `XRAY_MODEL_PATH` applies). The
mask is cropped to the film's content box (`boxes.csv` of `xray preprocess`, the same
trimming) and averaged onto the map's grid, so each cell has its share of lung. The figure:
the share of the positive evidence that falls on lung, against the share of the grid that is
lung (what a map blind to the lungs would score). A picture of the maps, the lungs outlined,
goes to `--grid` for the model card.
"""
import argparse
import base64
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict

import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def lung_share(mask_path, box, size, grid):
    """The mask cropped to `box`, resized to the model input and averaged onto the grid."""
    m = Image.open(mask_path).convert("L")
    x, y, w, h = box
    m = m.crop((x, y, x + w, y + h)).resize((size, size), Image.BILINEAR)
    gw, gh = grid
    a = np.asarray(m, dtype=np.float32) / 255.0
    return a.reshape(gh, size // gh, gw, size // gw).mean(axis=(1, 3)), np.asarray(m) > 127


def measure(data, pre, split_csv, xray, grid=None, env=None):
    """The figures (and the picture at `grid`): {"summary", "films", "table"}."""
    args = argparse.Namespace(data=data, pre=pre, split=split_csv, xray=xray, grid=grid)
    return run(args, env)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cxr")
    ap.add_argument("--pre", default="build/pre", help="an `xray preprocess` output of the pool (for boxes.csv)")
    ap.add_argument("--split", default="training/split.csv")
    ap.add_argument("--xray", default=os.path.join(ROOT, "target/release/xray"), help="the xray binary (default: the release build)")
    ap.add_argument("--grid", help="write a picture of held-out maps here (PNG)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    result = run(args)
    print("\n".join(result["table"]))
    if args.json:
        json.dump(result, open(args.json, "w"), indent=1)


def run(args, env=None):
    split = {r["file"]: r["split"] for r in csv.DictReader(open(args.split, newline=""))}
    label = {r["file"]: (r["label"], r["source"]) for r in csv.DictReader(open(os.path.join(args.data, "manifest.csv"), newline=""))}
    boxes = {r["file"]: tuple(int(r[k]) for k in ("x", "y", "w", "h")) for r in csv.DictReader(open(os.path.join(args.pre, "boxes.csv"), newline=""))}
    masks = [m for m in csv.DictReader(open(os.path.join(args.data, "masks.csv"), newline="")) if split.get(m["file"]) == "test"]
    files = [os.path.join(args.data, m["file"]) for m in masks]
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([args.xray, "predict", "--json", "--heatmap", tmp, *files], check=True, capture_output=True, text=True, env=env).stdout
    answers = {os.path.relpath(a["path"], args.data): a for a in map(json.loads, out.splitlines())}

    rows, by = [], defaultdict(list)
    for m in masks:
        f = m["file"]
        a = answers[f]
        h = a["heatmap"]
        gw, gh = h["grid"]["width"], h["grid"]["height"]
        sign = 1.0 if h["label"] == "covid" else -1.0
        evidence = np.clip(sign * np.asarray(h["grid"]["values"], dtype=np.float64).reshape(gh, gw), 0, None)
        share, lungs = lung_share(os.path.join(args.data, m["mask"]), boxes[f], h["size"], (gw, gh))
        on_lungs = float((evidence * share).sum() / evidence.sum()) if evidence.sum() > 0 else float("nan")
        truth, source = label[f]
        row = {"file": f, "source": source, "truth": truth, "answer": a["label"], "on_lungs": on_lungs, "lung_area": float(share.mean()), "mask": m["kind"]}
        rows.append((row, h, lungs))
        by[(source, a["label"])].append(row)

    table = ["| collection | answered | films | evidence for the answer on lung | lung share of the image |", "|---|---|---|---|---|"]
    summary = {}
    for (source, answered), rs in sorted(by.items()):
        on = np.nanmean([r["on_lungs"] for r in rs])
        area = np.mean([r["lung_area"] for r in rs])
        summary[f"{source}/{answered}"] = {"n": len(rs), "on_lungs": on, "lung_area": area}
        table.append(f"| {source} | {answered} | {len(rs)} | {on:.2f} | {area:.2f} |")
    on_all = np.nanmean([r["on_lungs"] for r, _, _ in rows])
    area_all = np.mean([r["lung_area"] for r, _, _ in rows])
    table.append(f"| all | | {len(rows)} | {on_all:.2f} | {area_all:.2f} |")
    summary["all"] = {"n": len(rows), "on_lungs": on_all, "lung_area": area_all}
    if args.grid:
        # Four films each of COVID and normal truth, the first in file order: the lungs
        # outlined in cyan over the served overlay.
        picks = [x for x in rows if x[0]["truth"] == "covid"][:4] + [x for x in rows if x[0]["truth"] == "normal"][:4]
        size = picks[0][1]["size"]
        sheet = Image.new("RGB", (size * 4, (size + 16) * 2), "white")
        for i, (row, h, lungs) in enumerate(picks):
            img = Image.open(io.BytesIO(base64.b64decode(h["png"]))).convert("RGB")
            inner = lungs & np.roll(lungs, 1, 0) & np.roll(lungs, -1, 0) & np.roll(lungs, 1, 1) & np.roll(lungs, -1, 1)
            edge = lungs & ~inner
            px = np.asarray(img).copy()
            px[edge] = (0, 230, 255)
            x0, y0 = size * (i % 4), (size + 16) * (i // 4)
            sheet.paste(Image.fromarray(px), (x0, y0))
            ImageDraw.Draw(sheet).text((x0 + 4, y0 + size + 2), f"{row['truth']} -> {row['answer']}, {row['on_lungs']:.2f} on lung", fill="black")
        sheet.save(args.grid)
    return {"summary": summary, "films": [r for r, _, _ in rows], "table": table}


if __name__ == "__main__":
    sys.exit(main())
