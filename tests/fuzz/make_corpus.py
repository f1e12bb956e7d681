#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Every seed is small (a few KB at most) and synthetic: gradients and noise,
never dataset images. Needs Debian's python3-pil and python3-numpy
(/usr/bin/python3). Regression inputs for fixed findings live beside the
seeds as regress-*; this script never touches them. Re-run after changing a
seed recipe: python3 tests/fuzz/make_corpus.py
"""
import io
import json
import os
import struct
import sys

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) <= 8192, (target, name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gradient(w, h, bits=8):
    y, x = np.mgrid[0:h, 0:w]
    top = (1 << bits) - 1
    return ((x * 3 + y * 5) % (top + 1) if bits == 8 else (x * 911 + y * 1409) % 4096 + 1000).astype(
        np.uint8 if bits == 8 else np.uint16)


def encode(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def images():
    g = Image.fromarray(gradient(32, 24))
    rgb = Image.merge("RGB", (g, g.transpose(Image.FLIP_LEFT_RIGHT), g.transpose(Image.FLIP_TOP_BOTTOM)))
    put("image", "gray.jpg", encode(g, "JPEG", quality=80))
    put("image", "gray-progressive.jpg", encode(g, "JPEG", quality=60, progressive=True))
    put("image", "rgb-420.jpg", encode(rgb, "JPEG", quality=70, subsampling=2))
    put("image", "rgb-444.jpg", encode(rgb, "JPEG", quality=70, subsampling=0))
    put("image", "cmyk.jpg", encode(rgb.convert("CMYK"), "JPEG", quality=70))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    put("image", "exif-rotated.jpg", encode(g, "JPEG", quality=70, exif=exif.tobytes()))
    put("image", "gray8.png", encode(g, "PNG"))
    put("image", "gray16.png", encode(Image.fromarray(gradient(20, 16, 16)), "PNG"))
    put("image", "rgb.png", encode(rgb, "PNG"))
    put("image", "rgba.png", encode(rgb.convert("RGBA"), "PNG"))
    put("image", "gray-alpha.png", encode(g.convert("LA"), "PNG"))
    put("image", "palette.png", encode(rgb.convert("P", palette=Image.ADAPTIVE, colors=16), "PNG"))
    put("image", "bilevel.png", encode(g.convert("1"), "PNG"))
    put("image", "tall.png", encode(Image.fromarray(gradient(4, 60)), "PNG"))
    put("image", "one-pixel.png", encode(Image.fromarray(gradient(1, 1)), "PNG"))
    jpg = encode(g, "JPEG", quality=80)
    put("image", "truncated.jpg", jpg[: len(jpg) // 2])
    png = encode(g, "PNG")
    put("image", "truncated.png", png[: len(png) - 20])
    put("image", "gif-signature.bin", b"GIF89a" + bytes(16))
    put("image", "dicom-signature.bin", bytes(128) + b"DICM" + bytes(16))


TINY_CFG = """[net]
input = 16
channels = 1
classes = 2

[conv]
name = c1
filters = 4
size = 3
stride = 2
pad = same
batchnorm = 1
activation = relu

[gap]

[dropout]
p = 0.2

[fc]
name = head
out = 2
"""


def dicoms():
    """Small DICOMs made by DCMTK's tools (dcmtk package) from a 16x16 gradient:
    JPEG baseline (img2dcm), uncompressed, RLE, JPEG-LS, MONOCHROME1, and a
    window/rescale variant. Skipped with a message when the tools are absent."""
    import shutil
    import subprocess
    import tempfile
    if not all(shutil.which(t) for t in ("img2dcm", "dcmdjpeg", "dcmcrle", "dcmcjpls", "dcmodify")):
        print("make_corpus: DCMTK tools missing, DICOM seeds not remade", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as d:
        def path(name):
            return os.path.join(d, name)

        def run(*cmd):
            subprocess.run(cmd, check=True)

        Image.fromarray(gradient(16, 16)).save(path("g.jpg"), quality=90)
        run("img2dcm", "-q", path("g.jpg"), path("jpeg-baseline.dcm"))
        run("dcmdjpeg", path("jpeg-baseline.dcm"), path("plain.dcm"))
        run("dcmcrle", path("plain.dcm"), path("rle.dcm"))
        run("dcmcjpls", path("plain.dcm"), path("jpegls.dcm"))
        shutil.copy(path("plain.dcm"), path("mono1.dcm"))
        run("dcmodify", "-q", "-nb", "-m", "(0028,0004)=MONOCHROME1", path("mono1.dcm"))
        shutil.copy(path("plain.dcm"), path("window.dcm"))
        run("dcmodify", "-q", "-nb", "-i", "(0028,1050)=100", "-i", "(0028,1051)=80",
            "-i", "(0028,1052)=-10", "-i", "(0028,1053)=2", path("window.dcm"))
        for name in ("jpeg-baseline", "plain", "rle", "jpegls", "mono1", "window"):
            with open(path(name + ".dcm"), "rb") as f:
                put("image", "dicom-%s.dcm" % name, f.read())


def safetensors(tensors, metadata):
    """tensors: name -> (dtype, shape, bytes)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def tiny_model_tensors(dtype_weights="F32"):
    rng = np.random.default_rng(7)

    def w(shape):
        v = (rng.standard_normal(int(np.prod(shape))) * 0.3).astype(np.float32)
        if dtype_weights == "BF16":
            return ("BF16", shape, (v.view(np.uint32) >> 16).astype(np.uint16).tobytes())
        return ("F32", shape, v.tobytes())

    return {
        "c1.weight": w([4, 1, 3, 3]),
        "c1.bn.weight": ("F32", [4], f32([1, 1, 1, 1])),
        "c1.bn.bias": ("F32", [4], f32([0, 0.1, 0, -0.1])),
        "c1.bn.running_mean": ("F32", [4], f32([0, 0, 0, 0])),
        "c1.bn.running_var": ("F32", [4], f32([1, 1, 1, 1])),
        "head.weight": w([2, 4]),
        "head.bias": ("F32", [2], f32([0, 0])),
    }


def tiny_model_metadata(**extra):
    m = {"format": "pneumo", "pneumo_format_version": "1", "arch": TINY_CFG, "arch_name": "fuzz-tiny",
         "input_size": "16", "channels": "1", "classes": "2", "mean": "0.5", "std": "0.25",
         "threshold": "0.4", "temperature": "1.5", "resize": "squash",
         "class_names": '["NORMAL","PNEUMONIA"]', "metrics": '{"n":10,"roc_auc":0.5}',
         "history": '{"train_loss":[0.7,0.6],"val_loss":[0.69,0.65],"train_acc":[0.5,0.6],'
                    '"val_acc":[0.5,0.55],"val_auc":[0.5,0.6]}'}
    m.update(extra)
    return m


def models():
    put("model", "tiny.safetensors", safetensors(tiny_model_tensors(), tiny_model_metadata()))
    put("model", "tiny-bf16.safetensors", safetensors(tiny_model_tensors("BF16"), tiny_model_metadata()))
    put("model", "tiny-letterbox.safetensors",
        safetensors(tiny_model_tensors(), tiny_model_metadata(resize="letterbox", threshold="1")))
    t = tiny_model_tensors()
    del t["head.bias"]
    put("model", "missing-tensor.safetensors", safetensors(t, tiny_model_metadata()))
    put("model", "three-classes.safetensors",
        safetensors(tiny_model_tensors(), tiny_model_metadata(arch=TINY_CFG.replace("classes = 2", "classes = 3"))))


def safetensors_seeds():
    put("safetensors", "dtypes.safetensors", safetensors({
        "a": ("F32", [2, 2], f32([1, 2, 3, 4])),
        "b": ("BF16", [3], bytes([0, 0x3f, 0x80, 0x3f, 0, 0xc0])),
        "c": ("F16", [1], bytes([0, 0x3c])),
        "d": ("I64", [1], struct.pack("<q", -5)),
        "e": ("U8", [0], b""),
    }, {"note": "seed", "n": "1"}))
    put("safetensors", "empty.safetensors", safetensors({}, None))
    put("safetensors", "scalar.safetensors", safetensors({"s": ("F64", [], struct.pack("<d", 0.5))}, {}))
    put("safetensors", "model.safetensors", safetensors(tiny_model_tensors("BF16"), tiny_model_metadata()))


def cfgs():
    put("cfg", "tiny.cfg", TINY_CFG)
    put("cfg", "branches.cfg", """[net]
input = 16
channels = 3
classes = 3
mean = 0.4,0.5,0.6
std = 0.2,0.2,0.2

[conv]
name = stem
filters = 8
size = 3
pad = same
batchnorm = 1
activation = hswish

[conv]
name = dw
filters = 8
groups = 8
size = 3
pad = same
bias = 1
activation = relu6

[se]
squeeze = 4

[add]
from = stem

[maxpool]
size = 2

[avgpool]
size = 2
stride = 2

[concat]
from = -1, -2

[gap]

[fc]
out = 3
""")
    # The real architectures build millions of parameters: seconds per run
    # under ASan, so the seeds are narrow networks of the same section kinds.
    with open(os.path.join(SRC, "models", "arch", "simple-cnn.cfg")) as f:
        narrow = f.read().replace("filters = 32", "filters = 2").replace("filters = 64", "filters = 2")
        put("cfg", "simple-cnn-narrow.cfg", narrow.replace("filters = 128", "filters = 2")
            .replace("out = 256", "out = 4").replace("input = 128", "input = 16"))
    put("cfg", "bad-ref.cfg", "[net]\n[conv]\nfilters=2\nsize=1\ninput=nowhere\n[gap]\n[fc]\nout=2\n")


def recipes():
    for name in sorted(os.listdir(os.path.join(SRC, "recipes"))):
        with open(os.path.join(SRC, "recipes", name), "rb") as f:
            put("options", name, f.read())
    put("options", "argv", b"epochs = 2\n\0--lr\0" + b"0.01\0--class-weights=1.5,0.5\0--seed\0" + b"7\0--resume")
    put("options", "bad-value", b"lr = -1\n")
    put("options", "help", b"\0--help")


def multipart():
    b = "XyZ123"
    body = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a/b.png\"\r\n"
            "Content-Type: image/png\r\n\r\nPNGDATA\r\n--%s\r\nContent-Disposition: form-data; name=threshold\r\n"
            "\r\n0.3\r\n--%s--\r\n") % (b, b, b)
    put("multipart", "two-parts", "multipart/form-data; boundary=%s\n%s" % (b, body))
    put("multipart", "quoted-boundary", "multipart/form-data; charset=utf-8; boundary=\"a b\"\n"
        "preamble\r\n--a b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nx\r\n--a b--")
    put("multipart", "unterminated", "multipart/form-data; boundary=q\n--q\r\nContent-Disposition: form-data; "
        "name=\"file\"\r\n\r\ndata without end")


def http():
    g = Image.fromarray(gradient(16, 16))
    png = encode(g, "PNG")
    def post(path, ctype, body, extra=""):
        return ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                % (path, ctype, len(body), extra)).encode() + body
    put("http", "predict-png", post("/api/v1/predict?threshold=0.3", "image/png", png))
    b = b"bnd"
    form = (b"--bnd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\r\n" + png +
            b"\r\n--bnd\r\nContent-Disposition: form-data; name=\"gradcam\"\r\n\r\n1\r\n--bnd--\r\n")
    put("http", "predict-multipart", post("/api/v1/predict", "multipart/form-data; boundary=bnd", form))
    put("http", "predict-chunked", b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    put("http", "predict-not-image", post("/api/v1/predict", "image/jpeg", b"not an image"))
    put("http", "too-large", b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
    put("http", "get-health", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    put("http", "get-metrics-keepalive", b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/model HTTP/1.1\r\n"
        b"Host: x\r\nConnection: close\r\n\r\n")
    put("http", "get-page", b"GET / HTTP/1.0\r\n\r\n")
    put("http", "method", b"DELETE /api/v1/predict HTTP/1.1\r\nHost: x\r\n\r\n")
    put("http", "garbage", b"\x00\x01GET\r\n\r\n")


def manifests():
    """fuzz_manifest's folder holds a.png, b.png and sub/c.png."""
    put("manifest", "all-columns", "path,label,patient_id,split\na.png,NORMAL,p1,train\nb.png,BACTERIAL,p1,val\n"
        "sub/c.png,viral,p2,test\n")
    put("manifest", "quoted-crlf-bom", b"\xef\xbb\xbfnotes,Label,PATH\r\n\"say \"\"hi\"\"\",normal,\"a.png\"\r\n"
        b"\r\n\"two\r\nlines\",PNEUMONIA,./sub/c.png\r\n")
    put("manifest", "minimal", "path,label\nb.png,virus")
    put("manifest", "duplicate", "path,label\na.png,NORMAL\nsub/../a.png,NORMAL\n")
    put("manifest", "bad-label", "path,label\na.png,NORMAL\nb.png,COVID\n")
    put("manifest", "bad-quote", "path,label\na.png,NOR\"MAL\n")
    put("manifest", "unterminated", "path,label\n\"a.png,NORMAL\n")
    put("manifest", "field-count", "path,label,split\na.png,NORMAL\n")
    put("manifest", "no-header-column", "file,label\na.png,NORMAL\n")


def main():
    images()
    dicoms()
    models()
    safetensors_seeds()
    cfgs()
    recipes()
    multipart()
    http()
    manifests()


if __name__ == "__main__":
    sys.exit(main())
