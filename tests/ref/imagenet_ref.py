#!/usr/bin/python3
"""Reference ImageNet logits of the pretrained MobileNets, for checking the C engine.

Builds torchvision mobilenet_v2() and mobilenet_v3_small(), loads the BN-folded
pretrained files from ../shared/pretrained as their README describes (every
BatchNorm set to identity + folded bias), emulates TensorFlow SAME padding on
V3's five stride-2 convs, and runs eval mode on a synthetic input that C can
reproduce bit for bit (see INPUT_FORMULA). Writes
  tests/ref/imagenet_ref_mobilenetv2.json
  tests/ref/imagenet_ref_mobilenetv3_small.json
with the float32 logits (7 significant digits), float64 logits, top-5, and
per-stage activation statistics (for locating a divergence).

Usage: /usr/bin/python3 tests/ref/imagenet_ref.py [--pretrained DIR] [--out DIR]
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SIZE = 224

INPUT_FORMULA = (
    "NCHW 1x3x224x224 float32, already normalised (fed to the network as is). "
    "For c in 0..2, h in 0..223, w in 0..223: i = (c*224 + h)*224 + w; "
    "u = (uint32_t)i * 2654435761u (wrapping 32-bit multiply); "
    "noise = (float)(u >> 16) / 32768.0f - 1.0f; "
    "ramp = (float)((h + 2*w + 37*c) % 64) / 32.0f - 1.0f; "
    "x[c][h][w] = 0.5f * (noise + ramp). "
    "Every step is exact in float32 (values are multiples of 2^-16 in [-1, 1))."
)

MODELS = {
    "mobilenetv2": dict(
        file="mobilenet_v2_1.0_224_onnxzoo_bnfolded_f32.safetensors",
        build=torchvision.models.mobilenet_v2, tf_same=(), cfg="models/arch/mobilenetv2.cfg with classes = 1000"),
    "mobilenetv3_small": dict(
        file="mobilenet_v3_small_1.0_224_tfslim_bnfolded_f32.safetensors",
        build=torchvision.models.mobilenet_v3_small, cfg="models/arch/mobilenetv3-small-imagenet.cfg",
        tf_same=("features.0.0", "features.1.block.0.0", "features.2.block.1.0",
                 "features.4.block.1.0", "features.9.block.1.0")),
}


def make_input():
    c, h, w = np.meshgrid(np.arange(3), np.arange(SIZE), np.arange(SIZE), indexing="ij")
    i = ((c * SIZE + h) * SIZE + w).astype(np.uint64)
    u = (i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    noise = (u >> np.uint64(16)).astype(np.float32) / np.float32(32768.0) - np.float32(1.0)
    ramp = ((h + 2 * w + 37 * c) % 64).astype(np.float32) / np.float32(32.0) - np.float32(1.0)
    x = np.float32(0.5) * (noise + ramp)
    assert x.dtype == np.float32
    return torch.from_numpy(x[None].copy())


def load_safetensors(path):
    """Minimal float32 safetensors reader (format in the pretrained README)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    meta = hdr.pop("__metadata__", {})
    out = {}
    for k, v in hdr.items():
        assert v["dtype"] == "F32", k
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(raw, np.float32, (e - b) // 4, 8 + n + b).reshape(v["shape"]).copy()
    return out, meta


def load_bn_folded(model, st):
    """README "Loading": conv weight as is; BN = identity + folded bias; Linear/SE fc as is."""
    sd, pending, used = {}, None, set()

    def take(name):
        used.add(name)
        return torch.from_numpy(st[name])
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            sd[name + ".weight"] = take(name + ".weight")
            if m.bias is not None:
                sd[name + ".bias"] = take(name + ".bias")
            else:
                pending = name
        elif isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            sd.update({name + ".weight": torch.ones(c), name + ".bias": take(pending + ".bias"),
                       name + ".running_mean": torch.zeros(c),
                       name + ".running_var": torch.full((c,), 1 - m.eps),
                       name + ".num_batches_tracked": torch.tensor(0)})
        elif isinstance(m, nn.Linear):
            sd[name + ".weight"] = take(name + ".weight")
            sd[name + ".bias"] = take(name + ".bias")
    model.load_state_dict(sd, strict=True)
    assert used == set(st), "unused tensors in file: %s" % sorted(set(st) - used)
    return model


def tf_same_pads(size, k, s):
    """TensorFlow SAME along one axis: (before, after)."""
    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def emulate_tf_same(model, names):
    """Replace torchvision's symmetric padding by TF SAME on the named convs."""
    modules = dict(model.named_modules())
    seen = {}
    for name in names:
        conv = modules[name]
        conv.padding = (0, 0)

        def pre_hook(mod, inputs, name=name):
            x = inputs[0]
            (kh, kw), (sh, sw) = mod.kernel_size, mod.stride
            ph, pw = tf_same_pads(x.shape[2], kh, sh), tf_same_pads(x.shape[3], kw, sw)
            seen[name] = (x.shape[2], (kh, kw), ph + pw)
            return (F.pad(x, (pw[0], pw[1], ph[0], ph[1])),)
        conv.register_forward_pre_hook(pre_hook)
    return seen


def stage_stats(model):
    """Hooks recording mean / mean |x| of every features.N output (first divergence finder)."""
    stats = {}
    for name, m in model.features.named_children():
        def hook(mod, inp, out, key="features." + name):
            o = out.double()
            stats[key] = {"shape": list(out.shape[1:]), "mean": float("%.9g" % o.mean()),
                          "mean_abs": float("%.9g" % o.abs().mean())}
        m.register_forward_hook(hook)
    return stats


def build(key, pretrained_dir, tf_same=True):
    spec = MODELS[key]
    st, meta = load_safetensors(os.path.join(pretrained_dir, spec["file"]))
    model = load_bn_folded(spec["build"](), st).eval()
    seen = emulate_tf_same(model, spec["tf_same"] if tf_same else ())
    return model, seen


def run(model, x, dtype):
    with torch.no_grad():
        return model.to(dtype)(x.to(dtype))[0].double().numpy()


def sig(values, digits):
    return [float("%.*g" % (digits, v)) for v in values]


def top5(logits):
    return [int(i) for i in np.argsort(-logits, kind="stable")[:5]]


def reference(key, pretrained_dir, x):
    torch.manual_seed(0)
    model, seen = build(key, pretrained_dir)
    stats = stage_stats(model)
    l32 = run(model, x, torch.float32)
    again = run(model, x, torch.float32)
    assert np.array_equal(l32, again), "float32 run not repeatable"
    l64 = run(model, x, torch.float64)
    categories = torchvision.models._meta._IMAGENET_CATEGORIES
    doc = {
        "model": "torchvision.models.%s() + %s (BN identity + folded bias, eval mode)"
                 % (MODELS[key]["build"].__name__, MODELS[key]["file"]),
        "cfg": MODELS[key]["cfg"],
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "input_formula": INPUT_FORMULA,
        "input_first": x.flatten()[:8].tolist(),
        "input_last": x.flatten()[-8:].tolist(),
        "input_sum_f64": float(x.double().sum()),
        "tf_same_padding": {n: {"input_hw": s, "kernel": list(k), "pad_top_bottom_left_right": list(p)}
                            for n, (s, k, p) in seen.items()},
        "notes": "logits = float32 run with 1 thread (torch); logits_f64 = the same network in float64. "
                 "A float32 C implementation with another summation order should be within a few "
                 "times max_abs_f32_vs_f64 of logits_f64. SE gate (V3) = torchvision hardsigmoid "
                 "relu6(x+3)/6; hardswish = x*relu6(x+3)/6. stages_f64: mean and mean |x| of each "
                 "features.N output (after its residual add), float64 run.",
        "top5": top5(l32),
        "top5_names": [categories[i] for i in top5(l32)],
        "top5_f64": top5(l64),
        "max_abs_f32_vs_f64": float("%.3g" % np.abs(l32 - l64).max()),
        "stages_f64": stats,
        "logits": sig(l32, 7),
        "logits_f64": sig(l64, 10),
    }
    if MODELS[key]["tf_same"]:
        stock, _ = build(key, pretrained_dir, tf_same=False)
        ls = run(stock, x, torch.float32)
        doc["stock_padding_top5"] = top5(ls)
        doc["stock_padding_max_abs_diff"] = float("%.4g" % np.abs(ls - l32).max())
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pretrained", default=os.path.join(ROOT, "..", "shared", "pretrained"))
    ap.add_argument("--out", default=HERE)
    args = ap.parse_args()
    torch.set_num_threads(1)  # repeatable reduction order
    x = make_input()
    for key in MODELS:
        doc = reference(key, args.pretrained, x)
        path = os.path.join(args.out, "imagenet_ref_%s.json" % key)
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        extra = ""
        if "stock_padding_max_abs_diff" in doc:
            extra = "; stock padding: top5 %s, max |dlogit| %g" % (doc["stock_padding_top5"],
                                                                    doc["stock_padding_max_abs_diff"])
        print("%s: top5 %s %s, f32 vs f64 max |d| %g%s -> %s (%d bytes)"
              % (key, doc["top5"], doc["top5_names"], doc["max_abs_f32_vs_f64"], extra, path,
                 os.path.getsize(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
