#!/usr/bin/python3
"""Check models/arch/*.cfg against torchvision and the pretrained safetensors files.

An independent reading of docs/cfg.md in Python: parse a cfg, infer every block's
output shape and the parameter tensors it implies (names + shapes), then compare
  1. with the torch model bench/torch_bench.py builds for the same architecture
     (names, shapes, trainable parameter count; torchvision's BatchNorm names
     are mapped onto our `CONV.bn.*` convention), and
  2. with the BN-folded pretrained files in ../shared/pretrained (which hold
     CONV.weight + CONV.bias per conv+BN and no BN tensors).

Usage: /usr/bin/python3 tests/ref/check_cfg_names.py [--pretrained DIR] [--no-torch] [CFG ...]
       (no CFG: every models/arch/*.cfg). Exit status 1 on any mismatch.
"""
import argparse
import glob
import json
import math
import os
import struct
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))  # torch_bench.build_model, imported lazily (torch is slow)

# Which pretrained file a cfg loads from, and the prefix of its own (new) head whose
# differences from the file are listed but not counted as errors.
PRETRAINED = {
    "mobilenetv2": ("mobilenet_v2_1.0_224_onnxzoo_bnfolded_f32.safetensors", "classifier."),
    "mobilenetv3-small": ("mobilenet_v3_small_1.0_224_tfslim_bnfolded_f32.safetensors", "classifier."),
    "mobilenetv3-small-imagenet": ("mobilenet_v3_small_1.0_224_tfslim_bnfolded_f32.safetensors", None),
}
# The TF-slim V3 weights need TF SAME padding on exactly these convs (pretrained README).
V3_TF_SAME = {"features.0.0", "features.1.block.0.0", "features.2.block.1.0",
              "features.4.block.1.0", "features.9.block.1.0"}
TF_SAME_EXPECTED = {"mobilenetv3-small": V3_TF_SAME, "mobilenetv3-small-imagenet": V3_TF_SAME}

BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


class CfgError(Exception):
    pass


def parse_cfg(path):
    """[(section, {key: value}, line_no)] in file order; '#' starts a comment anywhere."""
    blocks = []
    with open(path) as f:
        for no, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                blocks.append((line[1:-1].strip(), {}, no))
            elif "=" in line and blocks:
                key, val = (s.strip() for s in line.split("=", 1))
                if key in blocks[-1][1]:
                    raise CfgError("%s:%d: duplicate key %r" % (path, no, key))
                blocks[-1][1][key] = val
            else:
                raise CfgError("%s:%d: expected [section] or key = value" % (path, no))
    if not blocks or blocks[0][0] != "net":
        raise CfgError("%s: first section must be [net]" % path)
    return blocks


def kernel_hw(val):
    parts = val.lower().split("x")
    return (int(parts[0]), int(parts[-1]))


def pad_amounts(mode, size, k, stride, dilation):
    """(before, after) padding along one axis, per docs/cfg.md."""
    eff = (k - 1) * dilation + 1
    if mode == "same":
        return (k // 2 * dilation, k // 2 * dilation)
    if mode == "valid":
        return (0, 0)
    if mode == "tf_same":
        total = max((math.ceil(size / stride) - 1) * stride + eff - size, 0)
        return (total // 2, total - total // 2)
    n = int(mode)
    return (n, n)


def spatial_out(h, w, kv, default_pad, stride_default):
    kh, kw = kernel_hw(kv["size"])
    s = int(kv.get("stride", stride_default(kh)))
    d = int(kv.get("dilation", 1))
    mode = kv.get("pad", default_pad)
    out = []
    for size, k in ((h, kh), (w, kw)):
        lo, hi = pad_amounts(mode, size, k, s, d)
        out.append((size + lo + hi - (k - 1) * d - 1) // s + 1)
    return out, (kh, kw)


def infer(path):
    """Return (params, named, tf_same, net): params = [(name, shape, trainable)],
    named = {block name: (C,H,W)}, tf_same = names of blocks with pad = tf_same."""
    blocks = parse_cfg(path)
    net = blocks[0][1]
    classes = int(net.get("classes", 2))
    size = int(net.get("input", 224))
    shapes = []          # output shape per block (index = block number, [net] excluded)
    labels = {}
    params = []

    def resolve(ref, here, line):
        ref = ref.strip()
        if ref.lstrip("-").isdigit():
            idx = here + int(ref)
        elif ref in labels:
            idx = labels[ref]
        else:
            raise CfgError("%s:%d: unknown block label %r" % (path, line, ref))
        if not 0 <= idx < here:
            raise CfgError("%s:%d: reference %r does not point at an earlier block" % (path, line, ref))
        return shapes[idx]

    def add_param(name, shape, trainable=True):
        params.append((name, tuple(shape), trainable))

    for here, (kind, kv, line) in enumerate(blocks[1:]):
        if here == 0 and "input" not in kv:
            c, h, w = int(net.get("channels", 3)), size, size
        else:
            c, h, w = resolve(kv.get("input", "-1"), here, line)
        name = kv.get("name")
        if kind == "conv":
            (oh, ow), (kh, kw) = spatial_out(h, w, kv, "same", lambda k: 1)
            filters = int(kv["filters"])
            groups = c if kv.get("groups", "1") == "dw" else int(kv.get("groups", "1"))
            if kv.get("groups") == "dw" and filters != c:
                raise CfgError("%s:%d: depthwise conv needs filters == input channels (%d)" % (path, line, c))
            if c % groups or filters % groups:
                raise CfgError("%s:%d: groups %d does not divide %d -> %d" % (path, line, groups, c, filters))
            bn = int(kv.get("batchnorm", 0))
            add_param(name + ".weight", (filters, c // groups, kh, kw))
            if int(kv.get("bias", 0 if bn else 1)):
                add_param(name + ".bias", (filters,))
            if bn:
                for t in BN_TENSORS:
                    add_param("%s.bn.%s" % (name, t), (filters,), t in ("weight", "bias"))
            out = (filters, oh, ow)
        elif kind in ("maxpool", "avgpool"):
            (oh, ow), _ = spatial_out(h, w, kv, "valid", lambda k: k)
            out = (c, oh, ow)
        elif kind == "gap":
            out = (c, 1, 1)
        elif kind == "fc":
            n_out = classes if kv["out"] == "classes" else int(kv["out"])
            add_param(name + ".weight", (n_out, c * h * w))
            if int(kv.get("bias", 1)):
                add_param(name + ".bias", (n_out,))
            out = (n_out, 1, 1)
        elif kind == "batchnorm":
            for t in BN_TENSORS:
                add_param("%s.%s" % (name, t), (c,), t in ("weight", "bias"))
            out = (c, h, w)
        elif kind == "se":
            s = int(kv["squeeze"])
            add_param(name + ".fc1.weight", (s, c, 1, 1))
            add_param(name + ".fc1.bias", (s,))
            add_param(name + ".fc2.weight", (c, s, 1, 1))
            add_param(name + ".fc2.bias", (c,))
            out = (c, h, w)
        elif kind == "add":
            other = resolve(kv["from"], here, line)
            if other != (c, h, w):
                raise CfgError("%s:%d: add of %s and %s" % (path, line, (c, h, w), other))
            out = (c, h, w)
        elif kind == "concat":
            parts = [resolve(r, here, line) for r in kv["from"].split(",")]
            if len({p[1:] for p in parts}) != 1:
                raise CfgError("%s:%d: concat of different spatial sizes %s" % (path, line, parts))
            out = (sum(p[0] for p in parts),) + parts[0][1:]
        elif kind in ("dropout", "activation"):
            out = (c, h, w)
        else:
            raise CfgError("%s:%d: unknown section [%s]" % (path, line, kind))
        if min(out) < 1:
            raise CfgError("%s:%d: [%s] output shape %s" % (path, line, kind, out))
        if name:
            if name in labels:
                raise CfgError("%s:%d: duplicate name %r" % (path, line, name))
            labels[name] = here
        shapes.append(out)
    if shapes[-1] != (classes, 1, 1):
        raise CfgError("%s: last block gives %s, expected %d logits" % (path, shapes[-1], classes))
    tf_same = {kv.get("name") for _, kv, _ in blocks[1:] if kv.get("pad") == "tf_same"}
    return params, {n: shapes[i] for n, i in labels.items()}, tf_same, net


def folded_names(params):
    """What a BN-folded file holds for these params: CONV.weight + CONV.bias, no BN tensors."""
    out = {}
    for name, shape, _ in params:
        if ".bn." in name:
            if name.endswith(".bn.bias"):
                out[name.replace(".bn.bias", ".bias")] = shape
            continue
        out[name] = shape
    return out


def safetensors_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    hdr.pop("__metadata__", None)
    return {k: tuple(v["shape"]) for k, v in hdr.items()}


def compare(expected, actual, ignore_prefix=None):
    """Mismatch messages between two {name: shape} dicts, and the ignored ones."""
    bad, ignored = [], []
    for name in sorted(set(expected) | set(actual)):
        e, a = expected.get(name), actual.get(name)
        if e == a:
            continue
        msg = "%s: cfg %s, other %s" % (name, e, a)
        (ignored if ignore_prefix and name.startswith(ignore_prefix) else bad).append(msg)
    return bad, ignored


def torch_arches():
    from torch_bench import ARCHS
    return ARCHS


def torch_names(arch, classes, size):
    """State dict of bench/torch_bench.py's model, BN tensors renamed to CONV.bn.*,
    its trainable parameter count, and each conv's output (C,H,W) for one input."""
    import torch
    import torch.nn as nn
    from torch_bench import build_model, input_shape
    from torchvision.ops import SqueezeExcitation
    model = build_model(arch, classes).eval()
    conv_shapes = {}
    se_convs = {n for se_name, se in model.named_modules() if isinstance(se, SqueezeExcitation)
                for n in (se_name + ".fc1", se_name + ".fc2")}  # inside our [se] block, not blocks
    for mname, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and mname not in se_convs:
            m.register_forward_hook(lambda mod, inp, out, n=mname: conv_shapes.__setitem__(n, tuple(out.shape[1:])))
    with torch.no_grad():
        model(torch.zeros(input_shape(arch, 1, size)))
    rename, last_conv = {}, None
    for mname, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            last_conv = mname
        elif isinstance(m, nn.BatchNorm2d):
            rename[mname] = last_conv + ".bn"
    out = {}
    for key, t in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        mod, leaf = key.rsplit(".", 1)
        out[rename.get(mod, mod) + "." + leaf] = tuple(t.shape)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return out, n_trainable, conv_shapes


def check(path, pretrained_dir, use_torch):
    arch = os.path.basename(path)[:-4]
    params, named, tf_same, net = infer(path)
    trainable = sum(math.prod(s) for _, s, t in params if t)
    buffers = sum(math.prod(s) for _, s, t in params if not t)
    print("%s: %d tensors, %s trainable parameters (+%s BN running stats)"
          % (arch, len(params), format(trainable, ","), format(buffers, ",")))
    errors = 0
    expect_tf_same = TF_SAME_EXPECTED.get(arch, set())
    if tf_same != expect_tf_same:
        print("  MISMATCH pad = tf_same on %s, expected on %s" % (sorted(tf_same), sorted(expect_tf_same)))
        errors += 1
    ours = {n: s for n, s, _ in params}
    if use_torch and arch not in torch_arches():
        print("  no torch model named %r in bench/torch_bench.py: torch comparison skipped" % arch)
    elif use_torch:
        theirs, n_torch, conv_shapes = torch_names(arch, int(net.get("classes", 2)), int(net.get("input", 224)))
        bad, _ = compare(ours, theirs)
        bad += ["conv output " + m for m in compare({n: named.get(n) for n in conv_shapes}, conv_shapes)[0]]
        print("  vs torch model: %d tensors, %s trainable parameters, %d conv output shapes; %d mismatches"
              % (len(theirs), format(n_torch, ","), len(conv_shapes), len(bad) + (n_torch != trainable)))
        for m in bad:
            print("    MISMATCH", m)
        if n_torch != trainable:
            print("    MISMATCH parameter count")
        errors += len(bad) + (n_torch != trainable)
    if arch in PRETRAINED:
        fname, head = PRETRAINED[arch]
        fpath = os.path.join(pretrained_dir, fname)
        if not os.path.exists(fpath):
            print("  pretrained file %s not found: skipped" % fpath)
        else:
            file_shapes = safetensors_header(fpath)
            bad, ignored = compare(folded_names(params), file_shapes, head)
            print("  vs %s: %d tensors in file; %d mismatches, %d head differences (new head, not loaded)"
                  % (fname, len(file_shapes), len(bad), len(ignored)))
            for m in bad:
                print("    MISMATCH", m)
            for m in ignored:
                print("    head:", m)
            errors += len(bad)
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cfg", nargs="*")
    ap.add_argument("--pretrained", default=os.path.join(ROOT, "..", "shared", "pretrained"))
    ap.add_argument("--no-torch", action="store_true", help="skip the torch comparison")
    args = ap.parse_args()
    paths = args.cfg or sorted(glob.glob(os.path.join(ROOT, "models", "arch", "*.cfg")))
    errors = 0
    for p in paths:
        try:
            errors += check(p, args.pretrained, not args.no_torch)
        except CfgError as e:
            print("ERROR", e)
            errors += 1
    print("total mismatches: %d" % errors)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
