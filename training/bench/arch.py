"""Candidate network shapes timed in tract and onnxruntime, one thread, random weights.

    .venv/bin/python training/bench/arch.py [--iterations 300] [NAME...]

Exports each candidate to build/arch/NAME.onnx with batch norm folded (eval mode), times it
in onnxruntime here and in tract through `cargo run --release --example tract_time`, and
prints both medians and their ratio. Accuracy is not measured: a shape worth training is one
whose ratio meets a 1.5x floor at the same compute as the model it replaces.
`model2` is model 2.x's network; `train.py` is the one training/train.py trains by default and
`train.py:ARCH` the one `train.py --arch ARCH` trains (its `ARCHS`).
`--int8` adds model/xray.onnx quantized by onnxruntime (static, per-channel int8 weights), as
QDQ and as QOperator ops (convolutions and pools only: tract has no QLinearGlobalAveragePool).
Random inputs calibrate it: these rows time it, they do not judge its accuracy.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "training"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from bench import median_ms, ort_session  # noqa: E402
from train import ARCHS, XrayNet, split_max_pools  # noqa: E402


def cbr(cin, cout, k=3, stride=1, pad=1):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def head(c):
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 2)]


POOL = nn.MaxPool2d(2)
STEM4 = cbr(1, 32, 4, 4, 0)
CANDIDATES = {
    # model 2.x: 4x4 stem, a 3x3 convolution at 48x48, max-pools
    "model2": [*STEM4, *cbr(32, 48), POOL, *cbr(48, 96), POOL, *cbr(96, 128), *cbr(128, 128), POOL, *cbr(128, 160), *head(160)],
    # 8x8 stem, a 3x3 convolution at 24x24, max-pools
    "stem8-pool": [*cbr(1, 64, 8, 8, 0), *cbr(64, 96), POOL, *cbr(96, 128), *cbr(128, 128), POOL, *cbr(128, 160), *cbr(160, 160), *head(160)],
    # the same with 3x3 stride-2 convolutions instead of the pools
    "stem8-s2": [*cbr(1, 64, 8, 8, 0), *cbr(64, 96), *cbr(96, 128, 3, 2), *cbr(128, 128), *cbr(128, 128), *cbr(128, 192, 3, 2), *cbr(192, 192), *cbr(192, 192), *head(192)],
    # 8x8 stem, a 3x3 convolution at 24x24, 2x2 stride-2 convolutions instead of the pools
    # (trained as run 8: validation AUC 0.987, model 2.1.0 0.992; not adopted)
    "stem8-k2": [*cbr(1, 64, 8, 8, 0), *cbr(64, 96), *cbr(96, 128, 2, 2, 0), *cbr(128, 128), *cbr(128, 128), *cbr(128, 192, 2, 2, 0), *cbr(192, 192), *cbr(192, 192), *head(192)],
    # train.py's `k2` (trained as runs 12-14, with `k2pool`: `train.py:k2`, `train.py:k2pool`)
    # with a 2x2 stride-2 convolution for the last max-pool too
    "stem4-k2-all": [*STEM4, *cbr(32, 64, 2, 2, 0), *cbr(64, 96), *cbr(96, 128, 2, 2, 0), *cbr(128, 128), *cbr(128, 128), *cbr(128, 160, 2, 2, 0), *cbr(160, 160), *head(160)],
    # 8x8 stem straight to 12x12 (trained as run 7: validation AUC 0.980; not adopted)
    "stem8-to12": [*cbr(1, 48, 8, 8, 0), *cbr(48, 96, 3, 2), *cbr(96, 128), *cbr(128, 128), *cbr(128, 128), *cbr(128, 192, 3, 2), *cbr(192, 192), *cbr(192, 192), *head(192)],
}


def train_py(arch="pool"):
    net = XrayNet(arch)
    return list(net.features) + [m for m in net.head if not isinstance(m, nn.Dropout)]


def ort_ms(path, x, iterations):
    """onnxruntime's median on one thread, configured as bench/bench.py's baseline."""
    sess = ort_session(path)
    return median_ms(lambda: sess.run(None, {"image": x}), iterations, warm=100)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--int8", action="store_true", help="also time model/xray.onnx quantized to int8")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    side = 192
    names = args.names or [*CANDIDATES, "train.py", *(f"train.py:{a}" for a in ARCHS if a != "pool")]
    out = os.path.join(ROOT, "build", "arch")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    x = torch.randn(1, 1, side, side)
    rows = {}
    for name in names:
        layers = train_py(name.partition(":")[2] or "pool") if name.startswith("train.py") else CANDIDATES[name]
        net = nn.Sequential(*layers).eval()
        macs = sum(
            m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] * o.shape[2] * o.shape[3] // m.groups
            for m, o in conv_outputs(net, x)
        )
        path = os.path.join(out, f"{name}.onnx")
        torch.onnx.export(net, x, path, opset_version=17, input_names=["image"], output_names=["logits"], dynamo=False)
        split_max_pools(path)  # as train.py exports every model since 3.2.1
        rows[name] = (macs, ort_ms(path, x.numpy(), args.iterations), path)
    if args.int8:
        for name, path in quantized(out, x.numpy()):
            rows[name] = (float("nan"), ort_ms(path, x.numpy(), args.iterations), path)
    cmd = ["cargo", "run", "--quiet", "--release", "--example", "tract_time", "--"]
    cmd += [f"{p}:{side}" for _, _, p in rows.values()] + [str(args.iterations)]
    tract = {}
    for line in subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout.splitlines():
        path, _, ms = line.rsplit(" ", 2)
        tract[path] = float(ms)
    print(f"| network | MMAC | tract ms | onnxruntime ms | ratio |\n|---|---|---|---|---|")
    for name, (macs, ort_t, path) in rows.items():
        print(f"| {name} | {'' if macs != macs else f'{macs / 1e6:.0f}'} | {tract[path]:.3f} | {ort_t:.3f} | {tract[path] / ort_t:.2f} |")


def quantized(out, x):
    """model/xray.onnx quantized to int8 by onnxruntime: [(name, path)]."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Random(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.batches = iter([{"image": rng.standard_normal(x.shape, dtype=np.float32)} for _ in range(16)])

        def get_next(self):
            return next(self.batches, None)

    pre = os.path.join(out, "model-pre.onnx")
    quant_pre_process(os.path.join(ROOT, "model", "xray.onnx"), pre)
    made = []
    for name, fmt, ops in (("int8-qdq", QuantFormat.QDQ, None), ("int8-qop", QuantFormat.QOperator, ["Conv", "MaxPool"])):
        path = os.path.join(out, f"{name}.onnx")
        quantize_static(pre, path, Random(), quant_format=fmt, per_channel=True, op_types_to_quantize=ops,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        made.append((name, path))
    return made


def conv_outputs(net, x):
    """(conv, its output) for every convolution, from one forward pass."""
    found = []
    hooks = [m.register_forward_hook(lambda m, i, o: found.append((m, o))) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return found


if __name__ == "__main__":
    main()
