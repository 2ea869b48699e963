"""Load and soak: many mixed good and bad requests against the local server, then the figures.

    python3 bench/load.py [--requests 10000] [--concurrency 8] [--binary target/release/xray-http]

Standard library only. It starts `xray-http` on a free port, warms it up, then sends
`--requests` requests from `--concurrency` keep-alive connections: fixture X-rays as base64
JSON and as raw JPEG/PNG bodies, the large 1600x1800 JPEG, and bad requests of every class the
contract names (malformed JSON, bad base64, wrong media type, truncated JPEG, a 65535x65535
PNG header, an unknown route, a wrong method). Every response must have the status its case
expects; a 5xx, a dropped connection or a timeout fails the run.

It prints requests/s, p50/p90/p99 latency overall and per case, the status counts, and the
server's resident memory after the warm-up, after each tenth of the run, and at the end
(VmRSS, and VmHWM, the peak). Memory must not grow: the run fails if the resident memory at
the end exceeds the figure after the first tenth of the run and at least 1,000 requests (the
first stretch at full concurrency) by more than `--max-growth-mb` (default 16 MB).
"""
import argparse
import base64
import http.client
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def png_header_only(w, h):
    """A PNG whose IHDR claims w x h pixels and holds no pixel data."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def cases():
    """(name, method, path, content type, body, expected status) for every kind of request."""
    expected = json.load(open(os.path.join(FIXTURES, "expected.json")))["images"]
    xrays = [open(os.path.join(FIXTURES, "xrays", name), "rb").read() for name in sorted(expected)]
    jpeg = next(x for x in xrays if x[:2] == b"\xff\xd8")
    large = open(os.path.join(ROOT, "bench", "large-1600x1800.jpg"), "rb").read()
    out = []
    for x in xrays:
        out.append(("json-base64", "POST", "/predict", "application/json", json.dumps({"image": base64.b64encode(x).decode()}).encode(), 200))
        ctype = "image/jpeg" if x[:2] == b"\xff\xd8" else "image/png"
        out.append(("raw-image", "POST", "/predict", ctype, x, 200))
    out += [
        ("large-jpeg-json", "POST", "/predict", "application/json", json.dumps({"image": base64.b64encode(large).decode()}).encode(), 200),
        ("malformed-json", "POST", "/predict", "application/json", b'{"image": ', 400),
        ("bad-base64", "POST", "/predict", "application/json", b'{"image": "!!!not base64!!!"}', 400),
        ("wrong-media-type", "POST", "/predict", "text/plain", b"hello", 415),
        ("not-an-image", "POST", "/predict", "application/octet-stream", b"just some bytes, not an image", 415),
        ("truncated-jpeg", "POST", "/predict", "image/jpeg", jpeg[: len(jpeg) // 2], 422),
        ("huge-dimensions", "POST", "/predict", "image/png", png_header_only(65535, 65535), 413),
        ("unknown-route", "GET", "/nope", None, b"", 404),
        ("wrong-method", "GET", "/predict", None, b"", 405),
        ("health", "GET", "/health", None, b"", 200),
    ]
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "xray-http"))
    ap.add_argument("--max-growth-mb", type=float, default=16.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"} | {"PORT": str(port), "RUST_LOG": "warn"}
    server = subprocess.Popen([args.binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return run(args, port, server)
    finally:
        server.kill()
        server.wait()


def run(args, port, server):
    deadline = time.time() + 30
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("the server did not come up")
            time.sleep(0.01)
    all_cases = cases()
    rng = random.Random(args.seed)
    # About 60% good requests, 40% bad, in a fixed random order.
    good = [c for c in all_cases if c[5] == 200]
    bad = [c for c in all_cases if c[5] != 200]
    plan = [rng.choice(good) if rng.random() < 0.6 else rng.choice(bad) for _ in range(args.requests)]

    for case in all_cases:  # warm-up: every case once, checked
        status = send(http.client.HTTPConnection("127.0.0.1", port, timeout=60), case)[0]
        if status != case[5]:
            raise SystemExit(f"warm-up: {case[0]} answered {status}, expected {case[5]}")
    memory = [("after warm-up", memory_mb(server.pid), 0)]

    lock = threading.Lock()
    results, failures = [], []
    next_index = [0]
    tenth = max(1, args.requests // 10)

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= len(plan):
                return
            case = plan[i]
            try:
                status, ms, conn = send(conn, case)
            except Exception as e:  # a dropped connection or a timeout is a failure
                with lock:
                    failures.append(f"{case[0]}: {type(e).__name__}: {e}")
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            with lock:
                results.append((case[0], status, ms))
                if status != case[5]:
                    failures.append(f"{case[0]}: status {status}, expected {case[5]}")
                if (i + 1) % tenth == 0:
                    memory.append((f"after {i + 1} requests", memory_mb(server.pid), i + 1))

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    memory.append(("at the end", memory_mb(server.pid), len(plan)))

    latencies = [ms for _, _, ms in results]
    print(f"{len(results)} requests in {elapsed:.1f} s from {args.concurrency} connections: {len(results) / elapsed:.0f} requests/s")
    print(f"latency: p50 {pct(latencies, 50):.1f} ms, p90 {pct(latencies, 90):.1f} ms, p99 {pct(latencies, 99):.1f} ms, max {max(latencies):.1f} ms")
    statuses = {}
    for _, status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    print("statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    print("per case (count, p50, p99 ms):")
    for name in sorted({r[0] for r in results}):
        ms = [r[2] for r in results if r[0] == name]
        print(f"  {name:<18} {len(ms):>6} {statistics.median(ms):8.1f} {pct(ms, 99):8.1f}")
    print("server memory (MB):")
    for when, m, _ in memory:
        print(f"  {when:<24} RSS {m.get('VmRSS', 0):6.1f}  peak {m.get('VmHWM', 0):6.1f}")
    # The first stretch at full concurrency grows allocator arenas and buffers to their working
    # size: growth is measured from the first sample after a tenth of the run and at least
    # 1,000 requests (in a 2,000-request run the first tenth was still warming up).
    warm = [m for m in memory[1:-1] if m[2] >= max(len(plan) // 10, min(1000, len(plan) // 2))]
    base = warm[0] if warm else memory[0]
    growth = memory[-1][1]["VmRSS"] - base[1]["VmRSS"]
    print(f"RSS growth from {base[0]} to the end: {growth:+.1f} MB")
    five_xx = sum(n for s, n in statuses.items() if s >= 500)
    if failures or five_xx or growth > args.max_growth_mb:
        for f in failures[:20]:
            print("FAIL", f)
        print(f"FAILED: {len(failures)} failures, {five_xx} responses of class 5xx, RSS growth {growth:+.1f} MB (limit {args.max_growth_mb})")
        return 1
    print("OK: every response had its expected status, no 5xx, no dropped connection")
    return 0


def send(conn, case):
    """One request on a keep-alive connection; returns (status, ms, connection to reuse)."""
    _, method, path, ctype, body, _ = case
    headers = {"Content-Type": ctype} if ctype else {}
    t = time.perf_counter()
    conn.request(method, path, body=body or None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    ms = (time.perf_counter() - t) * 1e3
    if resp.status >= 400:
        json.loads(data)["error"]["code"]  # every error names its problem in JSON
    if resp.will_close:
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", conn.port, timeout=60)
    return resp.status, ms, conn


if __name__ == "__main__":
    sys.exit(main())
