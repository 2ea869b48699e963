"""Validation by collection: train without one collection, then score that collection.

The model is judged on films of hospitals that are in no version of the pool, where a model
that reads the collection (borders, text, framing, processing, a scanner's look) fails. The
nearest thing the pool has: train with a whole collection left out of training and
validation (`train.py --leave-out`), then classify every film of it. A normal collection
scored so gives the specificity an unseen hospital's normals would get; a COVID collection,
the sensitivity.

    python training/holdout.py --data ../shared/data/cxr --pre build/pre --out build/holdout \\
        [--collections openist-normal nih-nofinding covid-cxnet ieee8023-covid] \\
        [--jobs 2] [--epochs 200] [-- other train.py arguments]

Each left-out run is a probe, never the committed model. The pooled left-out predictions
also give the threshold for hospitals the pool does not hold (`--choose-threshold`): the
equal-error point between the left-out normal films and the left-out COVID films, which
`train.py --threshold-from` then puts in the shipped model instead of the validation one.
Writes OUT/holdout.json (read by evaluate.py for the model card) and prints a table.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluate import open_model, p_covid_of  # noqa: E402
from train import balanced_accuracy, choose_threshold, data_args, load_split  # noqa: E402

DEFAULT = ["openist-normal", "nih-nofinding", "covid-cxnet", "ieee8023-covid"]


def train_left_out(args, collections, extra):
    """Runs train.py once per collection, `args.jobs` at a time, threads shared out."""
    threads = args.threads or max(1, (os.cpu_count() or 2) // args.jobs)
    pending = list(collections)
    running = []
    while pending or running:
        while pending and len(running) < args.jobs:
            c = pending.pop(0)
            out = os.path.join(args.out, c)
            if os.path.exists(os.path.join(out, "training.json")) and not args.retrain:
                print(f"{c}: already trained in {out}", flush=True)
                continue
            os.makedirs(out, exist_ok=True)
            cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py"),
                   "--data", args.data, "--pre", args.pre, "--split", args.split, "--out", out,
                   "--leave-out", c, "--threads", str(threads), "--epochs", str(args.epochs), *extra]
            log = open(os.path.join(out, "train.log"), "w")
            print(f"{c}: training ({' '.join(cmd[2:])})", flush=True)
            running.append((c, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.time()))
        time.sleep(2)
        for item in list(running):
            c, proc, started = item
            if proc.poll() is not None:
                running.remove(item)
                if proc.returncode != 0:
                    raise SystemExit(f"{c}: train.py failed, see {os.path.join(args.out, c, 'train.log')}")
                print(f"{c}: trained in {time.time() - started:.0f} s", flush=True)


def score(args, collections, shipped):
    """Every film of each left-out collection through its own left-out model."""
    splits = load_split(args.data, args.pre, args.split)
    rows = [r for rs in splits.values() for r in rs]
    out = {}
    for c in collections:
        sess, training, mean, std, own = open_model(os.path.join(args.out, c))
        films = [r for r in rows if r["source"] == c]
        p = p_covid_of(sess, films, mean, std)
        label = films[0]["label"]
        called_right = (lambda t: float(np.mean(p < t))) if label == "normal" else (lambda t: float(np.mean(p >= t)))
        out[c] = {
            "label": label,
            "n": len(films),
            "metric": "specificity" if label == "normal" else "sensitivity",
            "at_own_threshold": called_right(own),
            "own_threshold": own,
            "at_shipped_threshold": called_right(shipped) if shipped is not None else None,
            "mean_p_covid": float(p.mean()),
            "epochs": training["epochs"],
            "p_covid": [round(float(v), 5) for v in p],
        }
    return out


def pooled_threshold(result):
    """The equal-error threshold between all left-out normal films and all left-out COVID films."""
    p = np.concatenate([np.array(r["p_covid"]) for r in result.values()])
    is_covid = np.concatenate([np.full(r["n"], r["label"] == "covid") for r in result.values()])
    if is_covid.all() or not is_covid.any():
        return None
    t = choose_threshold(p, is_covid)
    bacc, sens, spec = balanced_accuracy(p, is_covid, t)
    return {"threshold": t, "balanced_accuracy": float(bacc), "sensitivity": float(sens), "specificity": float(spec)}


def main():
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_args(ap)
    ap.add_argument("--out", default="build/holdout")
    ap.add_argument("--collections", nargs="+", default=DEFAULT)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=1, help="trainings at once (CPU threads are shared out)")
    ap.add_argument("--threads", type=int, help="CPU threads per training (default: the CPUs shared out among --jobs)")
    ap.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    ap.add_argument("--shipped", default="model/model.json", help="the card whose threshold is scored (absent: none)")
    ap.add_argument("--score-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.score_only:
        train_left_out(args, args.collections, extra)
    shipped = json.load(open(args.shipped))["threshold"] if os.path.exists(args.shipped) else None
    result = score(args, args.collections, shipped)
    summary = {"collections": result, "pooled": pooled_threshold(result), "shipped_threshold": shipped, "train_args": extra}
    json.dump(summary, open(os.path.join(args.out, "holdout.json"), "w"), indent=1)
    print("| left out | films | measured | at its own threshold | at the shipped threshold | mean P(covid) |")
    print("|---|---|---|---|---|---|")
    for c, r in result.items():
        shipped_cell = "" if r["at_shipped_threshold"] is None else f"{r['at_shipped_threshold']:.3f}"
        print(f"| {c} | {r['n']} | {r['metric']} | {r['at_own_threshold']:.3f} ({r['own_threshold']:.3f}) | {shipped_cell} | {r['mean_p_covid']:.3f} |")
    if summary["pooled"]:
        print("pooled equal-error threshold over the left-out films:", json.dumps(summary["pooled"]))


if __name__ == "__main__":
    main()
