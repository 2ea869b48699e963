"""Every candidate model side by side, through the served code: one table for the card.

    python training/compare.py [--data ../shared/data/cxr] [--candidates model/candidates]

Each folder of `--candidates` (an ONNX file with its model.json) is loaded the way a user
loads it, `XRAY_MODEL_PATH=<folder> target/release/xray predict --json`, and sent every film of
the held-out test patients. From those answers: ROC-AUC, balanced accuracy, sensitivity and
specificity at the candidate's own threshold (overall and per collection), the held-out
children's films called COVID, and the mean P(covid) per collection. `xray bench` on the
large bench film gives load and inference time; the folder gives the size. The table goes
to model/candidates/README.md and, between its markers, to the model card (model/README.md);
the figures to model/candidates/compare.json.

In-pool figures rank nothing by themselves (docs/research/5.x.md): the candidates are
committed so that they can be scored on hospitals that no version of the pool holds.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import balanced_accuracy, data_args, load_split, roc_auc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- candidates:begin -->", "<!-- candidates:end -->"
CHILDREN = "kermany-normal"


def predict(xray, folder, files):
    """P(covid) of each file through `xray predict --json`, the candidate in XRAY_MODEL_PATH."""
    env = dict(os.environ, XRAY_MODEL_PATH=os.path.abspath(folder))
    out = subprocess.run([xray, "predict", "--json", *files], env=env, capture_output=True, text=True)
    answers = {}
    for line in out.stdout.splitlines():
        row = json.loads(line)
        if "error" in row:
            # The chest check refuses a film before any candidate sees it (one held-out NIH
            # film is stored upside down): counted, not scored.
            if row["error"]["code"] != "not_a_chest_xray":
                raise SystemExit(f"{folder}: {row['path']}: {row['error']}")
            answers[row["path"]] = float("nan")
            continue
        answers[row["path"]] = row["probabilities"]["covid"]
    if out.returncode != 0 or len(answers) != len(files):
        raise SystemExit(f"{folder}: xray predict failed ({out.returncode}): {out.stderr[-2000:]}")
    return np.array([answers[f] for f in files])


def bench(xray, folder, film, iterations):
    """Median load and inference milliseconds from `xray bench` on one film."""
    env = dict(os.environ, XRAY_MODEL_PATH=os.path.abspath(folder))
    out = subprocess.run([xray, "bench", "--iterations", str(iterations), film], env=env, capture_output=True, text=True, check=True)
    rows = {r["name"].split("/")[0]: r["median_ms"] for r in map(json.loads, out.stdout.splitlines())}
    return rows["load"], rows["inference"], rows["handler"]


def figures(p, is_covid, threshold):
    bacc, sens, spec = balanced_accuracy(p, is_covid, threshold)
    return {"n": int(len(p)), "roc_auc": roc_auc(p, is_covid), "balanced_accuracy": float(bacc), "sensitivity": float(sens), "specificity": float(spec)}


def score(folder, rows, files, args):
    card = json.load(open(os.path.join(folder, "model.json")))
    threshold = card["threshold"]
    p = predict(args.xray, folder, files)
    answered = ~np.isnan(p)
    refused = int((~answered).sum())
    p = p[answered]
    is_covid = np.array([r["label"] == "covid" for r in rows])[answered]
    source = np.array([r["source"] for r in rows])[answered]
    per = {}
    for s in sorted(set(source)):
        m = source == s
        right = (p[m] >= threshold) == is_covid[m]
        per[s] = {"n": int(m.sum()), "accuracy": float(right.mean()), "mean_p_covid": float(p[m].mean())}
    adults = source != CHILDREN
    children = source == CHILDREN
    load, inference, handler = bench(args.xray, folder, args.bench_film, args.iterations)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".onnx"))
    return {
        "name": os.path.basename(folder.rstrip("/")),
        "version": card["version"],
        "preprocess": card["input"]["preprocess"],
        "input_size": card["input"]["size"],
        "threshold": threshold,
        "test": figures(p, is_covid, threshold),
        "test_adults": figures(p[adults], is_covid[adults], threshold),
        "children_called_covid": int((p[children] >= threshold).sum()),
        "children": int(children.sum()),
        "refused_by_the_chest_check": refused,
        "by_source": per,
        "load_ms": load,
        "inference_ms": inference,
        "handler_ms": handler,
        "onnx_bytes": size,
        "training_seconds": json.load(open(os.path.join(folder, "training.json"))).get("seconds") if os.path.exists(os.path.join(folder, "training.json")) else None,
        "validation_threshold_rule": card.get("threshold_rule"),
        "collection_held_out": (card.get("metrics") or {}).get("collection_held_out"),
    }


def table(results, bench_film):
    sources = sorted({s for r in results for s in r["by_source"]})
    short = {s: f"`{s}`" for s in sources}
    lines = [
        f"Held-out test patients of the v2 split through `xray predict --json` ({results[0]['test']['n']} answered, "
        f"{results[0]['refused_by_the_chest_check']} refused by the chest check before any model); times from `xray bench` on "
        f"`{os.path.relpath(bench_film, ROOT)}` (median, this machine). Accuracy per collection at the candidate's own threshold; "
        "*P* is the mean P(covid).",
        "",
        "| candidate | input | ROC-AUC | balanced accuracy | sens. / spec. | children called COVID | "
        + " | ".join(f"{short[s]} acc. (*P*)" for s in sources)
        + " | threshold | load / inference | ONNX size | training |",
        "|---|---|---|---|---|---|" + "---|" * len(sources) + "---|---|---|---|",
    ]
    for r in results:
        t = r["test"]
        cells = [
            f"`{r['name']}` ({r['version']})",
            f"{r['input_size']} px, `{r['preprocess']}`",
            f"{t['roc_auc']:.3f}",
            f"{t['balanced_accuracy']:.3f}",
            f"{t['sensitivity']:.3f} / {t['specificity']:.3f}",
            f"{r['children_called_covid']}/{r['children']}",
            *[f"{r['by_source'][s]['accuracy']:.2f} ({r['by_source'][s]['mean_p_covid']:.2f})" if s in r["by_source"] else "" for s in sources],
            f"{r['threshold']:.3f}",
            f"{r['load_ms']:.1f} / {r['inference_ms']:.2f} ms",
            f"{r['onnx_bytes'] / 1e6:.2f} MB",
            f"{r['training_seconds'] / 60:.0f} min" if r["training_seconds"] else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    held = [r for r in results if r["collection_held_out"]]
    if held:
        lines += ["", "Collections left out of training (each in its own run; specificity for normal collections, sensitivity for COVID ones, at the candidate's threshold):", ""]
        cols = sorted({c for r in held for c in r["collection_held_out"]["collections"]})
        lines += ["| candidate | " + " | ".join(cols) + " | pooled left-out threshold |", "|---|" + "---|" * (len(cols) + 1)]
        for r in held:
            h = r["collection_held_out"]
            cs = h["collections"]
            pooled = h.get("pooled") or {}
            lines.append(
                f"| `{r['name']}` | "
                + " | ".join(f"{cs[c]['at_threshold']:.3f} (*P* {cs[c]['mean_p_covid']:.2f})" if c in cs else "" for c in cols)
                + f" | {pooled.get('threshold', float('nan')):.3f} (BA {pooled.get('balanced_accuracy', float('nan')):.3f}) |"
            )
    return "\n".join(lines) + "\n"


def replace_block(path, block):
    text = open(path).read()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + BEGIN + "\n" + block + END + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Candidates\n\n" + BEGIN + "\n" + block + END + "\n"
    open(path, "w").write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_args(ap)
    ap.add_argument("--candidates", default="model/candidates")
    ap.add_argument("--xray", default="target/release/xray")
    ap.add_argument("--bench-film", default=os.path.join(ROOT, "bench/large-1600x1800.jpg"))
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--card", default="model/README.md", help="the model card that shows the table between its markers")
    args = ap.parse_args()
    rows = load_split(args.data, args.pre, args.split)["test"]
    files = [os.path.join(args.data, r["file"]) for r in rows]
    folders = sorted(os.path.join(args.candidates, d) for d in os.listdir(args.candidates) if os.path.exists(os.path.join(args.candidates, d, "model.json")))
    results = []
    for folder in folders:
        results.append(score(folder, rows, files, args))
        r = results[-1]
        print(f"{r['name']}: AUC {r['test']['roc_auc']:.4f} BA {r['test']['balanced_accuracy']:.4f} children {r['children_called_covid']}/{r['children']}", flush=True)
    json.dump(results, open(os.path.join(args.candidates, "compare.json"), "w"), indent=2)
    block = table(results, args.bench_film)
    intro = (
        "# Candidate models\n\n"
        "Each folder is a model that `XRAY_MODEL_PATH=model/candidates/<name>` serves and `xray predict` answers with: "
        "the ONNX file, its model.json and its training record. They are kept so that they can be scored on films "
        "of hospitals that no version of the pool holds; in-pool figures do not rank them (docs/research/5.x.md). "
        "`training/candidates.sh` trains them; `python training/compare.py` writes this table.\n\n"
    )
    open(os.path.join(args.candidates, "README.md"), "w").write(intro + BEGIN + "\n" + block + END + "\n")
    if args.card and os.path.exists(args.card):
        replace_block(args.card, block)
    print(block)


if __name__ == "__main__":
    main()
