"""How well a trained network's features still tell, within one label, which collection a film
came from: what `train.py --source-adv` trains against, measured on films it never trained on.

    .venv/bin/python training/probes/collection_features.py build/model-run25 [run ...]

For each run folder (the `weights.pt` and `training.json` that train.py wrote), the validation
films, as prepared, are passed through the network up to the 160 pooled features its linear
head reads. Within each label, a logistic regression (L2, standardised features) is fitted to
tell the label's two collections apart (NIH adults from Kermany children among the normals,
COVID-CXNet from ieee8023 among the COVID films), scored by 5-fold cross-validation, folds
stratified by collection and grouped by patient, so no patient is in both halves of a fold.
It prints the balanced accuracy and ROC-AUC of the pooled out-of-fold predictions (0.5: the
features hold no linear trace of the collection), and each collection's mean P(covid) from the
network itself. Only the validation split is read, never the test split.

Every collection of the pool holds one label, so a network that can name the collection can
answer "normal" by "looks like an NIH film" (`../shared/data/cxr/README.md`); within a label the
collection is not the answer, and what the features keep of it is a shortcut left open.
"""

import argparse
import json
import os

import numpy as np
import torch

import sys
# The pipeline modules (train.py, evaluate.py) live one folder up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train import LABELS, XrayNet, balanced_accuracy, data_args, load_images, load_split, normalise, roc_auc  # noqa: E402

FOLDS = 5
SEED = 0


def embed(folder, x_u8):
    """The pooled features and P(covid) of the run in `folder` for uint8 films [N,1,S,S]."""
    training = json.load(open(os.path.join(folder, "training.json")))
    net = XrayNet(training.get("arch", "pool"))
    net.load_state_dict(torch.load(os.path.join(folder, "weights.pt")))
    net.eval()
    pre = training["preprocess"]
    with torch.no_grad():
        x = normalise(x_u8.float() / 255.0, pre["mean"], pre["std"])
        feats = torch.cat([net.embed(x[i : i + 128]) for i in range(0, len(x), 128)])
        logits = net.classify(feats)
    scale, bias = training["calibration"]["scale"], training["calibration"]["bias"]
    p_covid = torch.sigmoid(scale * (logits[:, 0] - logits[:, 1]) + bias)
    return feats.double(), p_covid.numpy()


def folds(groups, target):
    """Fold of each film: patients dealt round-robin into FOLDS folds, per collection, in a
    seeded order, so each fold holds both collections and no patient is split."""
    rng = np.random.default_rng(SEED)
    fold = np.zeros(len(groups), dtype=int)
    for t in np.unique(target):
        patients = sorted({g for g, tt in zip(groups, target) if tt == t})
        rng.shuffle(patients)
        of = {g: i % FOLDS for i, g in enumerate(patients)}
        for i, (g, tt) in enumerate(zip(groups, target)):
            if tt == t:
                fold[i] = of[g]
    return fold


def logistic(x, y, weight_decay=1e-2, steps=200):
    """L2 logistic regression by L-BFGS, classes weighted equally; returns (w, b)."""
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    yt = torch.as_tensor(y, dtype=torch.float64)
    pos = yt.mean()
    sample_w = torch.where(yt > 0, 0.5 / pos, 0.5 / (1 - pos))
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = x @ w + b
        loss = (sample_w * torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="none")).mean()
        loss = loss + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def decodability(feats, target, groups):
    """Out-of-fold balanced accuracy and ROC-AUC of telling `target` (0/1) from the features."""
    fold = folds(groups, target)
    score = np.zeros(len(target))
    for k in range(FOLDS):
        train, held = fold != k, fold == k
        mu, sd = feats[train].mean(0), feats[train].std(0) + 1e-6
        w, b = logistic((feats[train] - mu) / sd, target[train])
        score[held] = (((feats[held] - mu) / sd) @ w + b).numpy()
    p = 1 / (1 + np.exp(-score))
    return {"balanced_accuracy": float(balanced_accuracy(p, target == 1, 0.5)[0]), "roc_auc": roc_auc(p, target == 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    data_args(ap)
    args = ap.parse_args()
    rows = load_split(args.data, args.pre, args.split)["val"]
    x, _ = load_images(rows)
    for folder in args.runs:
        feats, p = embed(folder, x)
        out = {"run": folder}
        for label in LABELS:
            mine = np.array([r["label"] == label for r in rows])
            sources = sorted({r["source"] for r, m in zip(rows, mine) if m})
            if len(sources) != 2:
                continue
            target = np.array([sources.index(r["source"]) for r, m in zip(rows, mine) if m])
            groups = [r["group"] for r, m in zip(rows, mine) if m]
            out[f"{label}: {sources[0]} vs {sources[1]}"] = decodability(feats[torch.as_tensor(mine)], target, groups)
        for source in sorted({r["source"] for r in rows}):
            mine = np.array([r["source"] == source for r in rows])
            out[f"mean_p_covid:{source}"] = float(p[mine].mean())
        print(json.dumps(out, indent=1), flush=True)


if __name__ == "__main__":
    main()
