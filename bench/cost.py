"""What a million predictions cost on Lambda: covid-xray beside the Python onnxruntime peer,
measured side by side in one run on this machine.

    python bench/cost.py [--requests 100] [--repeats 5] [--cold-every 20] [--write-docs]

For each service (`xray-http`; `bench/peer.py`, the pipeline bench/bench.py times, as a
server, with Pillow's `draft()`: the strongest Python peer; the same peer decoding every
pixel) and each film (a 512 px fixture and the bench film of median file size from
../shared/bench-films/, a real 2000x2000 film, sent as base64 JSON, as API Gateway hands a
body to Lambda), processes pinned to one core are run three ways and
their CPU time read from the kernel when they end (`wait4`: every thread, to the
microsecond):

- start, answer /health, stop: the init;
- the same plus one request: the first request of a cold sandbox;
- the same plus one and `--requests` more: a warm request is the difference over `--requests`.

Peak RSS is the server's VmHWM after the warm requests. Those figures become Lambda cost with
the constants and assumptions printed beside the table (and written into
docs/performance.md with --write-docs): the smallest memory size that holds the peak RSS with
headroom, a CPU share proportional to memory, billed init, 1 ms billing.
"""
import argparse
import base64
import json
import math
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import FILES, REL, ROOT, cpu_name, free_port, http_get_status, http_post, median_film, write_docs_block  # noqa: E402

# AWS Lambda prices, us-east-1, on-demand (https://aws.amazon.com/lambda/pricing/), for the
# template's architecture (arm64) and for x86_64.
PRICE_GB_S = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
PRICE_PER_MILLION_REQUESTS = 0.20
# Lambda gives a function one full vCPU at 1,769 MB and a share proportional to memory below.
FULL_VCPU_MB = 1769
MIN_MB = 128
HEADROOM = 1.25


def pinned():
    """Runs the child on core 0 only: single-core CPU time, as a small Lambda has."""
    os.sched_setaffinity(0, {0})


def start(cmd, port, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"}
    env |= {"PORT": str(port), "RUST_LOG": "warn", "OMP_NUM_THREADS": "1"} | (extra_env or {})
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pinned)
    while True:
        try:
            if http_get_status(port, "/health") == 200:
                break
        except OSError:
            time.sleep(0.001)
        if p.poll() is not None:
            raise SystemExit(f"{cmd} exited with {p.returncode} before answering /health")
    return p, (time.perf_counter() - t) * 1e3


def stop(p):
    """Kills the server; its whole CPU time in ms (user + system, all threads) and peak RSS."""
    status = open(f"/proc/{p.pid}/status").read()
    hwm = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024
    p.kill()
    _, _, usage = os.wait4(p.pid, 0)
    return (usage.ru_utime + usage.ru_stime) * 1e3, hwm


def one_process(cmd, body, requests):
    """Start, `requests` predictions, stop: (wall ms to /health, CPU ms, peak RSS MB)."""
    cmd, extra_env = cmd
    port = free_port()
    p, ready_ms = start(cmd, port, extra_env)
    for _ in range(requests):
        status = http_post(port, "/predict", body, "application/json")
        if status != 200:
            p.kill()
            raise SystemExit(f"{cmd}: /predict answered {status}")
    cpu, hwm = stop(p)
    return ready_ms, cpu, hwm


def measure(cmd, body, n, repeats):
    """Init, first request and warm request CPU ms, init wall ms, peak RSS MB: medians."""
    init, first, warm, ready, rss = [], [], [], [], 0.0
    for _ in range(repeats):
        r0, c0, _ = one_process(cmd, body, 0)
        _, c1, _ = one_process(cmd, body, 1)
        _, cn, h = one_process(cmd, body, 1 + n)
        init.append(c0)
        ready.append(r0)
        first.append(max(c1 - c0, 0.0))
        warm.append((cn - c1) / n)
        rss = max(rss, h)
    med = statistics.median
    return {"init_cpu_ms": med(init), "init_wall_ms": med(ready), "first_cpu_ms": med(first), "warm_cpu_ms": med(warm), "peak_rss_mb": rss}


def lambda_cost(m, cold_every, arch):
    """Dollars per million predictions, warm only and with one request in `cold_every` cold."""
    mb = max(MIN_MB, math.ceil(m["peak_rss_mb"] * HEADROOM))
    share = min(1.0, mb / FULL_VCPU_MB)
    # On a CPU share, CPU-bound time stretches by 1/share. Init is billed (provided.al2023
    # always; managed runtimes since August 2025), at least as long as it took here.
    warm_ms = math.ceil(m["warm_cpu_ms"] / share)
    cold_ms = math.ceil(max(m["init_cpu_ms"] / share, m["init_wall_ms"])) + math.ceil(m["first_cpu_ms"] / share)
    gb_ms = mb / 1024 * PRICE_GB_S[arch] / 1e3
    warm = 1e6 * warm_ms * gb_ms + PRICE_PER_MILLION_REQUESTS
    mixed_ms = (warm_ms * (cold_every - 1) + cold_ms) / cold_every
    mixed = 1e6 * mixed_ms * gb_ms + PRICE_PER_MILLION_REQUESTS
    cold_share = (cold_ms / cold_every) / mixed_ms
    return {
        "memory_mb": mb, "warm_ms": warm_ms, "cold_ms": cold_ms, "warm_usd": warm, "mixed_usd": mixed,
        "mixed_duration_usd": mixed - PRICE_PER_MILLION_REQUESTS, "cold_share": cold_share,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100, help="warm requests per measuring process")
    ap.add_argument("--repeats", type=int, default=5, help="processes of each kind; medians are reported")
    ap.add_argument("--cold-every", type=int, default=20, help="one request in this many starts a sandbox")
    ap.add_argument("--arch", choices=sorted(PRICE_GB_S), default="arm64")
    ap.add_argument("--write-docs", action="store_true", help="write the table into docs/performance.md")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "xray-http"], cwd=ROOT, check=True)
    peer = [sys.executable, os.path.join(ROOT, "bench", "peer.py")]
    services = {
        "covid-xray (Rust, tract)": ([os.path.join(REL, "xray-http")], {}),
        "Python peer (Pillow draft(), onnxruntime)": (peer, {"PEER_DRAFT": "1"}),
        "Python peer (Pillow full decode, onnxruntime)": (peer, {"PEER_DRAFT": "0"}),
    }
    rows = []
    median = median_film()
    for path in (FILES[0], median):
        body = json.dumps({"image": base64.b64encode(open(path, "rb").read()).decode()}).encode()
        film = "512 px fixture" if path == FILES[0] else f"median bench film ({os.path.basename(path)})"
        for name, cmd in services.items():
            m = measure(cmd, body, args.requests, args.repeats)
            rows.append((film, name, m, lambda_cost(m, args.cold_every, args.arch)))
            print(film, name, json.dumps(m), json.dumps(rows[-1][3]), flush=True)

    lines = [
        f"Machine: {cpu_name()}, each server pinned to one core; {args.requests} warm requests x {args.repeats} processes, medians.",
        f"Prices: {args.arch}, ${PRICE_GB_S[args.arch]:.10f} per GB-second, ${PRICE_PER_MILLION_REQUESTS} per million requests (us-east-1).",
        "",
        f"| film | service | init CPU ms | first request ms | warm request ms | peak RSS MB | Lambda MB | warm billed ms | cold billed ms | $ / million, warm | $ / million, 1 in {args.cold_every} cold | cold share of cost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for film, name, m, c in rows:
        lines.append(
            f"| {film} | {name} | {m['init_cpu_ms']:.1f} | {m['first_cpu_ms']:.2f} | {m['warm_cpu_ms']:.2f} | {m['peak_rss_mb']:.1f} | "
            f"{c['memory_mb']} | {c['warm_ms']} | {c['cold_ms']} | {c['warm_usd']:.2f} | {c['mixed_usd']:.2f} | {c['cold_share']:.0%} |"
        )
    lines.append("")
    for film in dict.fromkeys(r[0] for r in rows):
        ours, *peers = [r[3] for r in rows if r[0] == film]
        for which, peer in zip(("the draft() peer", "the full-decode peer"), peers):
            lines.append(
                f"- {film}: covid-xray costs {ours['mixed_usd'] / peer['mixed_usd']:.2f}x {which} with one request in "
                f"{args.cold_every} cold ({ours['mixed_duration_usd'] / peer['mixed_duration_usd']:.2f}x of the duration charge, "
                f"without the ${PRICE_PER_MILLION_REQUESTS:.2f} per million requests both pay), {ours['warm_usd'] / peer['warm_usd']:.2f}x warm only."
            )
    table = "\n".join(lines)
    print(table)
    if args.write_docs:
        write_docs_block("cost", "bench/cost.py", table)


if __name__ == "__main__":
    sys.exit(main())
