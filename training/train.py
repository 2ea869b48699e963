"""Train the COVID-19 / normal chest X-ray CNN on the CPU and export it to ONNX.

Input: the 8-bit model-input images written by `xray preprocess` (the Rust preprocessing that
serving uses), the manifest, and training/split.csv. Augmentation is applied on top of those
images here; normalisation uses the mean and std that `xray preprocess` wrote beside them.

Only the validation split chooses the epoch, the calibration and the threshold. The test split
is read once, at the end, through onnxruntime on the exported file, by evaluate.py.

    python training/train.py --pre build/pre --data ../shared/data/cxr --out model
"""
import argparse
import csv
import functools
import json
import math
import os
import random
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import helper
from PIL import Image

# Models 3.x's seed of initialisation, batch order and augmentation: one of two fresh seeds
# their adoption rule was written for (docs/research/3.x.md).
MODEL_SEED = 3
LABELS = ["covid", "normal"]  # index 0 = covid: the ONNX output is [p_covid, p_normal]


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def data_args(ap):
    """The pool, preprocessed images and split every training script reads."""
    ap.add_argument("--data", default="../shared/data/cxr")
    ap.add_argument("--pre", default="build/pre")
    ap.add_argument("--split", default="training/split.csv")


def load_split(data_dir, pre_dir, split_csv):
    manifest = {r["file"]: r for r in csv.DictReader(open(os.path.join(data_dir, "manifest.csv"), newline=""))}
    out = {"train": [], "val": [], "test": []}
    for r in csv.DictReader(open(split_csv, newline="")):
        m = manifest[r["file"]]
        out[r["split"]].append({**m, "pre": os.path.join(pre_dir, r["file"] + ".png")})
    return out


def validation_films(args):
    """The validation rows of the split `data_args` named, and which of them are COVID films."""
    rows = load_split(args.data, args.pre, args.split)["val"]
    return rows, np.array([r["label"] == "covid" for r in rows])


def crop_path(pre_dir, file, k):
    """Where `xray preprocess --crops` wrote the `k`-th tighter framing of the pool's `file`."""
    return os.path.join(pre_dir, "crops", f"{file}.{k}.png")


def load_images(rows):
    x = np.stack([np.asarray(Image.open(r["pre"]), dtype=np.uint8) for r in rows])
    y = np.array([LABELS.index(r["label"]) for r in rows], dtype=np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def load_crops(rows, pre_dir, count):
    """The tighter framings `xray preprocess --crops` wrote: uint8 [N, count, 1, S, S]."""
    x = np.stack(
        [
            np.stack(
                [np.asarray(Image.open(crop_path(pre_dir, r["file"], i)), dtype=np.uint8) for i in range(count)]
            )
            for r in rows
        ]
    )
    return torch.from_numpy(x).unsqueeze(2)


def frame(x_u8, crops, y, p_crop, gen):
    """Swap films for one of their tighter framings with the probability their class is given.

    Class-conditional on purpose. The COVID films of the pool are mostly tight crops from
    publications and the normals whole films, so the pool ties the field of view to the label;
    the same zoom for both classes only blurs that tie. Showing normal films framed as tightly
    as the COVID ones loosens it (always showing them so removes it, and costs validation AUC:
    training/README.md). The crops were made from the original films by the Rust
    preprocessing, as serving would prepare such a film.
    """
    if crops is None:
        return x_u8
    swap = torch.rand(len(y), generator=gen) < p_crop[y]
    which = torch.randint(0, crops.shape[1], (len(y),), generator=gen)
    x_u8 = x_u8.clone()
    x_u8[swap] = crops[swap, which[swap]]
    return x_u8


def conv_bn(cin, cout, stride=1):
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def downsample_conv(cin, cout):
    """A learned 2x2 stride-2 downsampling: each output reads its own 2x2 patch, so tract's
    im2col is a cheap gather where a 3x3 convolution and a max-pool at 48x48 were its slowest
    stage (`training/bench/arch.py`)."""
    return [nn.Conv2d(cin, cout, 2, stride=2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def stem():
    """A 4x4 stride-4 convolution: a learned projection of each 4x4 patch, 192 -> 48."""
    return [nn.Conv2d(1, 32, 4, stride=4, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True)]


ARCHS = {
    # Model 2.x: a 3x3 convolution and a max-pool at 48x48, ~101 MMAC.
    "pool": lambda: [
        *stem(),  # 48
        *conv_bn(32, 48), nn.MaxPool2d(2),  # 24
        *conv_bn(48, 96), nn.MaxPool2d(2),  # 12
        *conv_bn(96, 128),
        *conv_bn(128, 128), nn.MaxPool2d(2),  # 6
        *conv_bn(128, 160),
    ],
    # No 3x3 convolution at 48x48: 2x2 stride-2 convolutions down to 24 and to 12, one more
    # 3x3 convolution at 12x12, the last max-pool kept. ~94 MMAC; tract 1.7x onnxruntime
    # where "pool" is 2.0-2.2x (`training/bench/arch.py train.py:k2 model2`).
    "k2": lambda: [
        *stem(),  # 48
        *downsample_conv(32, 64),  # 24
        *conv_bn(64, 96),
        *downsample_conv(96, 128),  # 12
        *conv_bn(128, 128),
        *conv_bn(128, 128), nn.MaxPool2d(2),  # 6
        *conv_bn(128, 160),
    ],
    # The plain CNN probe's network (540K parameters): a 3x3 stride-2 stem at full resolution,
    # then 3x3 convolutions and max-pools to 1/16, widths 16 to 256. About four times the
    # work of k2pool at 192 px and more at 224; a candidate, not held to the speed floors.
    "probe": lambda: [
        *conv_bn(1, 16, stride=2),
        *conv_bn(16, 32), nn.MaxPool2d(2),
        *conv_bn(32, 64), nn.MaxPool2d(2),
        *conv_bn(64, 128),
        *conv_bn(128, 128), nn.MaxPool2d(2),
        *conv_bn(128, 256),
    ],
    # Model 3.x: "k2" with the 24x24 max-pool back; only the 48x48 convolution and max-pool are replaced.
    # ~82 MMAC; tract 1.8-1.9x onnxruntime (`training/bench/arch.py train.py:k2pool`).
    "k2pool": lambda: [
        *stem(),  # 48
        *downsample_conv(32, 64),  # 24
        *conv_bn(64, 96), nn.MaxPool2d(2),  # 12
        *conv_bn(96, 128),
        *conv_bn(128, 128), nn.MaxPool2d(2),  # 6
        *conv_bn(128, 160),
    ],
}


class XrayNet(nn.Module):
    """A small VGG-style CNN with a patchify stem, shaped for what tract runs fast.

    - The stem is a 4x4 convolution with stride 4 (a learned projection of each 4x4 patch),
      so no 3x3 convolution runs at full resolution. A 1-channel 3x3 stride-2 stem spent 1 ms
      of a 6 ms tract inference on 2 MMAC: tract's matrix kernels starve at depth 9.
    - Then plain 3x3 convolutions, batch norm (folded at export), ReLU and max-pool in NCHW;
      depthwise convolutions were measured 4.6x slower in tract.
    - The 48x48 stage is where tract trails onnxruntime most (about 2x, and its max-pool
      10x). Networks with an 8x8 stem and no 48x48 stage come within 1.4-1.6x
      (`training/bench/arch.py`), but the two trained reached validation AUC 0.980 and
      0.987 against this network's 0.992. `k2pool` and `k2` keep the 4x4 stem and replace
      the 48x48 stage with 2x2 stride-2 convolutions: within 2x in tract. Alone, they read
      tighter framings of normal films as COVID more often than `pool`; with the normal
      films shown tighter half of the time (`--crop-normal 0.5`) they read them so half as
      often, and `k2pool` so trained is model 3.0.0 (docs/research/3.x.md).
    About 0.5M parameters, 2.0 MB as float32, ~101 MMAC per image (`pool`), ~82 (`k2pool`).
    """

    def __init__(self, arch="pool", standardize=False):
        super().__init__()
        self.standardize = standardize
        self.features = nn.Sequential(*ARCHS[arch]())
        width = [m for m in self.features if isinstance(m, nn.Conv2d)][-1].out_channels
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(width, 2))

    def forward(self, x):
        if self.standardize:
            x = standardize(x)
        # Called through `head`, so the ONNX export names its nodes `/net/head.0/...` as
        # every model since 2.0.0 did: retrained, the committed recipe writes the committed
        # file byte for byte.
        return self.head(self.features(x))


class Ensemble(nn.Module):
    """Networks trained alike from other seeds, as one network: their feature grids side by
    side, one global average pooling, and one linear layer holding each member's weights
    divided by the number of members. Its logits are exactly the mean of the members', and it
    keeps the single-head shape that class activation mapping explains (src/model/cam.rs), so
    the served heatmap is the mean of the members' maps. Members share the standardisation."""

    def __init__(self, members):
        super().__init__()
        self.standardize = members[0].standardize
        self.members = nn.ModuleList(m.features for m in members)
        k = len(members)
        linears = [m.head[-1] for m in members]
        head = nn.Linear(sum(lin.in_features for lin in linears), 2)
        with torch.no_grad():
            head.weight.copy_(torch.cat([lin.weight for lin in linears], 1) / k)
            head.bias.copy_(sum(lin.bias for lin in linears) / k)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)

    def forward(self, x):
        if self.standardize:
            x = standardize(x)
        return self.head(torch.cat([f(x) for f in self.members], 1))


def load_member(folder):
    """A finished run's network (its weights.pt and training.json)."""
    t = json.load(open(os.path.join(folder, "training.json")))
    net = XrayNet(t.get("arch", "pool"), t.get("standardize", False))
    net.load_state_dict(torch.load(os.path.join(folder, "weights.pt")))
    return net.eval(), t


def standardize(x):
    """Each image less its own mean, over its own standard deviation: the first operation of a
    network trained on unequalised films (`xray preprocess --plain`), inside the exported graph,
    so that serving cannot skip it. Any affine scaling of the input before it cancels out."""
    centred = x - x.mean(dim=(2, 3), keepdim=True)
    return centred / torch.sqrt((centred * centred).mean(dim=(2, 3), keepdim=True) + 1e-6)


def optimizer_name(weight_decay):
    """training.json's `optimizer`: the default decay spelt `5e-4`, as every model's card has it."""
    decay = "5e-4" if weight_decay == 5e-4 else f"{weight_decay:g}"
    return f"AdamW (weight decay {decay}), one-cycle schedule"


def split_max_pools(path):
    """Rewrite the ONNX file at `path` so that each 2x2 stride-2 max-pool is a 2x1 pool over rows
    followed by a 1x2 pool over columns: the same maxima, bit for bit, as max is exact. tract
    0.23 runs the pair about 4x faster than the square pool (0.06 against 0.24 ms of a 1.3 ms
    inference on an AVX-512 EPYC), onnxruntime at the same speed, so tract's ratio to
    onnxruntime falls from 2.0 to about 1.7 there (docs/performance.md). Only the pool nodes
    change, and onnx saves an unchanged graph to the bytes torch wrote."""
    model = onnx.load(path)
    nodes = []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        square = node.op_type == "MaxPool" and attrs.get("kernel_shape") == [2, 2] and attrs.get("strides") == [2, 2]
        if not square or any(attrs.get(k, d) != d for k, d in (("pads", [0, 0, 0, 0]), ("dilations", [1, 1]), ("ceil_mode", 0))):
            nodes.append(node)
            continue
        rows = node.output[0] + "_rows"
        nodes.append(helper.make_node("MaxPool", [node.input[0]], [rows], name=node.name + "_rows", kernel_shape=[2, 1], strides=[2, 1]))
        nodes.append(helper.make_node("MaxPool", [rows], [node.output[0]], name=node.name + "_cols", kernel_shape=[1, 2], strides=[1, 2]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, path)


class Calibrated(nn.Module):
    """What is exported: calibrated probabilities, `P(covid) = sigmoid(a * (l_covid - l_normal) + b)`.

    Platt scaling: `a` undoes over-confidence (as a temperature `1/a` would) and `b` undoes
    the shift the class-weighted loss gives the logits. It is written as a softmax over
    `[a * l_covid + b/2, a * l_normal - b/2]`, whose first entry is exactly that sigmoid.
    """

    def __init__(self, net, scale, bias):
        super().__init__()
        self.net = net
        self.register_buffer("scale", torch.tensor(scale))
        self.register_buffer("shift", torch.tensor([bias / 2, -bias / 2]))

    def forward(self, image):
        return torch.softmax(self.net(image) * self.scale + self.shift, dim=1)


@functools.lru_cache(maxsize=4)
def identity_grid(s):
    """`F.affine_grid`'s sampling positions of an S x S image: x and y, each [1, S, S]."""
    grid = F.affine_grid(torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]), (1, 1, s, s), align_corners=False)
    return grid[..., 0], grid[..., 1]


def affine_grid(theta, s):
    """`F.affine_grid(theta, [B, 1, S, S], align_corners=False)` in half its time: three
    multiply-adds per position instead of a batched matrix product, bit for bit the same on
    this project's training machine (training/bench/augment.py checks it)."""
    gx, gy = identity_grid(s)
    t = theta.reshape(-1, 6, 1, 1)
    return torch.stack([gx * t[:, 0] + gy * t[:, 1] + t[:, 2], gx * t[:, 3] + gy * t[:, 4] + t[:, 5]], -1)


def add_noise(x, chosen, noise, level):
    """`x + chosen * noise * 0.03 * level` for a batch [B,1,S,S], `chosen` a bool [B] and
    `level` [B,1,1,1], bit for bit, computed only on the chosen films (a quarter): the others
    gain exactly zero. Modifies `x`."""
    if chosen.any():
        x[chosen] = x[chosen] + noise[chosen] * 0.03 * level[chosen]
    return x


def augment(x, gen, zoom=(0.6, 1.2), periphery=0.4):
    """Augment a uint8 batch [B,1,S,S] -> float [B,1,S,S] in [0,1].

    Each step denies a shortcut the data README warns of:
    - random scale, aspect ratio, shift and rotation: image size, framing and aspect ratio;
    - horizontal flip: side markers (L/R) and their position;
    - gamma, contrast, brightness, blur, noise: a collection's exposure and scanner texture;
    - painted boxes and bars at random places on both classes: text markers, arrows, labels.
    """
    b, _, s, _ = x.shape
    x = x.float() / 255.0
    u = lambda *shape: torch.rand(*shape, generator=gen)
    # Zoom: <1 crops in, >1 shows the whole film. Wide, because the collections differ in field
    # of view (tight publication crops of COVID films, whole NIH films with neck and abdomen):
    # with 0.75-1.1, the central 80% of a normal NIH film read as COVID.
    scale = zoom[0] + (zoom[1] - zoom[0]) * u(b)
    aspect = torch.exp((u(b) - 0.5) * 0.4)
    angle = (u(b) - 0.5) * math.radians(20)
    flip = torch.where(u(b) < 0.5, -1.0, 1.0)
    tx, ty = (u(b) - 0.5) * 0.16, (u(b) - 0.5) * 0.16
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = scale * aspect.sqrt(), scale / aspect.sqrt()
    theta = torch.stack(
        [torch.stack([cos * sx * flip, -sin * sy, tx], 1), torch.stack([sin * sx * flip, cos * sy, ty], 1)], 1
    )
    grid = affine_grid(theta, s)
    # Outside the film: a random flat fill, so no border value marks a class.
    fill = u(b).view(b, 1, 1, 1)
    ones = torch.ones_like(x)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mask = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = warped + (1 - mask) * fill
    # Intensity: gamma, contrast, brightness (on 80% of images).
    gamma = torch.where(u(b) < 0.8, torch.exp((u(b) - 0.5) * 0.8), 1.0).view(b, 1, 1, 1)
    x = x.clamp(1e-4, 1).pow(gamma)
    contrast = torch.where(u(b) < 0.8, 0.7 + 0.6 * u(b), 1.0).view(b, 1, 1, 1)
    bright = ((u(b) - 0.5) * 0.2).view(b, 1, 1, 1)
    x = (x - 0.5) * contrast + 0.5 + bright
    # Blur on a quarter of the images.
    blur = u(b) < 0.25
    if blur.any():
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        k = (k[:, None] * k[None, :]) / 256.0
        xb = F.conv2d(x[blur], k.view(1, 1, 5, 5), padding=2)
        x[blur] = xb
    # Sensor-like noise on a quarter.
    noisy = u(b) < 0.25
    noise = torch.randn(x.shape, generator=gen)  # drawn for every film: the sequence of draws
    x = add_noise(x, noisy, noise, u(b).view(b, 1, 1, 1))
    # Burned-in annotations: on half the images, 1-3 bright or dark boxes or bars anywhere,
    # on both classes.
    for i in range(b):
        if u(1).item() < 0.5:
            continue
        for _ in range(1 + int(u(1).item() * 3)):
            h = int(2 + u(1).item() * s * 0.12)
            w = int(2 + u(1).item() * s * 0.3)
            y0 = int(u(1).item() * (s - h))
            x0 = int(u(1).item() * (s - w))
            x[i, :, y0 : y0 + h, x0 : x0 + w] = 1.0 if u(1).item() < 0.7 else 0.0
    # Hide the periphery on a fraction of the images (`periphery`, 0.4 by default): everything outside a random central box becomes
    # one flat value, so the class must be read from the lung fields, not from the corners,
    # collimation edges, positioning or body outline that differ between collections.
    for i in range(b):
        if u(1).item() < 1 - periphery:
            continue
        fw, fh = 0.5 + 0.35 * u(1).item(), 0.55 + 0.35 * u(1).item()
        cx, cy = 0.5 + (u(1).item() - 0.5) * 0.1, 0.5 + (u(1).item() - 0.5) * 0.1
        x0, x1 = int(max(0.0, cx - fw / 2) * s), int(min(1.0, cx + fw / 2) * s)
        y0, y1 = int(max(0.0, cy - fh / 2) * s), int(min(1.0, cy + fh / 2) * s)
        keep = x[i, :, y0:y1, x0:x1].clone()
        x[i] = u(1).item()
        x[i, :, y0:y1, x0:x1] = keep
    return x.clamp(0, 1)


def plain_augment(x_u8, gen):
    """The plain recipe's augmentation of a uint8 batch [B,1,S,S] -> float [B,1,S,S]: a random
    resized crop (70-100% of the area, aspect 0.9-1.1), a turn within 10 degrees with the
    edge pixels repeated, contrast 0.75-1.25, brightness +-0.1, gamma 0.7-1.4 and noise of
    0.02, nothing else.

    No flips, painted boxes, flattened periphery, hospital processing or tighter framings of
    one class: each of those also teaches the network something about the pool, and the
    recipe without them read hospitals outside the pool far better than 4.0.0's
    (docs/research/5.x.md). The network standardises each image itself, so exposure is left
    to it."""
    n, _, s, _ = x_u8.shape
    x = x_u8.float() / 255.0

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    area = u(0.7, 1.0)
    ratio = torch.exp(u(math.log(0.9), math.log(1.1)))
    sx, sy = torch.sqrt(area * ratio).clamp(max=1), torch.sqrt(area / ratio).clamp(max=1)
    tx, ty = (1 - sx) * u(-1, 1), (1 - sy) * u(-1, 1)
    angle = u(-10, 10) * math.pi / 180
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * sx, -sin * sy, tx], 1), torch.stack([sin * sx, cos * sy, ty], 1)], 1)
    x = F.grid_sample(x, affine_grid(theta, s), mode="bilinear", padding_mode="border", align_corners=False)
    contrast = u(0.75, 1.25).view(n, 1, 1, 1)
    bright = u(-0.1, 0.1).view(n, 1, 1, 1)
    x = ((x - 0.5) * contrast + 0.5 + bright).clamp(0, 1)
    x = x.clamp_min(1e-4) ** torch.exp(u(math.log(0.7), math.log(1.4))).view(n, 1, 1, 1)
    return x + 0.02 * torch.randn(x.shape, generator=gen)


def schedule(opt, args, steps_per_epoch):
    """The learning-rate schedule, stepped once a batch: 4.0.0's one-cycle, or the plain
    recipe's two epochs of linear warm-up and a cosine decay to zero."""
    total = args.epochs * steps_per_epoch
    if args.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.15)
    warm = 2 * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, k / total)))
    )


# Named recipes: `--recipe NAME` stands for these arguments, and arguments given after it
# override them. Each candidate of model/candidates/ is one recipe on one preprocessing
# (training/candidates.sh).
RECIPES = {
    # 4.0.0: equalised whole films, the full augmentation, tighter framings of normals, hospital
    # processing and CLAHE on half of the films, 200 epochs one-cycle (the defaults).
    "4.0.0": [],
    # Model 5: unequalised films (`xray preprocess --plain`), each standardised by the network
    # itself; plain_augment; 40 epochs, warm-up and cosine; every epoch can be chosen.
    "plain": [
        "--standardize", "--augment", "plain", "--schedule", "cosine", "--epochs", "40", "--select-from", "0",
        "--crop-normal", "0", "--process", "0", "--clahe", "0",
    ],
}
RECIPES["plain-probe"] = RECIPES["plain"] + ["--arch", "probe"]
# The plain recipe with one lever back: half the films of both classes given a console's
# unsharp mask or softening and half a random CLAHE, not equalised again. Served through the
# plain path, 5.0.0 reads CLAHE-processed normal films as COVID (model/robustness.json).
RECIPES["plain-process"] = RECIPES["plain"] + ["--process", "0.5", "--clahe", "0.5"]


def expand_recipe(argv):
    """`argv` with `--recipe NAME` replaced by its arguments (put first, so that the others
    override them) and kept as `--recipe NAME` for training.json."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--recipe" not in argv:
        return argv
    i = argv.index("--recipe")
    name = argv[i + 1] if i + 1 < len(argv) else ""
    if name not in RECIPES:
        raise SystemExit(f"train.py: unknown --recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name] + argv[:i] + argv[i + 2 :] + ["--recipe", name]


def gaussian_blur(x, sigma):
    """Separable Gaussian blur of [B,1,S,S] with one sigma per image (pixels), reflect-padded."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1)
    r = min(int(3 * float(sigma.max())) + 1, x.shape[-1] - 1)
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    k = (k / k.sum(1, keepdim=True)).expand(x.shape[0], -1)
    b = x.shape[0]
    xp = F.pad(x, (r, r, r, r), mode="reflect").view(1, b, x.shape[-2] + 2 * r, x.shape[-1] + 2 * r)
    xp = F.conv2d(xp, k.reshape(b, 1, 1, -1), groups=b)
    return F.conv2d(xp, k.reshape(b, 1, -1, 1), groups=b).view_as(x)


def equalize(x):
    """Histogram-equalise each image of a float batch [B,1,S,S] in [0,1], as `xray preprocess`
    does to 8-bit films (`v -> (cdf(v) - cdf_min) / (n - cdf_min)` on 256 levels)."""
    v = (x.clamp(0, 1) * 255).round().long().flatten(1)
    cdf = torch.zeros(x.shape[0], 256).scatter_add_(1, v, torch.ones_like(v, dtype=torch.float32)).cumsum(1)
    cdf_min = torch.where(cdf > 0, cdf, torch.inf).amin(1, keepdim=True)
    n = v.shape[1]
    lut = ((cdf - cdf_min) / (n - cdf_min).clamp(min=1)).clamp(0, 1)
    return lut.gather(1, v).view_as(x)


def unsharp(x, amount, sigma, then_equalize=True):
    """A hospital's processing on an already prepared film: `x + amount * (x - blur_sigma(x))`,
    then equalised again as the Rust preprocessing would. amount > 0 is the large-kernel
    unsharp masking of modern X-ray consoles, amount < 0 a softer film."""
    amount = torch.as_tensor(amount, dtype=torch.float32).view(-1, 1, 1, 1)
    out = x + amount * (x - gaussian_blur(x, sigma))
    # The unequalised paths (`xray preprocess --plain`) do not equalise again.
    return equalize(out) if then_equalize else out.clamp(0, 1)


def clahe(x, tiles=8, clip=2.0, then_equalize=True):
    """Contrast-limited adaptive histogram equalisation (Zuiderveld 1994) of a float batch
    [B,1,S,S] in [0,1], then equalised again as `xray preprocess` would after a console had
    processed the film this way.

    Another common console processing besides the unsharp mask: each of tiles x tiles regions
    gets its own histogram equalisation, its histogram clipped at `clip` times the mean bin
    (the excess spread over all bins), and each pixel blends the mappings of its four nearest
    tile centres bilinearly. S must be a multiple of `tiles`.
    """
    b, _, s, _ = x.shape
    t = s // tiles
    v = (x.clamp(0, 1) * 255).round().long()[:, 0]
    per_tile = v.view(b, tiles, t, tiles, t).permute(0, 1, 3, 2, 4).reshape(b, tiles * tiles, t * t)
    hist = torch.zeros(b, tiles * tiles, 256).scatter_add_(2, per_tile, torch.ones_like(per_tile, dtype=torch.float32))
    # One clip limit per film (a number, or a tensor of B), so films can share one call.
    limit = torch.as_tensor(clip * t * t / 256, dtype=torch.float32).reshape(-1, 1, 1)
    excess = (hist - limit).clamp(min=0).sum(2, keepdim=True)
    lut = (hist.clamp(max=limit) + excess / 256).cumsum(2) / (t * t)
    f = ((torch.arange(s) + 0.5) / t - 0.5).clamp(0, tiles - 1)  # position in tile-centre units
    i0 = f.floor().long().clamp(max=tiles - 2)
    w = f - i0
    y0, x0, wy, wx = i0.view(1, s, 1), i0.view(1, 1, s), w.view(1, s, 1), w.view(1, 1, s)
    flat = lut.view(b, tiles * tiles * 256)

    def at(yy, xx):
        # One gather on the flattened tables: the same values as lut[b, tile, v], but without
        # advanced indexing, which took half of this function's time.
        return flat.gather(1, ((yy * tiles + xx) * 256 + v).view(b, -1)).view(b, s, s)

    out = (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x0 + 1)) + wy * ((1 - wx) * at(y0 + 1, x0) + wx * at(y0 + 1, x0 + 1))
    return equalize(out.unsqueeze(1)) if then_equalize else out.unsqueeze(1)


def chosen_films(n, p, gen):
    """Indices of the films of a batch of `n` that an augmentation of probability `p` picks.
    With p <= 0 nothing is drawn from `gen`, so runs without that augmentation stay as they
    were."""
    if p <= 0:
        return torch.zeros(0, dtype=torch.int64)
    return (torch.rand(n, generator=gen) < p).nonzero().flatten()


def process_like_another_hospital(x_u8, p, gen, equalised=True):
    """With probability `p`, each film of a uint8 batch [B,1,S,S] gets `unsharp` with sigma
    log-uniform in 3-32 pixels and amount uniform in [-0.6, 1.5]; returns uint8.

    The pool's adult normals are all NIH films, soft and low in local contrast; its COVID films
    come from hospitals and publications that enhance local contrast. Model 3.0.0 called NIH
    validation normals COVID at mean P 0.66 once given a sigma-8 unsharp mask (0.15 as they
    are: training/probes/processing.py); 3.1.0, trained with this at p = 0.5, at 0.31. Processing both classes at random denies that
    cue; contrast *between* lung and the rest of the film, which opacities change, survives.
    """
    chosen = chosen_films(x_u8.shape[0], p, gen)
    if len(chosen) == 0:
        return x_u8
    sigma = torch.exp(math.log(3) + torch.rand(len(chosen), generator=gen) * math.log(32 / 3))
    amount = -0.6 + 2.1 * torch.rand(len(chosen), generator=gen)
    x = x_u8.clone()
    # On the unequalised paths the processed film is not equalised again (`equalised=False`).
    x[chosen] = (unsharp(x_u8[chosen].float() / 255, amount, sigma, equalised) * 255).round().to(torch.uint8)
    return x


def clahe_like_another_hospital(x_u8, p, gen, equalised=True):
    """With probability `p`, each film of a uint8 batch [B,1,S,S] gets `clahe` with 4, 6, 8 or
    12 tiles a side and a clip limit uniform in 1.5-5; returns uint8.

    CLAHE is the other local-contrast processing consoles and viewers apply. On model 3.1.0,
    NIH validation normals went from mean P(covid) 0.17 to 0.59 under CLAHE with 8x8 tiles
    and clip 4 (training/probes/processing.py): `--process` alone does not deny it.
    3.2.0, trained with this at p = 0.5, keeps them at 0.32 (0.18 as they are), and calls 9 of
    104 validation normals COVID under it instead of 53.
    """
    chosen = chosen_films(x_u8.shape[0], p, gen).tolist()
    drawn = {}  # tiles -> [(film, clip)], drawn film by film in the order of earlier versions
    for i in chosen:
        tiles = (4, 6, 8, 12)[int(torch.randint(4, (1,), generator=gen))]
        clip = 1.5 + 3.5 * float(torch.rand(1, generator=gen))
        drawn.setdefault(tiles, []).append((i, clip))
    x = x_u8.clone()
    # One call per tile count: each film's result is bit for bit what a call of its own gave.
    for tiles, films in drawn.items():
        idx = torch.tensor([i for i, _ in films])
        clip = torch.tensor([c for _, c in films], dtype=torch.float64)
        x[idx] = (clahe(x_u8[idx].float() / 255, tiles, clip, equalised) * 255).round().to(torch.uint8)
    return x


def normalise(x01, mean, std):
    return (x01 - mean) / std


@torch.no_grad()
def predict_logits(net, x_u8, mean, std, batch=128):
    net.eval()
    device = next(net.parameters()).device
    return torch.cat([net(normalise(x_u8[i : i + batch].float() / 255.0, mean, std).to(device)).cpu() for i in range(0, len(x_u8), batch)])


def roc_auc(p_pos, y_pos):
    """Mann-Whitney AUC with ties counted half."""
    p_pos, y_pos = np.asarray(p_pos), np.asarray(y_pos).astype(bool)
    pos, neg = p_pos[y_pos], p_pos[~y_pos]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def balanced_accuracy(p_covid, is_covid, threshold):
    pred = np.asarray(p_covid) >= threshold
    is_covid = np.asarray(is_covid).astype(bool)
    sens = (pred & is_covid).sum() / max(is_covid.sum(), 1)
    spec = (~pred & ~is_covid).sum() / max((~is_covid).sum(), 1)
    return 0.5 * (sens + spec), sens, spec


def fit_platt(logits, y):
    """Platt scaling on validation: `(a, b)` minimising the NLL of `sigmoid(a * z + b)`,
    where `z = l_covid - l_normal`.

    The NLL is convex in `(a, b)`; Newton steps are halved until the NLL falls, so the fit
    cannot run off (a plain Newton iteration diverged on a nearly separable validation set).
    Temperature scaling alone (`b = 0`) left the class-weighted model's probabilities shifted
    towards COVID (model 2.0.0: threshold 0.20, ECE 0.079).
    """
    z = (logits[:, 0] - logits[:, 1]).double().numpy()
    t = (y == 0).double().numpy()
    X = np.stack([z, np.ones_like(z)], 1)

    def nll(w):
        m = X @ w
        # -log sigmoid(m) for positives, -log(1 - sigmoid(m)) for negatives, stably.
        return float(np.mean(np.logaddexp(0, -m) * t + np.logaddexp(0, m) * (1 - t)))

    w = np.array([1.0, 0.0])
    for _ in range(100):
        p = 1 / (1 + np.exp(-(X @ w)))
        grad = X.T @ (p - t) / len(t)
        hess = X.T @ (X * (p * (1 - p))[:, None]) / len(t) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        current, shrink = nll(w), 1.0
        while nll(w - shrink * step) > current and shrink > 1e-8:
            shrink /= 2
        w = w - shrink * step
        if np.abs(shrink * step).max() < 1e-10:
            break
    return float(w[0]), float(w[1]), nll(w)


def choose_threshold(p_covid, is_covid):
    """The validation threshold where sensitivity and specificity are closest (equal error).

    Maximising balanced accuracy on 252 validation films picked a point on a narrow ridge of
    the ROC curve (0.146 for one model, whose test specificity then fell to 0.76); the
    equal-error point moves less between samples. Ties: the higher balanced accuracy, then
    the threshold nearest 0.5.
    """
    candidates = np.unique(np.concatenate([[0.5], np.asarray(p_covid)]))
    scored = []
    for t in candidates:
        bacc, sens, spec = balanced_accuracy(p_covid, is_covid, t)
        scored.append((-abs(sens - spec), bacc, -abs(t - 0.5), t))
    t = max(scored)[3]
    # Take the midpoint between the chosen probability and the next one below it, so the
    # threshold does not sit exactly on a validation image.
    below = candidates[candidates < t]
    return float((t + below.max()) / 2) if len(below) and t != 0.5 else float(t)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_args(ap)
    ap.add_argument("--out", default="model", help="folder for xray.onnx, weights.pt and training.json")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule")
    ap.add_argument("--weight-decay", type=float, default=5e-4, help="AdamW's decoupled weight decay")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (the shipped model trains on 2)")
    ap.add_argument(
        "--select-from",
        type=float,
        # The chosen epoch of a 200-epoch one-cycle run falls in its second half, and the best of
        # the first half trails it by 0.005-0.015 of validation AUC; validating the first half
        # would cost about 90 s of the training budget.
        default=0.5,
        help="only epochs after this fraction of the epochs are validated and can be chosen (earlier epochs record their training loss only); 0: every epoch",
    )
    # The pool's COVID films are mostly tight crops and its normals whole films: the shipped
    # recipe (3.x, whole films) shows a normal film as one of its tighter framings half of the
    # time to loosen that tie. The lung-field recipe sets it to 0: the lung box fixes the framing.
    ap.add_argument("--crops", type=int, default=4, help="tighter framings per film written by `xray preprocess --crops`")
    ap.add_argument("--crop-normal", type=float, default=0.5, help="probability a normal training film is shown as one of its tighter framings (the lung-field recipe: 0)")
    ap.add_argument("--crop-covid", type=float, default=0.0, help="the same for a COVID film (most are tight crops already)")
    ap.add_argument(
        "--process",
        type=float,
        default=0.5,
        help="fraction of training films given a random large-kernel unsharp mask or softening, then equalised again: process_like_another_hospital",
    )
    ap.add_argument(
        "--clahe",
        type=float,
        default=0.5,
        help="fraction of training films given a random contrast-limited adaptive histogram equalisation, then equalised again: clahe_like_another_hospital",
    )
    ap.add_argument("--zoom", type=float, nargs=2, default=[0.6, 1.2], metavar=("LO", "HI"), help="range of the random zoom (below 1 crops in)")
    ap.add_argument(
        "--periphery",
        type=float,
        default=0.4,
        help="fraction of training films whose outside of a random central box is made flat (whole films: corners and collimation must not carry the class)",
    )
    ap.add_argument("--leave-out", nargs="*", default=[], metavar="SOURCE", help="collections to keep out of training and validation (a probe, not a model to commit)")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="k2pool", help="network shape (ARCHS); model 2.x is `pool`, 3.x `k2pool`")
    ap.add_argument(
        "--standardize",
        action="store_true",
        help="the network standardises each image itself (its own mean and standard deviation); for films from `xray preprocess --plain`, not equalised",
    )
    ap.add_argument("--seed", type=int, default=MODEL_SEED, help="seed of initialisation, batch order and augmentation (the split has its own, in split.py)")
    ap.add_argument("--export-only", action="store_true", help="skip training: calibrate and export the weights.pt and training.json already in --out")
    ap.add_argument(
        "--threshold-from",
        metavar="HOLDOUT_JSON",
        help="take the threshold from holdout.py's pooled collection-held-out predictions instead of the validation patients' equal-error point",
    )
    ap.add_argument(
        "--augment",
        choices=["full", "plain"],
        default="full",
        help="`full`: 4.0.0's geometric and intensity augmentation with flips, painted boxes and the flattened periphery (augment); `plain`: a random resized crop, a small turn, contrast, brightness, gamma and noise, nothing else (plain_augment)",
    )
    ap.add_argument("--schedule", choices=["onecycle", "cosine"], default="onecycle", help="one-cycle (4.0.0), or two epochs of linear warm-up then a cosine decay (the plain recipe)")
    ap.add_argument(
        "--ensemble",
        nargs="+",
        metavar="RUN",
        help="skip training: join the networks of these finished runs (their --out folders) into one (Ensemble), then calibrate and export it",
    )
    ap.add_argument("--recipe", choices=sorted(RECIPES), help="a named recipe (RECIPES); later arguments override its own")
    ap.add_argument("--device", default="cpu", help="where the network trains (`cuda` for exploration; augmentation stays on the CPU, and the shipped model trains on the CPU)")
    args = ap.parse_args(expand_recipe(argv))
    if not 0 <= args.select_from < 1:
        ap.error("--select-from must be at least 0 and below 1: the last epoch is always a candidate")
    return args


def load_data(args):
    """The films of each split as uint8 tensors, their labels, the tighter framings of the
    training films when the recipe shows them, and the normalisation `xray preprocess` wrote."""
    params = json.load(open(os.path.join(args.pre, "preprocess.json")))
    splits = load_split(args.data, args.pre, args.split)
    if args.leave_out:
        # Whole collections kept out of training and validation, to see how the model does on
        # a collection it never saw: the nearest thing the pool has to X-rays from another
        # hospital. Such a model is a probe, never the committed one.
        splits = {k: [r for r in rs if r["source"] not in args.leave_out] for k, rs in splits.items()}
    xtr, ytr = load_images(splits["train"])
    xva, yva = load_images(splits["val"])
    use_crops = args.crops and max(args.crop_normal, args.crop_covid) > 0 and not args.export_only
    crops = load_crops(splits["train"], args.pre, args.crops) if use_crops else None
    print(f"train {len(ytr)} val {len(yva)} input {tuple(xtr.shape[1:])} {params['version']}", flush=True)
    return {
        "params": params, "splits": splits, "xtr": xtr, "ytr": ytr, "xva": xva, "yva": yva, "crops": crops,
    }


def train_batch(net, opt, sched, data, idx, args, gen, class_weight):
    """One optimiser step on the training films `idx`: framing, hospital processing and the
    geometric and intensity augmentation, then the class-weighted cross-entropy. Returns the loss."""
    mean, std = data["params"]["mean"], data["params"]["std"]
    ytr, crops = data["ytr"], data["crops"]
    p_crop = torch.tensor([args.crop_covid, args.crop_normal])  # indexed by label: covid 0, normal 1
    framed = frame(data["xtr"][idx], None if crops is None else crops[idx], ytr[idx], p_crop, gen)
    equalised = "equalize" in data["params"]["version"]
    framed = process_like_another_hospital(framed, args.process, gen, equalised)
    framed = clahe_like_another_hospital(framed, args.clahe, gen, equalised)
    if args.augment == "plain":
        x01 = plain_augment(framed, gen)
    else:
        x01 = augment(framed, gen, tuple(args.zoom), args.periphery)
    xb = normalise(x01, mean, std)
    device = class_weight.device
    loss = F.cross_entropy(net(xb.to(device)), ytr[idx].to(device), weight=class_weight)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def validate(net, data):
    """Validation loss and ROC-AUC of P(covid), the only figures that choose an epoch."""
    mean, std = data["params"]["mean"], data["params"]["std"]
    logits = predict_logits(net, data["xva"], mean, std)
    p_covid = torch.softmax(logits, 1)[:, 0].numpy()
    return F.cross_entropy(logits, data["yva"]).item(), roc_auc(p_covid, (data["yva"] == 0).numpy())


def train(args, data):
    """Trains from scratch; returns the weights of the best validated epoch, that epoch and
    the per-epoch history."""
    net = XrayNet(args.arch, args.standardize).to(args.device)
    ytr = data["ytr"]
    counts = torch.bincount(ytr, minlength=2).float()
    class_weight = (counts.sum() / (2 * counts)).to(args.device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(ytr) / args.batch)
    sched = schedule(opt, args, steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)
    first_candidate = math.floor(args.select_from * args.epochs) + 1
    history, best = [], None
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        net.train()
        perm = torch.randperm(len(ytr), generator=gen)
        total = 0.0
        for i in range(0, len(perm), args.batch):
            idx = perm[i : i + args.batch]
            total += train_batch(net, opt, sched, data, idx, args, gen, class_weight) * len(idx)
        row = {"epoch": epoch, "train_loss": total / len(ytr)}
        if epoch >= first_candidate:
            row["val_loss_live"], row["val_auc_live"] = validate(net, data)
            # Selection on validation only: highest AUC, then lowest loss.
            key = (row["val_auc_live"], -row["val_loss_live"])
            if best is None or key > best[0]:
                best = (key, epoch, {k: v.detach().cpu().clone() for k, v in net.state_dict().items()})
        history.append(row)
        shown = f" val_auc {row['val_auc_live']:.4f} val_loss {row['val_loss_live']:.4f}" if "val_auc_live" in row else ""
        print(f"epoch {epoch:2d} train_loss {row['train_loss']:.4f}{shown} [{time.time() - started:.0f}s]", flush=True)
    _, best_epoch, state = best
    return state, best_epoch, history, time.time() - started


def calibrate(net, data):
    """Platt scaling and the threshold, both on validation. Returns (scale, bias, val_nll,
    threshold, validation AUC)."""
    mean, std = data["params"]["mean"], data["params"]["std"]
    is_covid = (data["yva"] == 0).numpy()
    logits = predict_logits(net, data["xva"], mean, std)
    auc = roc_auc(torch.softmax(logits, 1)[:, 0].numpy(), is_covid)
    scale, bias, val_nll = fit_platt(logits, data["yva"])
    z = (logits[:, 0] - logits[:, 1]).double()
    p_covid = torch.sigmoid(scale * z + bias).numpy()
    return scale, bias, val_nll, choose_threshold(p_covid, is_covid), auc


def export(net, scale, bias, size, out, preprocess=None):
    """Writes `out/xray.onnx`: the calibrated network, max-pools split for tract, and the
    preprocessing and input size it reads as metadata, which serving checks against the
    card beside it."""
    os.makedirs(out, exist_ok=True)
    onnx_path = os.path.join(out, "xray.onnx")
    torch.onnx.export(
        Calibrated(net, scale, bias).eval(),
        (torch.zeros(1, 1, size, size),),
        onnx_path,
        input_names=["image"],
        output_names=["probabilities"],
        opset_version=17,
        dynamo=False,
        do_constant_folding=True,
    )
    split_max_pools(onnx_path)
    if preprocess is not None:
        model = onnx.load(onnx_path)
        del model.metadata_props[:]
        for key, value in (("preprocess", preprocess), ("input_size", str(size))):
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, onnx_path)
    return onnx_path


def main(argv=None):
    args = parse_args(argv)
    seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    data = load_data(args)
    members = None
    if args.ensemble:
        loaded = [load_member(f) for f in args.ensemble]
        members = [{"run": f, "seed": t["seed"], "seconds": t["seconds"], "best_epoch": t["best_epoch"], "best_weights": t.get("best_weights", "live")} for f, (_, t) in zip(args.ensemble, loaded)]
        args.arch, args.seed, args.standardize = loaded[0][1]["arch"], loaded[0][1]["seed"], loaded[0][1].get("standardize", False)
        for key in ("epochs", "augment", "schedule", "recipe"):
            if key in loaded[0][1]:
                setattr(args, key, loaded[0][1][key])
        net = Ensemble([n for n, _ in loaded])
        state, best_epoch, history = None, None, []
        seconds = sum(m["seconds"] for m in members)
    elif args.export_only:
        # Calibrate, pick the threshold and export again from the weights a finished run
        # saved; the training loop is deterministic, so this equals a full rerun.
        previous = json.load(open(os.path.join(args.out, "training.json")))
        args.arch, args.seed = previous.get("arch", "pool"), previous["seed"]
        args.standardize = previous.get("standardize", False)
        state = torch.load(os.path.join(args.out, "weights.pt"))
        best_epoch, history, seconds = previous["best_epoch"], previous["history"], previous["seconds"]
    else:
        state, best_epoch, history, seconds = train(args, data)
    if members is None:
        net = XrayNet(args.arch, args.standardize)
        net.load_state_dict(state)
    scale, bias, val_nll, threshold, auc = calibrate(net, data)
    threshold_rule = "equal error rate on the validation patients: sensitivity and specificity closest (ties: higher balanced accuracy, then nearest 0.5)"
    if args.threshold_from:
        pooled = json.load(open(args.threshold_from))["pooled"]
        print(f"threshold {pooled['threshold']:.4f} from {args.threshold_from} instead of the validation one {threshold:.4f}")
        threshold = pooled["threshold"]
        threshold_rule = (
            "equal error rate between the films of collections each left out of its own training run (holdout.py): "
            f"{pooled['specificity']:.3f} of left-out normal films and {pooled['sensitivity']:.3f} of left-out COVID films called right"
        )
    print(f"validation AUC {auc:.4f}; best epoch {best_epoch}, Platt a {scale:.3f} b {bias:.3f} (val NLL {val_nll:.4f}), threshold {threshold:.4f}")
    onnx_path = export(net, scale, bias, data["params"]["input_size"], args.out, data["params"]["version"])
    if state is not None:
        torch.save(state, os.path.join(args.out, "weights.pt"))
    training = {
        "seed": args.seed,
        "arch": args.arch,
        "standardize": args.standardize,
        "epochs": args.epochs,
        "best_epoch": best_epoch,
        "best_weights": "live",
        **({"ensemble": members} if members else {}),
        "batch": args.batch,
        "lr": args.lr,
        "optimizer": optimizer_name(args.weight_decay),
        "loss": "cross-entropy, class-weighted",
        "calibration": {"method": "Platt scaling on validation (NLL)", "scale": scale, "bias": bias, "val_nll": val_nll},
        "threshold": threshold,
        "left_out_sources": args.leave_out,
        "framing_crops": {"per_film": args.crops, "p_normal": args.crop_normal, "p_covid": args.crop_covid},
        "hospital_processing": args.process,
        "hospital_clahe": args.clahe,
        "zoom": args.zoom,
        "periphery": args.periphery,
        "augment": args.augment,
        "schedule": args.schedule,
        **({"recipe": args.recipe} if args.recipe else {}),
        "candidates_from_epoch": math.floor(args.select_from * args.epochs) + 1,
        "tta": False,
        "val_auc_plain": auc,
        "threshold_rule": threshold_rule,
        "seconds": round(seconds),
        "threads": args.threads,
        "torch": torch.__version__,
        "history": history,
        "preprocess": data["params"],
    }
    json.dump(training, open(os.path.join(args.out, "training.json"), "w"), indent=2)
    print(f"wrote {onnx_path} and training.json after {seconds:.0f}s of training")


if __name__ == "__main__":
    main()
