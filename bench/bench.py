"""Benchmarks: the Rust service beside its baselines, in one run, as medians and ratios.

    python3 bench/bench.py [--iterations 50] [--write-docs]

Needs Python with numpy, pillow and onnxruntime (training/requirements.txt) for the
baselines. It builds the release binaries, then measures on a fixture X-ray (512 px), on
bench/large-1600x1800.jpg and on the five real films at original size in
../shared/bench-films/ (gray and colour, baseline and progressive, 4 to 7.5 megapixels):

- per bench film, the warm handler against the strongest Python peer: Pillow with `draft()`
  (libjpeg-turbo's DCT-scaled decode to at least the model input) and onnxruntime, and
  against the same without `draft()`; then the medians over the five films;

- model load to a runnable plan, one inference, JPEG decoding alone, preprocessing alone, and
  a warm handler call (base64 JSON in, JSON out): `xray bench`, in-process;
- the same ONNX file in onnxruntime, one thread, on the identical preprocessed input;
- the Python pipeline a user would write instead: JSON + base64 + Pillow decode, gray, resize,
  equalise + onnxruntime, one thread;
- process start to model ready (`xray info`) against a hello-world Rust binary's start;
- `xray predict` on one image as a whole process: wall time and peak RSS;
- `xray-http`: time from process start to a 200 from /health, and peak RSS while serving the
  large JPEG.
"""
import argparse
import base64
import glob
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
FILES = [
    os.path.join(ROOT, "tests/fixtures/xrays/normal/nih-nofinding-00001326_002.jpg"),
    os.path.join(ROOT, "bench/large-1600x1800.jpg"),
]
# Real films at their original size (../shared/bench-films/README.md): what users send.
BENCH_FILMS_DIR = os.path.join(os.path.dirname(ROOT), "shared", "bench-films")


def bench_films():
    films = sorted(glob.glob(os.path.join(BENCH_FILMS_DIR, "*.jpg")))
    if not films:
        raise SystemExit(f"no films in {BENCH_FILMS_DIR}: the bench reads the five real films there")
    return films


def median_film():
    """The bench film of median file size: the film a cost estimate is made for."""
    films = sorted(bench_films(), key=os.path.getsize)
    return films[len(films) // 2]


def median_ms(f, n, warm=2):
    for _ in range(warm):
        f()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)


def ort_session(path):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def pil_gray(source, size, draft=False):
    """Pillow's decode to 8-bit gray. With `draft`, JPEGs decode at reduced DCT scale
    (libjpeg-turbo's scaled IDCT, 1/2 to 1/8) straight to gray, keeping at least the model
    input a side: the line a Python engineer who knows Pillow writes, and the fastest."""
    im = Image.open(source)
    if draft:
        im.draft("L", (size, size))
    return im.convert("L")


def python_pipeline(sess, size, mean, std, draft=False, equalise=True):
    """What a Python service would do per request: parse, decode, preprocess, infer, answer.

    With `draft`, Pillow decodes JPEGs at reduced DCT scale (libjpeg-turbo's scaled IDCT),
    keeping at least the model input: the same lever the Rust path pulls on large films.
    Without `equalise` (a model that standardises each film itself) the film is only resized.
    """

    def run(body):
        img_bytes = base64.b64decode(json.loads(body)["image"])
        im = pil_gray(io.BytesIO(img_bytes), size, draft).resize((size, size), Image.BILINEAR)
        if equalise:
            im = ImageOps.equalize(im)
        x = ((np.asarray(im, dtype=np.float32)[None, None] / 255.0 - mean) / std).astype(np.float32)
        p = float(sess.run(None, {"image": x})[0][0, 0])
        return json.dumps({"label": "covid" if p >= 0.5 else "normal", "probabilities": {"covid": p, "normal": 1 - p}})

    return run


GNU_TIME = "/usr/bin/time"


def wall_and_rss(cmd, n, env=None):
    """Median wall ms and max peak RSS (MB) of a whole process, over n runs.

    Wall time comes from this process. Peak RSS comes from GNU time, which forks the command
    from its own small process: a child forked from this Python process (numpy and
    onnxruntime loaded, ~80 MB) carries the parent's resident size into its `ru_maxrss`
    across exec, which once made `xray predict` look like an 85 MB process (it is ~31 MB).
    """
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"{GNU_TIME} (GNU time, Debian package 'time') is needed for peak RSS")
    walls, rss = [], []
    for _ in range(n):
        t = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        walls.append((time.perf_counter() - t) * 1e3)
        if p.returncode != 0:
            raise SystemExit(f"{cmd} failed with status {p.returncode}")
        r = subprocess.run([GNU_TIME, "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        rss.append(int(r.stderr.strip().splitlines()[-1]) / 1024)
    return statistics.median(walls), max(rss)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_post(port, path, body, ctype):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
        s.sendall(head.encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def http_get_status(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = s.recv(65536)
    return int(data.split(b" ", 2)[1])


def http_server_figures(films, starts=10, requests=20):
    """Start-to-/health time (median over `starts` processes) and peak RSS after `requests`
    raw and `requests` base64 JSON requests on each of `films`."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"} | {"RUST_LOG": "warn"}
    to_health = []
    rss = 0.0
    for i in range(starts):
        port = free_port()
        t = time.perf_counter()
        p = subprocess.Popen([os.path.join(REL, "xray-http")], env=env | {"PORT": str(port)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                if http_get_status(port, "/health") == 200:
                    break
            except OSError:
                time.sleep(0.0005)
        to_health.append((time.perf_counter() - t) * 1e3)
        if i == 0:
            for film in films:
                body = open(film, "rb").read()
                for _ in range(requests):
                    assert http_post(port, "/predict", body, "image/jpeg") == 200
                b64 = json.dumps({"image": base64.b64encode(body).decode()}).encode()
                for _ in range(requests):
                    assert http_post(port, "/predict", b64, "application/json") == 200
            status = open(f"/proc/{p.pid}/status").read()
            rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024
        p.kill()
        p.wait()
    return statistics.median(to_health), rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--write-docs", action="store_true", help="write the table into docs/performance.md")
    ap.add_argument("--model", help="time this ONNX file (a candidate) instead of model/xray.onnx, through XRAY_MODEL_PATH")
    ap.add_argument("--compare", metavar="MODEL", help="also time the warm handler and preprocessing with this other model (a folder with model.json, or an ONNX file with it beside), in the same run: the cost of a new model's pipeline against the old one's")
    args = ap.parse_args()
    if args.model:
        if args.write_docs:
            ap.error("--model times a candidate; docs/performance.md reports the committed model")
        os.environ["XRAY_MODEL_PATH"] = os.path.abspath(args.model)
    n = args.iterations

    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "xray", "--bin", "xray-http"], cwd=ROOT, check=True)
    hello = os.path.join(REL, "bench-hello")
    subprocess.run(["rustc", "-O", "-o", hello, os.path.join(ROOT, "bench/hello.rs")], check=True)

    card_path = os.environ.get("XRAY_MODEL_PATH")
    card_path = os.path.join(card_path if os.path.isdir(card_path or "") else os.path.dirname(card_path), "model.json") if card_path else os.path.join(ROOT, "model/model.json")
    card = json.load(open(card_path))
    equalise = "equalize" in card["input"]["preprocess"]
    size = card["input"]["size"]
    mean, std = 0.5, 0.2887
    onnx = os.environ.get("XRAY_MODEL_PATH") or os.path.join(ROOT, "model/xray.onnx")
    if os.path.isdir(onnx):
        onnx = os.path.join(onnx, card["file"])
    sess = ort_session(onnx)

    films = bench_films()
    out = subprocess.run([os.path.join(REL, "xray"), "bench", "--iterations", str(n), *FILES, *films], check=True, capture_output=True, text=True).stdout
    rust = {r["name"]: r["median_ms"] for r in map(json.loads, out.splitlines())}
    other = None
    if args.compare:
        compared = os.path.abspath(args.compare)
        compare_name = os.path.basename(compared if os.path.isdir(compared) else os.path.dirname(compared))
        env = dict(os.environ, XRAY_MODEL_PATH=compared)
        out = subprocess.run([os.path.join(REL, "xray"), "bench", "--iterations", str(n), *FILES], check=True, capture_output=True, text=True, env=env).stdout
        other = {r["name"]: r["median_ms"] for r in map(json.loads, out.splitlines())}

    tmp = tempfile.mkdtemp()
    for f in FILES:
        shutil.copy(f, tmp)
    pre = os.path.join(tmp, "pre")
    subprocess.run([os.path.join(REL, "xray"), "preprocess", tmp, pre], check=True, capture_output=True)

    rows = []
    ort_load = median_ms(lambda: ort_session(onnx), min(n, 20))
    rows.append(("model load to runnable plan", rust["load"], "onnxruntime session", ort_load))
    pipeline = python_pipeline(sess, size, mean, std, equalise=equalise)
    drafted = python_pipeline(sess, size, mean, std, draft=True, equalise=equalise)
    for f in FILES:
        name = os.path.basename(f)
        x = np.asarray(Image.open(os.path.join(pre, name + ".png")), dtype=np.float32)[None, None] / 255.0
        x = ((x - mean) / std).astype(np.float32)
        ort_inf = median_ms(lambda: sess.run(None, {"image": x}), n)
        rows.append((f"one inference ({name})", rust[f"inference/{name}"], "onnxruntime, 1 thread", ort_inf))
        body = json.dumps({"image": base64.b64encode(open(f, "rb").read()).decode()})
        pil_decode = median_ms(lambda: pil_gray(f, size), n)
        rows.append((f"JPEG decode to gray alone, as served ({name})", rust[f"decode/{name}"], "Pillow (libjpeg-turbo) decode+gray", pil_decode))
        if f == FILES[-1]:
            pil_draft = median_ms(lambda: pil_gray(f, size, draft=True), n)
            rows.append((f"JPEG decode to gray alone, as served ({name})", rust[f"decode/{name}"], "the same with Pillow draft() (DCT-scaled decode)", pil_draft))
        resize = lambda: pil_gray(f, size).resize((size, size), Image.BILINEAR)  # noqa: E731
        pil_pre = median_ms((lambda: ImageOps.equalize(resize())) if equalise else resize, n)
        rows.append((f"preprocess ({name})", rust[f"preprocess/{name}"], "Pillow decode+gray+resize" + ("+equalise" if equalise else ""), pil_pre))
        rows.append((f"warm handler, base64 JSON ({name})", rust[f"handler/{name}"], "Python: json+base64+Pillow+onnxruntime", median_ms(lambda: pipeline(body), n)))
        rows.append((f"the chest check alone, inside every warm request ({name})", rust[f"chest-check/{name}"], "the warm handler it is part of", rust[f"handler/{name}"]))
        rows.append((f"warm handler with the heatmap, `?explain=1` ({name})", rust[f"handler-explain/{name}"], "the same request without it", rust[f"handler/{name}"]))
        if other:
            rows.append((f"preprocess ({name})", rust[f"preprocess/{name}"], f"the same with {compare_name}'s model and pipeline", other[f"preprocess/{name}"]))
            rows.append((f"warm handler, base64 JSON ({name})", rust[f"handler/{name}"], f"the same with {compare_name}'s model and pipeline", other[f"handler/{name}"]))
        if f == FILES[-1]:
            rows.append((f"warm handler, base64 JSON ({name})", rust[f"handler/{name}"], "the same with Pillow draft() (DCT-scaled decode)", median_ms(lambda: drafted(body), n)))

    ours_ms, draft_ms, plain_ms = [], [], []
    for f in films:
        name = os.path.basename(f)
        body = json.dumps({"image": base64.b64encode(open(f, "rb").read()).decode()})
        ours = rust[f"handler/{name}"]
        d, p = median_ms(lambda: drafted(body), n), median_ms(lambda: pipeline(body), n)
        ours_ms.append(ours)
        draft_ms.append(d)
        plain_ms.append(p)
        rows.append((f"bench film {name}: JPEG decode to gray alone, as served", rust[f"decode/{name}"], "Pillow draft() decode to gray", median_ms(lambda: pil_gray(f, size, draft=True), n)))
        rows.append((f"bench film {name}: warm handler, base64 JSON", ours, "Python with Pillow draft() (the strongest peer)", d))
        rows.append((f"bench film {name}: warm handler, base64 JSON", ours, "Python with Pillow's full decode", p))
    med = statistics.median
    rows.append(("median over the five bench films: warm handler", med(ours_ms), "Python with Pillow draft()", med(draft_ms)))
    rows.append(("median over the five bench films: warm handler", med(ours_ms), "Python with Pillow's full decode", med(plain_ms)))
    speedups = sorted(d / o for o, d in zip(ours_ms, draft_ms))

    info_ms, _ = wall_and_rss([os.path.join(REL, "xray"), "info"], 20)
    hello_ms, _ = wall_and_rss([hello], 20)
    predict_ms, predict_rss = wall_and_rss([os.path.join(REL, "xray"), "predict", "--json", FILES[1]], 10)
    health_ms, http_rss = http_server_figures([FILES[1], *films])

    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu_name()}); {n} iterations; medians.",
        "",
        "| measurement | covid-xray (Rust, tract) | baseline | baseline ms | ratio (ours / baseline) |",
        "|---|---|---|---|---|",
    ]
    for what, ours, base_name, base in rows:
        lines.append(f"| {what} | {ours:.2f} ms | {base_name} | {base:.2f} | {ours / base:.2f} |")
    lines += [
        f"| process start to model ready (`xray info`) | {info_ms:.1f} ms | hello-world Rust binary | {hello_ms:.1f} | +{info_ms - hello_ms:.1f} ms over the floor |",
        f"| `xray-http` start to first 200 from /health | {health_ms:.1f} ms | | | |",
        f"| `xray predict` on the large JPEG, whole process | {predict_ms:.1f} ms, peak RSS {predict_rss:.1f} MB | | | |",
        f"| `xray-http` peak RSS after 40 requests on each of the large JPEG and the five bench films | {http_rss:.1f} MB | | | |",
        "",
        f"Against the `draft()` peer, the warm handler is {speedups[0]:.2f}x to {speedups[-1]:.2f}x as fast on the five bench films (median {med(speedups):.2f}x).",
    ]
    table = "\n".join(lines)
    print(table)
    if args.write_docs:
        write_docs_block("bench", "bench/bench.py", table)


def write_docs_block(marker, script, table):
    """Replaces what lies between `<!-- {marker}:start` and `<!-- {marker}:end -->` in
    docs/performance.md with `table`."""
    doc = os.path.join(ROOT, "docs", "performance.md")
    text = open(doc).read()
    start, end = text.find(f"<!-- {marker}:start"), text.find(f"<!-- {marker}:end -->")
    if start < 0 or end < 0:
        raise SystemExit(f"{doc} has no {marker} markers")
    block = f"<!-- {marker}:start (written by {script} --write-docs) -->\n" + table + "\n"
    open(doc, "w").write(text[:start] + block + text[end:])


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
