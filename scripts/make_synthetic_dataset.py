#!/usr/bin/python3
"""Writes a synthetic labelled chest X-ray-like collection and its manifest.

    make_synthetic_dataset.py OUT N [--size 224] [--format jpeg|png|png16] [--test-fraction F] [--jobs J]
                              [--variants K]

OUT/images/{NORMAL,PNEUMONIA}/<name> holds N small images made from four
drawn base pictures (two bright lung fields on a body outline; PNEUMONIA ones
with a hazy opacity), each shifted by a few pixels, with its own noise and
its index written into a corner so that no two files are byte-identical. Names
follow the Kermany patterns (IM-<patient>-<n>, person<patient>_bacteria|virus_<n>),
two images per patient. OUT/manifest.csv lists them (path,label,patient_id,split)
with a test-fraction of the patients in split test and the rest in train; the
folder layout OUT/images is what `pneumo data convert` and the folder readers
take. png16 writes 1-channel 16-bit PNGs holding 12-bit values (ChestX-ray14
style), without an sBIT chunk. With --variants K only K pictures are drawn and
encoded; image i is picture i % K with its index in a JPEG comment or PNG text
chunk (ignored by decoders, so files still differ byte for byte): fast enough
for 100,000 images. Nothing here is a real radiograph; numpy is needed, and
Pillow for jpeg.
"""
import argparse
import csv
import os
import struct
import sys
import zlib
from multiprocessing import Pool

import numpy as np


def base_pictures(size):
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = np.exp(-(((xx - 0.5) / 0.42) ** 2 + ((yy - 0.55) / 0.5) ** 2) ** 3)
    lungs = sum(np.exp(-(((xx - cx) / 0.14) ** 2 + ((yy - 0.5) / 0.27) ** 2) ** 2) for cx in (0.33, 0.67))
    pics = []
    for k in range(4):
        pneumonia = k >= 2
        img = 70 + 90 * body - 60 * lungs + 6 * k
        if pneumonia:
            cx = 0.33 if k == 2 else 0.67
            img += 55 * np.exp(-(((xx - cx) / 0.1) ** 2 + ((yy - 0.6) / 0.12) ** 2))
        pics.append(img)
    return pics


def png_bytes(pixels, bit_depth):
    h, w = pixels.shape
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + row.astype(dtype).tobytes() for row in pixels)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def picture(i, size, fmt, pics):
    rng = np.random.default_rng(i)
    patient = i // 2
    base = pics[2 * (patient % 2) + (patient // 2) % 2]
    dy, dx = rng.integers(-4, 5, size=2)
    img = np.roll(base, (dy, dx), axis=(0, 1)) + rng.normal(0, 3, base.shape)
    img = np.clip(img, 0, 255)
    if fmt == "png16":
        img = img * (4095 / 255)  # 12-bit values in a 16-bit container
    img = img.astype(np.uint16)
    for bit in range(24):  # the index, as dark and bright pixels along the top row
        img[0, bit] = (img.max() if (i >> bit) & 1 else 0)
    return img


def name_of(i):
    """Class folder, file stem and patient id of image i (patient i // 2)."""
    patient, n = i // 2, i % 2 + 1
    if patient % 2 == 0:
        return "NORMAL", f"IM-{patient:06d}-{n:04d}", f"IM-{patient:06d}"
    kind = "bacteria" if (patient // 2) % 2 == 0 else "virus"
    return "PNEUMONIA", f"person{patient}_{kind}_{i}", f"person{patient}"


def encode(i, size, fmt, pics):
    img = picture(i, size, fmt, pics)
    if fmt != "jpeg":
        return png_bytes(img, 16 if fmt == "png16" else 8)
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8), "L").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def tagged(data, fmt, i):
    """data with a comment (JPEG COM) or text chunk (PNG tEXt) naming image i."""
    text = b"pneumo synthetic image %d" % i
    if fmt == "jpeg":
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
    body = b"Comment\x00" + text
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return data[:33] + chunk + data[33:]  # after the signature and IHDR


def write_one(job):
    i, out, size, fmt, variants = job
    cls, stem, _ = name_of(i)
    if variants:
        k = i % variants
        if k not in write_one.encoded:
            write_one.encoded[k] = encode(k, size, fmt, write_one.pics)
        data = tagged(write_one.encoded[k], fmt, i)
    else:
        data = encode(i, size, fmt, write_one.pics)
    with open(os.path.join(out, "images", cls, stem + (".jpeg" if fmt == "jpeg" else ".png")), "wb") as f:
        f.write(data)


def init_worker(size):
    write_one.pics = base_pictures(size)
    write_one.encoded = {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("n", type=int)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--format", choices=["jpeg", "png", "png16"], default="jpeg")
    ap.add_argument("--test-fraction", type=float, default=0.1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--variants", type=int, default=0)
    a = ap.parse_args()
    a.variants = (a.variants + 3) // 4 * 4  # picture i % K keeps image i's class and subtype
    for cls in ("NORMAL", "PNEUMONIA"):
        os.makedirs(os.path.join(a.out, "images", cls), exist_ok=True)
    jobs = [(i, a.out, a.size, a.format, a.variants) for i in range(a.n)]
    with Pool(a.jobs, initializer=init_worker, initargs=(a.size,)) as pool:
        for _ in pool.imap_unordered(write_one, jobs, chunksize=256):
            pass
    ext = ".jpeg" if a.format == "jpeg" else ".png"
    with open(os.path.join(a.out, "manifest.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "label", "patient_id", "split"])
        for i in range(a.n):
            cls, stem, patient = name_of(i)
            test = (i // 2 * 7919) % 1000 < a.test_fraction * 1000  # whole patients, spread out
            w.writerow([f"images/{cls}/{stem}{ext}", cls, patient, "test" if test else "train"])
    print(f"wrote {a.n} images and {os.path.join(a.out, 'manifest.csv')}", file=sys.stderr)


if __name__ == "__main__":
    main()
