#!/usr/bin/python3
"""PyTorch peer benchmark: the same networks as models/arch/*.cfg, timed on CPU.

Training step = forward + cross-entropy + backward + Adam step on random data;
inference = eval mode under no_grad. Prints one JSON line (see bench/README.md).

  /usr/bin/python3 bench/torch_bench.py --arch resnet18 --mode train --threads 2 \
      --batch 32 --size 224 --config eager --iters 10 --warmup 2 --classes 2
"""
import argparse
import collections
import contextlib
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torchvision

ARCHS = ("simple-cnn", "resnet18", "vgg19", "mobilenetv2", "mobilenetv3-small",
         "mobilenetv3-small-imagenet")


def simple_cnn(classes):
    """models/arch/simple-cnn.cfg: 1x128x128 input, three conv+pool blocks, two fc."""
    layers = collections.OrderedDict()
    in_ch = 1
    for i, ch in enumerate((32, 64, 128), 1):
        layers["conv%d" % i] = nn.Conv2d(in_ch, ch, 3, padding=1)
        layers["relu%d" % i] = nn.ReLU()
        layers["pool%d" % i] = nn.MaxPool2d(2)
        in_ch = ch
    layers["drop1"] = nn.Dropout(0.5)
    layers["flatten"] = nn.Flatten()
    layers["fc1"] = nn.Linear(128 * 16 * 16, 256)
    layers["relu4"] = nn.ReLU()
    layers["drop2"] = nn.Dropout(0.3)
    layers["fc2"] = nn.Linear(256, classes)
    return nn.Sequential(layers)


def build_model(arch, classes):
    """The torch model whose parameters match models/arch/ARCH.cfg (checked by tests/ref/check_cfg_names.py)."""
    tv = torchvision.models
    if arch == "simple-cnn":
        return simple_cnn(classes)
    if arch == "resnet18":
        return tv.resnet18(num_classes=classes)
    if arch == "vgg19":
        return tv.vgg19(num_classes=classes)
    if arch == "mobilenetv2":
        return tv.mobilenet_v2(num_classes=classes)
    if arch == "mobilenetv3-small-imagenet":
        return tv.mobilenet_v3_small(num_classes=classes)
    if arch == "mobilenetv3-small":
        model = tv.mobilenet_v3_small()
        # Our head (classifier.0 / classifier.3 as in the cfg): 576 -> 256 -> classes.
        model.classifier = nn.Sequential(nn.Linear(576, 256), nn.Hardswish(inplace=True),
                                         nn.Dropout(0.2, inplace=True), nn.Linear(256, classes))
        return model
    raise ValueError("unknown arch %r" % arch)


def input_shape(arch, batch, size):
    return (batch, 1 if arch == "simple-cnn" else 3, size, size)


def make_step(model, args):
    """A closure running one timed iteration (one batch)."""
    channels_last = args.config == "cl_bf16"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(input_shape(args.arch, args.batch, args.size)).to(memory_format=fmt)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if channels_last else contextlib.nullcontext
    if args.mode == "infer":
        model.eval()

        def step():
            with torch.no_grad(), autocast():
                model(x)
        return step
    model.train()
    y = torch.randint(0, args.classes, (args.batch,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=ARCHS, required=True)
    ap.add_argument("--mode", choices=("train", "infer"), required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, help="default 32 for train, 1 for infer")
    ap.add_argument("--size", type=int, help="input pixels (default 128 for simple-cnn, else 224)")
    ap.add_argument("--config", choices=("eager", "cl_bf16"), default="eager",
                    help="eager = fp32 NCHW; cl_bf16 = channels_last + CPU autocast bfloat16")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.batch is None:
        args.batch = 32 if args.mode == "train" else 1
    if args.size is None:
        args.size = 128 if args.arch == "simple-cnn" else 224
    if args.iters < 1:
        ap.error("--iters must be >= 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    step = make_step(build_model(args.arch, args.classes), args)
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(json.dumps({
        "arch": args.arch, "mode": args.mode, "config": args.config, "threads": args.threads,
        "batch": args.batch, "size": args.size,
        "median_s": round(median, 6),
        "imgs_per_s": round(args.batch / median, 3),
        "ms_per_batch": round(median * 1000, 3),
        "all_times": [round(t, 6) for t in times],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
