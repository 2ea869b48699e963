"""Evaluate the exported ONNX model on the held-out patients and write the model card.

Runs the shipped file through onnxruntime (one thread), on the images `xray preprocess` wrote,
so the figures are those of the artifact the service embeds. Writes:
- model/model.json (machine-readable card) and model/README.md (the card people read);
- model/roc.png, model/confusion.png, model/reliability.png, model/mistakes.png, and
  model/lungs.png (the lung finder on held-out films);
- tests/fixtures/xrays/ (held-out X-rays with permissive licences) and
  tests/fixtures/expected.json (onnxruntime's probabilities for them, for the Rust tests).

    python training/evaluate.py --pre build/pre --data ../shared/data/cxr --model model \
        [--holdout build/holdout/holdout.json]

With `--holdout`, the card gains the collection-held-out table that holdout.py measured, each
collection scored at this model's threshold.
"""
import argparse
import csv
import hashlib
import json
import os
import shutil
import sys
from collections import Counter, defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from split import SEED  # noqa: E402  (the split's seed, which the card names; also the bootstrap's)
from train import LABELS, clahe, crop_path, data_args, load_split, roc_auc, unsharp  # noqa: E402

NAME = "covid-xray-cnn"
VERSION = "5.0.0"  # 5.0.0: the plain recipe (train.py --recipe plain): unequalised whole films standardised by the network, plain_augment, 40 epochs, chosen because 4.0.0's recipe read hospitals outside the pool far worse than it (docs/research/5.x.md). 4.0.0: 3.2.1's recipe trained on pool v2, every collection in (docs/research/adoption-log.md, run 38); the lung-field and standardised recipes were candidates not adopted (docs/research/4.x.md). Before: 2: patchify-stem network, periphery masking, equal-error threshold, no mirror averaging; .1: 200 epochs, live-or-average weights by validation AUC, Platt scaling; .2: zoom 0.6-1.2 against the field-of-view shortcut; 3: k2pool network (2x2 stride-2 convolution at 48 px, within 2x of onnxruntime in tract) with normal films shown tighter half of the time, against the framing shortcut; .1: half the films of both classes given a random console-style unsharp mask or softening, against the processing shortcut (NIH normals are soft films); .2: half the films of both classes also given a random CLAHE, against the same shortcut as viewers' adaptive equalisation produces it; .2.1: 3.2.0's weights and outputs, bit for bit, with each max-pool exported as rows then columns (train.split_max_pools), which tract runs faster
PERMISSIVE = ("CC BY 4.0", "NIH ChestX-ray14: unrestricted")
FIXTURES_PER_CLASS = 12
# The card's description of each train.py --arch.
NETWORKS = {
    "pool": "a 4x4 stride-4 patchify stem, then 3x3 convolutions with batch norm (folded), ReLU\nand max-pool, global average pooling and one linear layer; about 0.5M parameters",
    "k2": "a 4x4 stride-4 patchify stem (192 to 48 px), 2x2 stride-2 convolutions down to 24\nand to 12 px, 3x3 convolutions with batch norm (folded) and ReLU, one max-pool, global\naverage pooling and one linear layer; about 0.6M parameters",
    "probe": "a 3x3 stride-2 stem at full resolution, then 3x3 convolutions with batch norm\n(folded), ReLU and max-pool to 1/16 of the input, widths 16 to 256, global average pooling\nand one linear layer; about 0.54M parameters (the plain CNN probe's network)",
    "k2pool": "a 4x4 stride-4 patchify stem (192 to 48 px), a 2x2 stride-2 convolution down to\n24 px, then 3x3 convolutions with batch norm (folded), ReLU and max-pool (each 2x2 pool\nexported as a 2x1 pool then a 1x2 pool, the same maxima, which tract runs faster), global\naverage pooling and one linear layer; about 0.5M parameters",
}
CROPS_PER_FILM = 4  # training/run.sh: xray preprocess --crops 4


def inference_sentence(training):
    """How one prediction is made: one network or the mean of an ensemble's, with or without
    the mirror image (train.py --ensemble, --tta)."""
    members = training.get("ensemble")
    nets = f"the mean logit margin of {len(members)} such networks trained alike from seeds {', '.join(str(m['seed']) for m in members)}" if members else "one such network"
    mirror = "each on the film and on its mirror image" if training.get("tta") else "no mirror-image averaging"
    return f"At inference: {nets}, {mirror}."


def trained_sentence(training):
    """Epochs, time and the chosen epoch(s), for one run or each member of an ensemble."""
    members = training.get("ensemble")
    if members:
        each = "; ".join(f"seed {m['seed']}: {m['seconds']} s, best epoch {m['best_epoch']} ({m['best_weights']} weights)" for m in members)
        return f"{training['epochs']} epochs per member on {training['threads']} CPU threads ({training['seconds']} s in all; {each}) by validation AUC{candidate_epochs(training)}"
    return f"{training['epochs']} epochs on {training['threads']} CPU threads\n({training['seconds']} s), best epoch {training['best_epoch']} ({training['best_weights']} weights) by validation AUC{candidate_epochs(training)}"


def candidate_epochs(training):
    """', of epochs 101-200' where only those were validated (train.py --select-from)."""
    first = training.get("candidates_from_epoch", 1)
    return f" of epochs {first}-{training['epochs']}" if first > 1 else ""


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def open_model(folder):
    """A model folder train.py wrote: (onnxruntime session, training.json, mean, std, threshold)."""
    training = json.load(open(os.path.join(folder, "training.json")))
    params = training["preprocess"]
    return session(os.path.join(folder, "xray.onnx")), training, params["mean"], params["std"], training["threshold"]


def p_covid_of(sess, rows, mean, std):
    out = []
    for r in rows:
        x = np.asarray(Image.open(r["pre"]), dtype=np.float32)[None, None] / 255.0
        x = ((x - mean) / std).astype(np.float32)
        out.append(float(sess.run(None, {"image": x})[0][0, 0]))
    return np.array(out)


def load_x(rows, mean, std):
    x = np.stack([np.asarray(Image.open(r["pre"]), dtype=np.float32) for r in rows])[:, None] / 255.0
    return ((x - mean) / std).astype(np.float32)


def run_batch(sess, x):
    return np.array([float(sess.run(None, {"image": x[i : i + 1]})[0][0, 0]) for i in range(len(x))])


def hidden_region_auc(sess, x, is_covid, mean, std):
    """Shortcut probes: ROC-AUC when the lungs are hidden, and when only the lungs are shown.

    A model that reads lungs should fall towards 0.5 with the centre hidden; a model that reads
    borders, corners and markers keeps its AUC there. Hidden pixels are set to mid-gray, the
    mean of an equalised image.
    """
    s = x.shape[-1]
    lo, hi = int(s * 0.2), int(s * 0.8)
    centre_hidden = x.copy()
    centre_hidden[:, :, lo:hi, lo:hi] = (0.5 - mean) / std
    frame_hidden = np.full_like(x, (0.5 - mean) / std)
    frame_hidden[:, :, lo:hi, lo:hi] = x[:, :, lo:hi, lo:hi]
    return {
        "centre_60pct_hidden": roc_auc(run_batch(sess, centre_hidden), is_covid),
        "frame_hidden_centre_60pct_shown": roc_auc(run_batch(sess, frame_hidden), is_covid),
    }


def field_of_view_probe(sess, x, p, is_covid, threshold):
    """The central 80% of each film, resized back to the input size: what changes?

    The collections differ in field of view: COVID films are often tight crops from
    publications, NIH normals show neck, shoulders and abdomen. A model that learned that
    calls a tightly framed normal film COVID. Returns how many labels of each class flip, the
    mean change of P(covid), and the ROC-AUC on the crops.
    """
    s = x.shape[-1]
    lo, hi = round(s * 0.1), round(s * 0.9)
    crops = F.interpolate(torch.from_numpy(x[:, :, lo:hi, lo:hi].copy()), size=(s, s), mode="bilinear", align_corners=False)
    q = run_batch(sess, crops.numpy())
    flipped = (q >= threshold) != (p >= threshold)
    return {
        "normal_called_covid": int((flipped & ~is_covid).sum()),
        "covid_called_normal": int((flipped & is_covid).sum()),
        "normal": int((~is_covid).sum()),
        "covid": int(is_covid.sum()),
        "mean_abs_change": float(np.abs(q - p).mean()),
        "roc_auc": roc_auc(q, is_covid),
    }


def p_transformed(sess, x, transform, mean, std):
    """P(covid) of normalised films `x` after `transform`, which maps a torch batch in [0, 1]
    (the preprocessed films) to another."""
    y = transform(torch.from_numpy(x * std + mean).clamp(0, 1))
    return run_batch(sess, ((y - mean) / std).numpy().astype(np.float32))


def processing_probe(sess, x, p, is_covid, threshold, mean, std, equalised=True):
    """The same films as another hospital's console would have processed them: what flips?

    The NIH normals, most of the pool's adult normals, are soft films, low in local contrast; modern
    consoles sharpen films with a large-kernel unsharp mask. A model that learned "contrasty
    means COVID" calls a sharpened normal film COVID. Each film is given `train.unsharp`
    (sigma 8 pixels, amount 1: sharpened; sigma 24, amount -0.5: softened) and, separately,
    `train.clahe` (8x8 tiles, clip 4), each equalised again as `xray preprocess` would
    (not on the unequalised paths, `equalised=False`, whose networks standardise each film);
    returns how many normals the sharpening and CLAHE turn into COVID, how many COVID films
    the softening turns normal, the mean changes and the AUCs.
    """
    n = len(x)
    eq = equalised
    sharp = p_transformed(sess, x, lambda y: unsharp(y, [1.0] * n, [8.0] * n, eq), mean, std)
    soft = p_transformed(sess, x, lambda y: unsharp(y, [-0.5] * n, [24.0] * n, eq), mean, std)
    local = p_transformed(sess, x, lambda y: clahe(y, 8, 4.0, eq), mean, std)
    was = p >= threshold
    return {
        "normal": int((~is_covid).sum()),
        "covid": int(is_covid.sum()),
        "sharpened_normal_called_covid": int(((sharp >= threshold) & ~was & ~is_covid).sum()),
        "sharpened_mean_change_normal": float((sharp - p)[~is_covid].mean()),
        "sharpened_roc_auc": roc_auc(sharp, is_covid),
        "softened_covid_called_normal": int(((soft < threshold) & was & is_covid).sum()),
        "softened_mean_change_covid": float((soft - p)[is_covid].mean()),
        "softened_roc_auc": roc_auc(soft, is_covid),
        # CLAHE (8x8 tiles, clip 4), the other local-contrast processing of viewers and
        # published pipelines; no training recipe denied it before --clahe.
        "clahe_normal_called_covid": int(((local >= threshold) & ~was & ~is_covid).sum()),
        "clahe_mean_change_normal": float((local - p)[~is_covid].mean()),
        "clahe_roc_auc": roc_auc(local, is_covid),
    }


def framing_probe(sess, rows, p, is_covid, threshold, pre_dir, mean, std):
    """Normal films framed tighter, through the serving preprocessing: how many read as COVID?

    `xray preprocess --crops` crops each *original* film to a box like the tight COVID crops
    of the pool (60-90% of the width, 55-85% of the height, upper centre) and then prepares
    it as serving would, trimming and equalisation included. These are the held-out films'
    own crops (`train.py --crop-normal` shows the training films' crops). None when the crops
    were not written.
    """
    normals = [i for i in range(len(rows)) if not is_covid[i]]
    crops = [{"pre": crop_path(pre_dir, rows[i]["file"], k)} for i in normals for k in range(CROPS_PER_FILM)]
    if not all(os.path.exists(c["pre"]) for c in crops):
        return None
    q = run_batch(sess, load_x(crops, mean, std)).reshape(len(normals), CROPS_PER_FILM)
    return {
        "normal": len(normals),
        "crops_per_film": CROPS_PER_FILM,
        "whole_called_covid": int((p[normals] >= threshold).sum()),
        "crops_called_covid": int((q >= threshold).sum()),
        "films_with_a_crop_called_covid": int((q >= threshold).any(axis=1).sum()),
        "mean_change": float((q - p[normals][:, None]).mean()),
        # The COVID films against the normals' tighter framings: the pool's COVID films are
        # mostly tight crops and its normals whole films, so plain ROC-AUC pays a model for
        # reading the framing. Here both sides are tight, and only what is inside the frame
        # separates them.
        "roc_auc_covid_vs_tighter_normals": roc_auc(
            np.concatenate([p[is_covid], q.ravel()]),
            np.concatenate([np.ones(int(is_covid.sum()), bool), np.zeros(q.size, bool)]),
        ),
    }


def occlusion_maps(sess, rows, p, is_covid, threshold, mean, std, out, data_dir):
    """Where the model looks: the drop in P(true class) when a patch is grayed, for 6 test films."""
    picks = [i for i in range(len(rows)) if is_covid[i]][:3] + [i for i in range(len(rows)) if not is_covid[i]][:3]
    x = load_x([rows[i] for i in picks], mean, std)
    s, patch, stride = x.shape[-1], 32, 16
    fig, axes = plt.subplots(2, 3, figsize=(9, 6.4))
    for ax, k, i in zip(axes.flat, range(len(picks)), picks):
        base = p[i] if is_covid[i] else 1 - p[i]
        n = (s - patch) // stride + 1
        heat = np.zeros((s, s))
        count = np.zeros((s, s))
        for yy in range(n):
            for xx in range(n):
                z = x[k : k + 1].copy()
                z[:, :, yy * stride : yy * stride + patch, xx * stride : xx * stride + patch] = (0.5 - mean) / std
                q = float(sess.run(None, {"image": z})[0][0, 0])
                q = q if is_covid[i] else 1 - q
                heat[yy * stride : yy * stride + patch, xx * stride : xx * stride + patch] += base - q
                count[yy * stride : yy * stride + patch, xx * stride : xx * stride + patch] += 1
        heat /= np.maximum(count, 1)
        ax.imshow(x[k, 0], cmap="gray")
        ax.imshow(np.clip(heat, 0, None), cmap="jet", alpha=0.4)
        ax.set_title(f"{rows[i]['label']} ({rows[i]['source']})\nP(covid)={p[i]:.2f}", fontsize=8)
        ax.axis("off")
    fig.suptitle("Occlusion sensitivity: red = hiding this patch lowers P(true class)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "attention.png"), dpi=90)
    plt.close(fig)


def metrics(p, is_covid, threshold):
    pred = p >= threshold
    tp = int((pred & is_covid).sum())
    fn = int((~pred & is_covid).sum())
    tn = int((~pred & ~is_covid).sum())
    fp = int((pred & ~is_covid).sum())
    sens = tp / max(tp + fn, 1)
    spec = tn / max(tn + fp, 1)
    prec = tp / max(tp + fp, 1)
    return {
        "n": int(len(p)),
        "confusion": {"covid_as_covid": tp, "covid_as_normal": fn, "normal_as_covid": fp, "normal_as_normal": tn},
        "accuracy": (tp + tn) / len(p),
        "balanced_accuracy": 0.5 * (sens + spec),
        "sensitivity": sens,
        "specificity": spec,
        "precision": prec,
        "f1": 2 * prec * sens / max(prec + sens, 1e-12),
        "roc_auc": roc_auc(p, is_covid),
        "ece": ece(p, is_covid),
    }


def ece(p, is_covid, bins=10):
    """Expected calibration error of P(covid): sum over equal-width bins of |mean p - fraction covid|, weighted."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / len(p) * abs(p[m].mean() - is_covid[m].mean())
    return float(total)


def bootstrap_ci(p, is_covid, groups, threshold, n=1000):
    """95% intervals by resampling patients (groups), not images."""
    rng = np.random.default_rng(SEED)
    by_group = defaultdict(list)
    for i, g in enumerate(groups):
        by_group[g].append(i)
    keys = list(by_group)
    stats = defaultdict(list)
    for _ in range(n):
        idx = np.concatenate([by_group[keys[k]] for k in rng.integers(0, len(keys), len(keys))])
        m = metrics(p[idx], is_covid[idx], threshold)
        for k in ("balanced_accuracy", "sensitivity", "specificity", "roc_auc"):
            stats[k].append(m[k])
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in stats.items()}


def plots(out, p, is_covid, threshold, m, rows, data_dir):
    # ROC
    order = np.argsort(-p)
    tps = np.cumsum(is_covid[order]) / is_covid.sum()
    fps = np.cumsum(~is_covid[order]) / (~is_covid).sum()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(np.r_[0, fps], np.r_[0, tps], lw=2, label=f"AUC {m['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.scatter([1 - m["specificity"]], [m["sensitivity"]], c="red", zorder=3, label=f"threshold {threshold:.2f}")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity (COVID-19)", title="ROC, held-out patients")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "roc.png"), dpi=110)
    plt.close(fig)
    # Confusion matrix
    c = m["confusion"]
    mat = np.array([[c["covid_as_covid"], c["covid_as_normal"]], [c["normal_as_covid"], c["normal_as_normal"]]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(mat, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(mat[i, j]), ha="center", va="center", fontsize=16, color="white" if mat[i, j] > mat.max() / 2 else "black")
    ax.set_xticks([0, 1], ["covid", "normal"])
    ax.set_yticks([0, 1], ["covid", "normal"])
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix, held-out patients")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "confusion.png"), dpi=110)
    plt.close(fig)
    # Reliability
    edges = np.linspace(0, 1, 11)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, 9)
    xs, ys, ns = [], [], []
    for b in range(10):
        sel = idx == b
        if sel.any():
            xs.append(p[sel].mean())
            ys.append(is_covid[sel].mean())
            ns.append(sel.sum())
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
    ax.plot(xs, ys, "o-", label=f"model (ECE {m['ece']:.3f})")
    for x, y, n in zip(xs, ys, ns):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xlabel="predicted P(covid)", ylabel="observed fraction covid", title="Reliability, held-out patients")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "reliability.png"), dpi=110)
    plt.close(fig)
    # Worst mistakes: the most confident wrong answers (or the least confident right ones).
    truth = is_covid.astype(float)
    loss = -np.log(np.clip(np.where(is_covid, p, 1 - p), 1e-7, 1))
    worst = np.argsort(-loss)[:8]
    fig, axes = plt.subplots(2, 4, figsize=(10, 5.6))
    for ax, i in zip(axes.flat, worst):
        r = rows[i]
        ax.imshow(Image.open(os.path.join(data_dir, r["file"])).convert("L"), cmap="gray")
        pred = "covid" if p[i] >= threshold else "normal"
        ok = "right" if (pred == "covid") == bool(truth[i]) else "WRONG"
        ax.set_title(f"true {r['label']}, said {pred} ({ok})\nP(covid)={p[i]:.2f}  {r['source']}", fontsize=8)
        ax.axis("off")
    fig.suptitle("Hardest held-out X-rays (highest loss)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "mistakes.png"), dpi=90)
    plt.close(fig)


def breakdown(rows, p, is_covid, threshold, key):
    out = {}
    for value in sorted({r[key] or "unknown" for r in rows}):
        sel = np.array([(r[key] or "unknown") == value for r in rows])
        pred = p[sel] >= threshold
        out[value] = {"n": int(sel.sum()), "accuracy": float((pred == is_covid[sel]).mean()), "mean_p_covid": float(p[sel].mean())}
    return out


def lung_report(model_dir, data_dir, pre_dir, splits, out):
    """The lung finder on the films with masks, by split and kind: soft Dice on its 24x24 grid,
    and the share of the true lung inside the box the classifier is shown. Draws
    `out/lungs.png`: held-out films of each collection with the finder's map and box."""
    from lungs import content_boxes, mask_target

    path = os.path.join(model_dir, "lungs.onnx")
    if not os.path.exists(path) or not os.path.exists(os.path.join(pre_dir, "boxes.csv")):
        return None
    sess = session(path)
    params = json.load(open(os.path.join(pre_dir, "preprocess.json")))
    boxes = content_boxes(pre_dir)
    regions = {r["file"]: r for r in csv.DictReader(open(os.path.join(pre_dir, "boxes.csv"), newline=""))}
    split_of = {r["file"]: split for split, rows in splits.items() for r in rows}

    def lung_map(file):
        x = np.asarray(Image.open(os.path.join(pre_dir, "whole", file + ".png")), dtype=np.float32)[None, None] / 255.0
        return sess.run(None, {"image": ((x - params["mean"]) / params["std"]).astype(np.float32)})[0][0, 0]

    scores = defaultdict(list)
    for m in csv.DictReader(open(os.path.join(data_dir, "masks.csv"), newline="")):
        f = m["file"]
        target = mask_target(os.path.join(data_dir, m["mask"]), boxes[f])
        pm = lung_map(f)
        dice = float(2 * (pm * target).sum() / max(pm.sum() + target.sum(), 1e-6))
        full = np.asarray(Image.open(os.path.join(data_dir, m["mask"])).convert("L")) > 127
        r = regions[f]
        x, y, w, h = (int(r[k]) for k in ("lx", "ly", "lw", "lh"))
        inside = float(full[y : y + h, x : x + w].sum() / max(full.sum(), 1))
        scores[(split_of[f], m["kind"])].append((dice, inside))
    report = {
        f"{split}/{kind}": {
            "n": len(v),
            "dice": float(np.mean([d for d, _ in v])),
            "lung_inside_box": float(np.median([i for _, i in v])),
            "boxes_holding_95pct": float(np.mean([i >= 0.95 for _, i in v])),
        }
        for (split, kind), v in sorted(scores.items())
    }
    found = defaultdict(list)
    for f, r in regions.items():
        if f in split_of:
            found[f.split("/")[1]].append(r["lungs_found"] == "1")
    report["found_by_source"] = {s: float(np.mean(v)) for s, v in sorted(found.items())}

    # The picture: held-out films of each collection, map in red, box in yellow.
    test_rows = splits["test"]
    picks = []
    for source in ("kermany-normal", "nih-nofinding", "openist-normal", "ieee8023-covid", "covid-cxnet"):
        picks += [r for r in test_rows if r["source"] == source][:3]
    fig, axes = plt.subplots(3, 5, figsize=(12, 7.6))
    for ax, r in zip(axes.T.flatten(), picks):
        f = r["file"]
        film = np.asarray(Image.open(os.path.join(data_dir, f)).convert("L"), dtype=np.float32) / 255.0
        cx, cy, cw, ch = boxes[f]
        grid = Image.fromarray((lung_map(f) * 255).astype(np.uint8)).resize((cw, ch), Image.BILINEAR)
        overlay = np.zeros(film.shape, dtype=np.float32)
        overlay[cy : cy + ch, cx : cx + cw] = np.asarray(grid, dtype=np.float32) / 255.0
        rgb = np.stack([film, film, film], -1)
        rgb[..., 0] = np.clip(rgb[..., 0] + 0.45 * overlay, 0, 1)
        ax.imshow(rgb)
        reg = regions[f]
        x, y, w, h = (int(reg[k]) for k in ("lx", "ly", "lw", "lh"))
        ax.add_patch(plt.Rectangle((x, y), w, h, fill=False, edgecolor="yellow", linewidth=1.5))
        ax.set_title(f"{r['source']}", fontsize=8)
        ax.axis("off")
    fig.suptitle("Lung finder on held-out films: P(lung) in red, the box the classifier is shown in yellow", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "lungs.png"), dpi=80)
    plt.close(fig)
    return report


def pick_fixtures(rows, p, is_covid, threshold, keep=frozenset()):
    """Held-out images the model gets right, from permissively licensed sources, spread over sources.

    Films in `keep` (the manifest paths of the current fixtures) come first while the model
    still gets them right, so a retrain changes as few fixture names as it can: README,
    bench/bench.py and tests/fixtures/hostile name some of them.
    """
    chosen = []
    for label in LABELS:
        by_source = defaultdict(list)
        kept = []
        for i, r in enumerate(rows):
            right = (p[i] >= threshold) == is_covid[i]
            if r["label"] == label and right and r["license"].startswith(PERMISSIVE):
                (kept if r["file"] in keep else by_source[r["source"]]).append(i)
        picked = kept[:FIXTURES_PER_CLASS]
        while len(picked) < FIXTURES_PER_CLASS and any(by_source.values()):
            for s in sorted(by_source):
                if by_source[s] and len(picked) < FIXTURES_PER_CLASS:
                    picked.append(by_source[s].pop(0))
        chosen += picked
    return chosen


def main():
    ap = argparse.ArgumentParser()
    data_args(ap)
    ap.add_argument("--model", default="model")
    ap.add_argument("--fixtures", default="tests/fixtures")
    ap.add_argument("--holdout", help="holdout.py's holdout.json: the collection-held-out table")
    ap.add_argument("--unseen", nargs="*", default=None, help="collections the model never saw in training (default: train.py's --leave-out)")
    ap.add_argument("--xray", default="target/release/xray", help="the built xray binary: the heatmaps are drawn by the served code")
    ap.add_argument("--version", default=VERSION, help="the version the card gives the model (candidates: 5.0.0-<name>)")
    ap.add_argument("--no-fixtures", action="store_true", help="leave tests/fixtures as they are (a candidate, not the shipped model)")
    ap.add_argument("--no-readme-headline", action="store_true", help="leave README.md's headline figures as they are (a candidate)")
    args = ap.parse_args()

    sess, training, mean, std, threshold = open_model(args.model)
    params = training["preprocess"]
    onnx_path = os.path.join(args.model, "xray.onnx")
    splits = load_split(args.data, args.pre, args.split)

    results = {}
    for split in ("val", "test"):
        rows = splits[split]
        p = p_covid_of(sess, rows, mean, std)
        is_covid = np.array([r["label"] == "covid" for r in rows])
        results[split] = (rows, p, is_covid)
    rows, p, is_covid = results["test"]
    test = metrics(p, is_covid, threshold)
    test["ci95"] = bootstrap_ci(p, is_covid, [r["group"] for r in rows], threshold)
    test["by_source"] = breakdown(rows, p, is_covid, threshold, "source")
    test["by_view"] = breakdown(rows, p, is_covid, threshold, "view")
    test["unseen_collections"] = args.unseen if args.unseen is not None else training.get("left_out_sources", [])
    x = load_x(rows, mean, std)
    test["shortcut_probes_roc_auc"] = hidden_region_auc(sess, x, is_covid, mean, std)
    test["field_of_view_probe"] = field_of_view_probe(sess, x, p, is_covid, threshold)
    test["framing_probe"] = framing_probe(sess, rows, p, is_covid, threshold, args.pre, mean, std)
    equalised = "equalize" in params["version"]
    test["processing_probe"] = processing_probe(sess, x, p, is_covid, threshold, mean, std, equalised)
    occlusion_maps(sess, rows, p, is_covid, threshold, mean, std, args.model, args.data)
    val = metrics(results["val"][1], results["val"][2], threshold)
    plots(args.model, p, is_covid, threshold, test, rows, args.data)
    # The lung finder's figures belong on the card of a model that reads the lung fields.
    reads_lungs = params["version"].startswith("gray-trim-lungbox")
    lungs = lung_report(args.model, args.data, args.pre, splits, args.model) if reads_lungs else None
    # Where the model looks, through the served code (class activation maps of held-out films
    # against their lung masks).
    heatmaps = None
    onnx_bytes = open(onnx_path, "rb").read()
    identity = {
        "name": NAME,
        "version": args.version,
        "file": "xray.onnx",
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "size_bytes": len(onnx_bytes),
        "format": "ONNX, opset 17, float32",
        "labels": LABELS,
        "input": {
            "name": "image",
            "shape": [1, 1, params["input_size"], params["input_size"]],
            "layout": "NCHW",
            "size": params["input_size"],
            "preprocess": params["version"],
            "normalisation": f"(v / 255 - {mean}) / {std}",
        },
    }
    if os.path.exists(args.xray):
        # The served code loads a model folder only with its own card: the card so far first.
        json.dump(identity | {"threshold": threshold}, open(os.path.join(args.model, "model.json"), "w"), indent=2)
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "probes"))
        import heatmaps as heatmap_probe

        env = dict(os.environ, XRAY_MODEL_PATH=os.path.abspath(onnx_path))
        heatmaps = heatmap_probe.measure(args.data, args.pre, args.split, args.xray, os.path.join(args.model, "heatmaps.png"), env)
        test["heatmaps"] = {"summary": heatmaps["summary"]}
    holdout = None
    if args.holdout:
        held = json.load(open(args.holdout))
        holdout = {}
        for c, r in held["collections"].items():
            pc = np.array(r["p_covid"])
            right = pc < threshold if r["label"] == "normal" else pc >= threshold
            holdout[c] = {k: r[k] for k in ("label", "n", "metric", "epochs", "mean_p_covid")} | {"at_threshold": float(right.mean())}
        holdout = {"collections": holdout, "pooled": held.get("pooled"), "train_args": held.get("train_args", [])}

    all_rows = [r for s in splits.values() for r in s]
    summary = {
        split: dict(Counter(r["label"] for r in rs)) | {"patients": len({r["group"] for r in rs})}
        for split, rs in splits.items()
    }
    by_source = Counter((r["source"], r["label"]) for r in all_rows)
    card = {
        **identity,
        "output": {"name": "probabilities", "shape": [1, 2], "meaning": "[P(covid), P(normal)], Platt-scaled: P(covid) = sigmoid(a * (logit_covid - logit_normal) + b)"},
        "threshold": threshold,
        "threshold_rule": training["threshold_rule"],
        "calibration": training["calibration"],
        "metrics": {"test": test, "validation": val, "collection_held_out": holdout},
        "lungs": lungs,
        "data": {
            "pool": f"../shared/data/cxr (pool v2, {len(all_rows):,} frontal chest X-rays)",
            "split": "by patient group, per source, 70/15/15, seed %d (training/split.csv)" % SEED,
            "splits": summary,
            "sources": {f"{s}/{l}": n for (s, l), n in sorted(by_source.items())},
        },
        # "arch" and "framing_consistency" exist from train.py --arch and --consistency on;
        # models before them are the "pool" network without the consistency loss.
        "training": {k: training[k] for k in ("seed", "arch", "epochs", "best_epoch", "best_weights", "batch", "lr", "optimizer", "loss", "framing_consistency", "hospital_processing", "hospital_clahe", "amplitude_mix", "recipe", "standardize", "augment", "schedule", "candidates_from_epoch", "tta", "ensemble", "seconds", "threads", "torch") if k in training}
        | {"framing_crops": training.get("framing_crops", {"p_normal": 0.0, "p_covid": 0.0})},
        "licences": (
            "Mixed. ieee8023/covid-chestxray-dataset images carry per-image licences, several "
            "non-commercial (CC BY-NC-SA) or no-derivatives (CC BY-NC-ND); COVID-CXNet is CC BY 4.0; "
            "NIH ChestX-ray14 is free to use citing Wang et al. 2017; Kermany et al. 2018 is CC BY 4.0; "
            "the OpenIST teaching-module normals come from a repository that states no licence. "
            "Because part of the training data is non-commercial, use this model for education and "
            "research only."
        ),
        "intended_use": "Education and research only. Not a medical device; not for diagnosis, treatment or triage.",
    }
    json.dump(card, open(os.path.join(args.model, "model.json"), "w"), indent=2)
    write_card_readme(args.model, card)
    if not args.no_readme_headline:
        update_readme_headline("README.md", card)
    print(json.dumps({k: test[k] for k in ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc", "ece")}, indent=1))
    print("by source", json.dumps(test["by_source"]))
    if args.no_fixtures:
        return

    # Fixtures for the Rust tests.
    fixture_dir = os.path.join(args.fixtures, "xrays")
    expected_path = os.path.join(args.fixtures, "expected.json")
    current = json.load(open(expected_path))["images"] if os.path.exists(expected_path) else {}
    keep = frozenset(e["manifest_file"] for e in current.values())
    shutil.rmtree(fixture_dir, ignore_errors=True)
    expected = {}
    for i in pick_fixtures(rows, p, is_covid, threshold, keep):
        r = rows[i]
        name = f"{r['label']}/{r['source']}-{os.path.basename(r['file'])}"
        os.makedirs(os.path.join(fixture_dir, r["label"]), exist_ok=True)
        shutil.copy(os.path.join(args.data, r["file"]), os.path.join(fixture_dir, name))
        expected[name] = {"label": r["label"], "p_covid": p[i], "source": r["source"], "license": r["license"], "manifest_file": r["file"]}
    json.dump({"model_sha256": card["sha256"], "threshold": threshold, "images": expected}, open(expected_path, "w"), indent=2, sort_keys=True)
    lines = [
        "# Test fixtures",
        "",
        "Written by `training/evaluate.py`. Held-out (test-split) X-rays from the pool that the",
        "committed model labels correctly, taken only from permissively licensed sources, with",
        "onnxruntime's P(covid) for each in `expected.json`. The model's errors on the test split",
        "are in the model card; these files check that serving reproduces training, not accuracy.",
        "",
        "| file | label | source | licence | pool file |",
        "|---|---|---|---|---|",
    ]
    for name, e in sorted(expected.items()):
        lines.append(f"| `xrays/{name}` | {e['label']} | {e['source']} | {e['license']} | `{e['manifest_file']}` |")
    open(os.path.join(args.fixtures, "README.md"), "w").write("\n".join(lines) + "\n")


def update_readme_headline(readme, card):
    """Rewrites the figures between the model-card markers in the top-level README."""
    if not os.path.exists(readme):
        return
    t = card["metrics"]["test"]
    probes = t["shortcut_probes_roc_auc"]
    fov = t["field_of_view_probe"]
    fr = t.get("framing_probe")
    pp = t.get("processing_probe")
    block = (
        "<!-- model-card:start (written by training/evaluate.py) -->\n"
        f"| held-out patients (n={t['n']}) | value |\n|---|---|\n"
        f"| balanced accuracy | {t['balanced_accuracy']:.3f} |\n"
        f"| sensitivity (COVID-19) | {t['sensitivity']:.3f} |\n"
        f"| specificity | {t['specificity']:.3f} |\n"
        f"| ROC-AUC | {t['roc_auc']:.4f} |\n"
        f"| expected calibration error | {t['ece']:.3f} |\n"
        + "".join(
            f"| {r['metric']} on `{c}`, trained without it (collection held out) | {r['at_threshold']:.3f} |\n"
            for c, r in ((card["metrics"].get("collection_held_out") or {}).get("collections") or {}).items()
        )
        + f"| ROC-AUC with the central 60% hidden (shortcut probe; 0.5 is ideal) | {probes['centre_60pct_hidden']:.4f} |\n"
        f"| normal films called COVID when cropped to their central 80% (field-of-view probe; 0 is ideal) | {fov['normal_called_covid']}/{fov['normal']} |\n"
        + (
            f"| tighter framings of normal films called COVID, through the serving code (whole films: {fr['whole_called_covid']}/{fr['normal']}) | {fr['crops_called_covid']}/{fr['normal'] * fr['crops_per_film']} |\n"
            if fr
            else ""
        )
        + (
            f"| ROC-AUC of the COVID films against those tighter framings (framing cannot separate the classes) | {fr['roc_auc_covid_vs_tighter_normals']:.4f} |\n"
            if fr
            else ""
        )
        + (
            f"| normal films called COVID once sharpened like a modern console's output (unsharp mask, sigma 8 px) | {pp['sharpened_normal_called_covid']}/{pp['normal']} |\n"
            f"| COVID films called normal once softened (sigma 24 px) | {pp['softened_covid_called_normal']}/{pp['covid']} |\n"
            + (f"| normal films called COVID once given CLAHE (8x8 tiles, clip 4{'' if card['training'].get('hospital_clahe') else '; not yet trained against'}) | {pp['clahe_normal_called_covid']}/{pp['normal']} |\n" if "clahe_normal_called_covid" in pp else "")
            if pp
            else ""
        )
        + "\n"
        f"Model `{card['name']}` {card['version']}, sha256 `{card['sha256'][:16]}…`, "
        f"{card['size_bytes'] / 1e6:.1f} MB, threshold {card['threshold']:.3f} on P(covid).\n"
        "<!-- model-card:end -->"
    )
    text = open(readme).read()
    start, end = text.find("<!-- model-card:start"), text.find("<!-- model-card:end -->")
    if start < 0 or end < 0:
        return
    open(readme, "w").write(text[:start] + block + text[end + len("<!-- model-card:end -->") :])


def framing_text(f, crops, plain_auc):
    if not f:
        return ""
    n = f["normal"] * f["crops_per_film"]
    if crops["p_normal"] > 0:
        how = (
            f"Training showed such framings of the *training* normals (each one with probability "
            f"{crops['p_normal']:g}), so this measures on held-out patients whether the model learned "
            "that framing says nothing about the label."
        )
    else:
        how = (
            "This model was trained without such framings. This is the clearest shortcut left: a "
            "normal film from a hospital that frames tighter than NIH reads as COVID far too often."
        )
    matched = (
        f"Against these tighter framings, where framing cannot separate the classes, the COVID test films "
        f"score ROC-AUC {f['roc_auc_covid_vs_tighter_normals']:.4f}, against {plain_auc:.4f} with the whole normal films: "
        "the gap is roughly what the framing tie adds to the headline figure.\n"
    )
    return f"""
**Framing, through the serving code.** `xray preprocess --crops 4` crops each original normal
test film to four tighter boxes (60-90% of the width, 55-85% of the height, like the COVID
films' publication crops) and prepares them as serving would (trimming and equalisation see
the crop; the central-80% probe above crops an already equalised image, which serving never
produces): {f['crops_called_covid']} of {n} crops ({f['films_with_a_crop_called_covid']} of {f['normal']} films) are called COVID,
against {f['whole_called_covid']} of the whole films; P(covid) changes by {f['mean_change']:+.3f} on average. {how}
{matched}"""


def processing_text(f, p_process, p_clahe=0.0):
    """The card's paragraph on processing_probe, if the model was measured with it."""
    if not f:
        return ""
    how = (
        f"Training gave {p_process:.0%} of the films of both classes a random unsharp mask or softening "
        "(sigma 3-32 px, `train.py --process`), so that local contrast alone cannot name the class."
        if p_process
        else "Training did not vary local contrast."
    )
    return f"""
**Processing.** The NIH normals, most of the pool's adult normals, are soft films, low in local contrast;
modern consoles sharpen films with a large-kernel unsharp mask. Each test film sharpened that
way (sigma 8 px, amount 1; equalised again where the model reads equalised films): {f['sharpened_normal_called_covid']} of {f['normal']} normal films flip to
COVID (mean change of P(covid) {f['sharpened_mean_change_normal']:+.3f}; ROC-AUC {f['sharpened_roc_auc']:.4f}). Softened (sigma 24 px,
amount -0.5): {f['softened_covid_called_normal']} of {f['covid']} COVID films flip to normal (mean change {f['softened_mean_change_covid']:+.3f}; ROC-AUC
{f['softened_roc_auc']:.4f}). {how}{clahe_text(f, p_clahe)}
"""


def clahe_text(f, p_clahe):
    """The processing paragraph's sentence on CLAHE, if the model was measured with it."""
    if "clahe_normal_called_covid" not in f:
        return ""
    how = (
        f"Training gave {p_clahe:.0%} of the films of both classes a random CLAHE (`train.py --clahe`)."
        if p_clahe
        else "No training recipe denies this yet\n(docs/research/3.x.md): send films as the modality produced them."
    )
    return f"""
Given CLAHE instead (contrast-limited adaptive histogram equalisation, 8x8 tiles, clip 4,
equalised again), which many viewers and published pipelines apply: {f['clahe_normal_called_covid']} of {f['normal']} normal films
flip to COVID (mean change {f['clahe_mean_change_normal']:+.3f}; ROC-AUC {f['clahe_roc_auc']:.4f}). {how}"""


def process_clause(p_process, p_clahe=0.0):
    """The augmentation list's words for train.py --process and --clahe, if used."""
    clauses = [
        f"; gives {p:.0%} of the films of both classes a random {what}"
        for p, what in ((p_process, "console-style unsharp mask or softening"), (p_clahe, "CLAHE (adaptive histogram equalisation)"))
        if p
    ]
    return "".join(clauses)


def crops_clause(crops):
    """The augmentation list's words for train.py --crop-normal / --crop-covid, if used."""
    shown = [f"{name} films as a tighter framing of the original with probability {crops[k]:g}" for name, k in (("normal", "p_normal"), ("COVID", "p_covid")) if crops.get(k, 0) > 0]
    return "; shows " + " and ".join(shown) if shown else ""


NORMAL_SOURCES = ("nih-nofinding", "kermany-normal", "openist-normal", "ieee8023-nofinding")


def holdout_text(card):
    h = card["metrics"].get("collection_held_out")
    if not h:
        return ""
    rows = "\n".join(
        f"| {c} | {r['n']} | {r['metric']} | **{r['at_threshold']:.3f}** | {r['mean_p_covid']:.3f} |" for c, r in h["collections"].items()
    )
    epochs = sorted({r["epochs"] for r in h["collections"].values()})
    pooled = h.get("pooled")
    pooled_line = (
        f"\nPooled, the left-out films give the equal-error threshold {pooled['threshold']:.4f} "
        f"(left-out normals called normal {pooled['specificity']:.3f}, left-out COVID films called COVID {pooled['sensitivity']:.3f})."
        if pooled
        else ""
    )
    return f"""## Hospitals it has never seen: one collection left out

The nearest thing the pool has to a hospital in no collection: the same recipe trained with a
whole collection left out of training and validation (`training/holdout.py`, {', '.join(map(str, epochs))} epochs each{', `' + ' '.join(h['train_args']) + '`' if h.get('train_args') else ''}),
then every film of that collection classified, here at this model's threshold.
These figures, not the in-pool ones, are what a new hospital should expect.

| left out | films | measured | at the shipped threshold | mean P(covid) |
|---|---|---|---|---|
{rows}
{pooled_line}
"""


def unseen_sentence(t):
    unseen = t.get("unseen_collections") or []
    if not unseen:
        return ""
    return (
        f" This model never saw {', '.join('`' + u + '`' for u in unseen)} in training: their rows are"
        " held-out collections, the nearest the pool has to a hospital it does not hold."
    )


def lungs_text(card):
    lu = card.get("lungs")
    if not lu:
        return ""
    rows = "\n".join(
        f"| {k} | {v['n']} | {v['dice']:.3f} | {v['lung_inside_box']:.3f} | {v['boxes_holding_95pct']:.3f} |"
        for k, v in lu.items()
        if k != "found_by_source"
    )
    found = ", ".join(f"{s} {v:.3f}" for s, v in lu["found_by_source"].items())
    return f"""## The lung finder

`model/lungs.onnx` (`training/lungs.py`): a small U-Net that marks P(lung) on a 24x24 grid of
the prepared whole film. The box around its lung regions, with a margin, is the part of the
film the classifier is shown. Masks: 274 hand-drawn (`manual`, OpenIST normals) and 152 made by
lungVAE (`model`, ieee8023 films, most with COVID-19 opacities, where lungs are hardest to find).

| split/mask kind | films | Dice (24x24 grid) | share of the true lung inside the box (median) | boxes holding 95% of it |
|---|---|---|---|---|
{rows}

Lungs found, by collection (every film of the pool; below 1.0 the whole film is read and the
answer says `lungs_not_found`): {found}. The children of `kermany-normal` have no masks; the
picture shows the finder on three of their held-out films.

![The lung finder on held-out films](lungs.png)
"""


def lung_steps(card):
    if not card["input"]["preprocess"].endswith("-v2"):
        return ""
    return """   Then the lung fields: the lung finder reads this whole-film image, the box around its lung
   regions (grown by 8% a side) is mapped back onto the decoded film, and that part of the
   film goes through steps 4 and 5 again; with no lungs found, the whole film is used.
"""


def heatmap_text(h):
    """The card's section on the served heatmaps against the lung masks."""
    if not h:
        return ""
    rows = "\n".join(
        f"| {k.split('/')[0]} | {k.split('/')[1]} | {v['n']} | {v['on_lungs']:.2f} | {v['lung_area']:.2f} |"
        for k, v in h["summary"].items()
        if k != "all"
    )
    a = h["summary"]["all"]
    return f"""
### Where it looks: the heatmaps against the lungs (test)

The served heatmap (`?explain=1`, class activation mapping of the last 6x6 feature grid) of
every held-out film that has a lung mask (hand-drawn for the OpenIST normals, lungVAE's for
the ieee8023 films), through the served code: the share of the evidence for the answered
label that falls on lung, against the share of the image that is lung (what a map blind to
the lungs would score). `training/probes/heatmaps.py`.

| collection | answered | films | evidence for the answer on lung | lung share of the image |
|---|---|---|---|---|
{rows}
| all | | {a['n']} | {a['on_lungs']:.2f} | {a['lung_area']:.2f} |

![Heatmaps of held-out films, lungs outlined](heatmaps.png)
"""


def reads_plain(card):
    """Whether the model reads unequalised films and standardises them itself (model 5)."""
    return "equalize" not in card["input"]["preprocess"]


def equalise_step(card):
    if reads_plain(card):
        return ("5. Not equalised: the network's first operation takes each image less its own mean over its own\n"
                "   standard deviation, so a hospital's exposure and contrast do not reach it.")
    return "5. Histogram-equalise."


def shortcut_text(card):
    """What the recipe does against the pool's shortcuts, from the card's training record."""
    t = card["training"]
    lungs = "each film is cropped to its lung fields, so borders, labels and framing outside them never reach the classifier; " if "lungbox" in card["input"]["preprocess"] else ""
    if t.get("augment") == "plain":
        return (
            f"The recipe is deliberately plain: {lungs}uniform borders are trimmed, every film is resized to a square, "
            "and the network standardises each image itself; augmentation is a random resized crop (70-100% of the area), "
            "a turn within 10 degrees, contrast, brightness, gamma and noise, on both classes alike, and nothing else: no "
            "flips, painted boxes, flattened periphery, hospital processing or class-dependent framing. 4.0.0's recipe, which "
            "had all of those, called about half the normal films of hospitals outside the pool COVID (docs/research/5.x.md). "
            "The probes above show what the plain recipe leaves open: tighter framings of normal films and "
            "local-contrast processing (CLAHE, sharpening) push P(covid) up."
        )
    p_process = t.get("hospital_processing") or 0.0
    p_clahe = t.get("hospital_clahe") or 0.0
    return (
        f"The pipeline fights the known shortcuts: {lungs}uniform borders are trimmed; every film is resized to a square and "
        "histogram-equalised; augmentation varies framing, aspect ratio, rotation, exposure, blur and noise, flips side "
        "markers, paints text-like boxes on both classes, and on 40% of the films hides everything outside a random "
        f"central box{crops_clause(t['framing_crops'])}{process_clause(p_process, p_clahe)}."
    )


ROBUSTNESS_BEGIN, ROBUSTNESS_END = "<!-- robustness:begin -->", "<!-- robustness:end -->"


def robustness_block(out, card):
    """The card's robustness section: what `XRAY_WRITE_DOCS=1 cargo test --test robustness`
    measured through the served pipeline and wrote between the markers, kept while
    model/robustness.json names this model; a placeholder until it has run."""
    kept = ""
    figures = os.path.join(out, "robustness.json")
    readme = os.path.join(out, "README.md")
    if os.path.exists(figures) and json.load(open(figures)).get("model_sha256") == card["sha256"] and os.path.exists(readme):
        text = open(readme).read()
        if ROBUSTNESS_BEGIN in text and ROBUSTNESS_END in text:
            kept = text.split(ROBUSTNESS_BEGIN, 1)[1].split(ROBUSTNESS_END, 1)[0]
    if not kept.strip():
        kept = "\n### Robustness through the served pipeline\n\nNot measured for this model yet: `XRAY_WRITE_DOCS=1 cargo test --test robustness`.\n"
    return ROBUSTNESS_BEGIN + kept + ROBUSTNESS_END + "\n"


def write_card_readme(out, card):
    t = card["metrics"]["test"]
    c = t["confusion"]
    ci = t["ci95"]
    v = card["metrics"]["validation"]
    fov = t["field_of_view_probe"]
    # train.py --process and --clahe fractions (absent from older cards: 0).
    p_process = card["training"].get("hospital_processing") or 0.0
    p_clahe = card["training"].get("hospital_clahe") or 0.0
    src = "\n".join(f"| {k} | {n} |" for k, n in card["data"]["sources"].items())
    splits = "\n".join(
        f"| {s} | {d.get('covid', 0)} | {d.get('normal', 0)} | {d['patients']} |" for s, d in card["data"]["splits"].items()
    )
    per_source = "\n".join(
        f"| {s} | {d['n']} | {'specificity' if s in NORMAL_SOURCES else 'sensitivity'} {d['accuracy']:.3f} | {d.get('mean_p_covid', float('nan')):.3f} |"
        for s, d in t["by_source"].items()
    )
    per_view = "\n".join(f"| {s} | {d['n']} | {d['accuracy']:.3f} |" for s, d in t["by_view"].items())
    text = f"""# Model card: {card['name']} {card['version']}

> **Educational software, not a medical device.** Never use it to diagnose, treat or triage
> anyone. Part of the training data is licensed for non-commercial use only.

This file is written by `training/evaluate.py`; edit that script, not this file.

| | |
|---|---|
| file | `model/{card['file']}` ({card['size_bytes']:,} bytes) |
| sha256 | `{card['sha256']}` |
| format | {card['format']} |
| input | `{card['input']['name']}` {card['input']['shape']} {card['input']['layout']}, preprocessing `{card['input']['preprocess']}`, then {card['input']['normalisation']} |
| output | `{card['output']['name']}` {card['output']['shape']}: {card['output']['meaning']} |
| labels | {', '.join(card['labels'])} |
| decision | `covid` when P(covid) >= **{card['threshold']:.4f}**; threshold {card['threshold_rule']} |
| calibration | Platt scaling, a = {card['calibration']['scale']:.3f}, b = {card['calibration']['bias']:.3f}, fitted on validation patients (NLL) |

## Held-out patients (test split, never used for any choice)

{t['n']} X-rays of patients that appear in neither training nor validation. 95% intervals come
from 1,000 bootstrap resamples of patients.

| metric | value | 95% CI |
|---|---|---|
| accuracy | {t['accuracy']:.3f} | |
| balanced accuracy | {t['balanced_accuracy']:.3f} | {ci['balanced_accuracy'][0]:.3f} to {ci['balanced_accuracy'][1]:.3f} |
| sensitivity (COVID-19) | {t['sensitivity']:.3f} | {ci['sensitivity'][0]:.3f} to {ci['sensitivity'][1]:.3f} |
| specificity | {t['specificity']:.3f} | {ci['specificity'][0]:.3f} to {ci['specificity'][1]:.3f} |
| F1 (COVID-19) | {t['f1']:.3f} | |
| ROC-AUC | {t['roc_auc']:.4f} | {ci['roc_auc'][0]:.4f} to {ci['roc_auc'][1]:.4f} |
| expected calibration error (P(covid), 10 bins) | {t['ece']:.3f} | |

Confusion matrix (rows: truth): covid -> covid {c['covid_as_covid']}, covid -> normal {c['covid_as_normal']},
normal -> covid {c['normal_as_covid']}, normal -> normal {c['normal_as_normal']}.

Validation (used to pick the epoch, the weights, the calibration and the threshold): balanced accuracy
{v['balanced_accuracy']:.3f}, ROC-AUC {v['roc_auc']:.4f}, ECE {v['ece']:.3f}.

![ROC curve](roc.png) ![Confusion matrix](confusion.png) ![Reliability diagram](reliability.png)

![Hardest held-out X-rays](mistakes.png)

### Does it read the lungs? Shortcut probes (test)

| input | ROC-AUC |
|---|---|
| whole image | {t['roc_auc']:.4f} |
| central 60% hidden (lungs gone, borders and corners kept) | {t['shortcut_probes_roc_auc']['centre_60pct_hidden']:.4f} |
| only the central 60% shown | {t['shortcut_probes_roc_auc']['frame_hidden_centre_60pct_shown']:.4f} |

A model that reads the lungs should fall towards 0.5 in the second row and keep most of its
AUC in the third. The second row well above 0.5 means the corners and edges still carry
collection cues it uses.

**Field of view.** The same films cropped to their central 80% and resized back, as a tighter
exposure or a cropped figure would look: {fov['normal_called_covid']} of {fov['normal']} normal films
flip to COVID and {fov['covid_called_normal']} of {fov['covid']} COVID films to normal; P(covid) moves by
{fov['mean_abs_change']:.3f} on average; ROC-AUC on the crops {fov['roc_auc']:.4f}. COVID films in the pool are
often tight crops from publications, the NIH normals whole films, so a model can learn the
framing; `tests/robustness.rs` runs the same check through the served pipeline.
{framing_text(t.get("framing_probe"), card["training"]["framing_crops"], t["roc_auc"])}
{processing_text(t.get("processing_probe"), p_process, p_clahe)}
![Occlusion sensitivity](attention.png)
{heatmap_text(t.get("heatmaps"))}
### By collection and view (test)

Each collection holds one class, so its share called right is its specificity (normals) or
sensitivity (COVID-19). `kermany-normal` is the children.{unseen_sentence(t)}

| collection | n | called right | mean P(covid) |
|---|---|---|---|
{per_source}

| view | n | accuracy |
|---|---|---|
{per_view}

{holdout_text(card)}
{robustness_block(out, card)}
{lungs_text(card)}
## Read these figures with care

The two classes come from different collections: adult normals from NIH, a teaching module
and (16 films) the COVID films' own collection, children from Guangzhou, and COVID-19 films
from papers, Radiopaedia and hospital uploads. A model can score well here by recognising the
collection rather than the lungs, and a patient-level split does not remove that. {shortcut_text(card)} The collection-held-out table
above is the nearest the pool comes to a hospital it does not hold; **expect lower figures
than the in-pool ones on X-rays from other hospitals**.

**What the model is not.** It was trained on two classes only: COVID-19 pneumonia and normal
chests. Other pneumonias, oedema, effusions, tumours and devices were never shown to it as
such, and most abnormal films will read as COVID-19, because "not normal" is the only other
answer it knows. It has not seen lateral films, CT slices or other body parts, and answers
them anyway (with a warning at most). It was not evaluated on any population for clinical
use.

## Preprocessing (one implementation in `src/imaging/` and `src/model/pipeline.rs`, used by serving and training)

1. Sniff the format from the bytes; JPEG and PNG only. Refuse over-size dimensions from the
   header, before decoding.
2. Decode (8- or 16-bit; gray, RGB, RGBA, palette), apply EXIF orientation, convert to 8-bit
   luma. JPEGs at least 4x the input on their short side are decoded at 1/8 or 1/4 scale (each
   block's mean, or its four quadrants' means, from its DCT coefficients: the full decode
   box-averaged), the coarsest whose trimmed region keeps the input size; no film of the
   training pool is that large, so training saw every pixel decoded.
3. Trim uniform borders (rows/columns whose values span <= 12 gray levels; at most 20% a side).
4. Resize to {card['input']['size']}x{card['input']['size']} (triangle filter), ignoring aspect ratio. Films more than
   4x the input on their short side are first box-averaged by an integer factor (keeping at
   least 2x the input); no film of the training pool is that large, so training saw step 4 exactly.
{equalise_step(card)}
{lung_steps(card)}6. Normalise: {card['input']['normalisation']}, NCHW.

Training reads the output of step 5, written by `xray preprocess`, and augments on top of it.

## Training data

| split | covid | normal | patients |
|---|---|---|---|
{splits}

| source/label | images |
|---|---|
{src}

Network: {NETWORKS[card['training'].get('arch', 'pool')]}.
{inference_sentence(card['training'])} Split: {card['data']['split']}. Training: {trained_sentence(card['training'])};
{card['training']['optimizer']}; {card['training']['loss']}; torch {card['training']['torch']}.

## Licences and citation

{card['licences']}

Sources: Cohen et al., COVID-19 image data collection (ieee8023/covid-chestxray-dataset);
Haghanifar et al., COVID-CXNet; Wang et al. 2017, ChestX-ray8/14 (NIH Clinical Center);
Kermany et al. 2018, Cell (Guangzhou Women and Children's Medical Center); the normal films of
the chestx-ray.com teaching module, via pi-null-mezon/OpenIST (no licence stated); lung
masks: OpenIST's hand-drawn masks and lungVAE (Selvan et al. 2020) masks of ieee8023 films.

## Intended use

{card['intended_use']}
"""
    # The chest check that runs before this model has its own section (chest_check.py).
    chest = os.path.join(out, "chest.json")
    if os.path.exists(chest):
        from chest_check import card_section

        text += "\n" + card_section(json.load(open(chest)))
    # The candidates' table (training/compare.py) stays until compare.py writes it again.
    readme = os.path.join(out, "README.md")
    begin, end = "<!-- candidates:begin -->", "<!-- candidates:end -->"
    if os.path.exists(readme):
        old = open(readme).read()
        if begin in old and end in old:
            text = text.rstrip("\n") + "\n\n## Candidates\n\n" + begin + old.split(begin, 1)[1].split(end, 1)[0] + end + "\n"
    open(readme, "w").write(text)


if __name__ == "__main__":
    main()
