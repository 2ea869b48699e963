"""One inference in tract against onnxruntime, model by model, in alternating rounds.

    python3 bench/inference.py [model/candidates/plain model/candidates/ref-4.0.0 ...] [--rounds 3]

For each model folder: the median of `xray bench`'s inference (tract, the served plan, one
thread) and of onnxruntime on the same ONNX file (one thread), 200 runs each, on a fixture
X-ray; rounds alternate the models so that a busy moment of the machine falls on all of them.
The ratio is what the model floor "inference at most 2x onnxruntime" reads. Needs the release
`xray` binary and Python with training/requirements.txt.
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILM = os.path.join(ROOT, "tests/fixtures/xrays/normal/nih-nofinding-00001326_002.jpg")


def ort_ms(path, size, n):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 1, size, size), dtype=np.float32)
    for _ in range(10):
        s.run(None, {"image": x})
    t = []
    for _ in range(n):
        a = time.perf_counter()
        s.run(None, {"image": x})
        t.append((time.perf_counter() - a) * 1e3)
    return statistics.median(t)


def tract_ms(folder, n):
    env = dict(os.environ, XRAY_MODEL_PATH=os.path.abspath(folder))
    out = subprocess.run([os.path.join(ROOT, "target/release/xray"), "bench", "--iterations", str(n), FILM], env=env, capture_output=True, text=True, check=True).stdout
    return next(r["median_ms"] for r in map(json.loads, out.splitlines()) if r["name"].startswith("inference/"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=["model/candidates/plain", "model/candidates/ref-4.0.0"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=200)
    args = ap.parse_args()
    ratios = {m: [] for m in args.models}
    for r in range(args.rounds):
        for m in args.models:
            card = json.load(open(os.path.join(m, "model.json")))
            t, o = tract_ms(m, args.iterations), ort_ms(os.path.join(m, card["file"]), card["input"]["size"], args.iterations)
            ratios[m].append(t / o)
            print(f"round {r} {m}: tract {t:.2f} ms, onnxruntime {o:.2f} ms, ratio {t / o:.2f}", flush=True)
    for m, rs in ratios.items():
        print(f"{m}: tract / onnxruntime median {statistics.median(rs):.2f} (rounds {', '.join(f'{x:.2f}' for x in rs)})")


if __name__ == "__main__":
    main()
