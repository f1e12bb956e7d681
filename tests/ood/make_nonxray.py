#!/usr/bin/env python3
"""Writes a set of images that are not chest X-rays into DIR, for testing the
out-of-distribution gate: natural photographs, text and document pages,
microscopy, astronomy, textures, a CT phantom (Debian python3-skimage's bundled
data), each in colour where it has colour and in grayscale, and synthetic
images (blank, noise, gradients, checkerboards, shapes, rendered text, and
harder ones: smooth noise, contrast-equalized photographs, a rendered torso).
Deterministic. Usage: make_nonxray.py DIR"""
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

import skimage.data as sk


def save(out, name, arr, fmt):
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        lo, hi = a.min(), a.max()
        arr = ((a - lo) / (hi - lo if hi > lo else 1) * 255).round().astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    Image.fromarray(arr).save(os.path.join(out, f"{name}.{fmt}"), quality=92)


def skimage_images():
    names = ["astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins",
             "colorwheel", "grass", "gravel", "horse", "hubble_deep_field",
             "immunohistochemistry", "logo", "moon", "page", "rocket", "shepp_logan_phantom", "text"]
    for n in names:
        f = getattr(sk, n, None)
        if f is None:
            continue
        try:
            img = np.asarray(f())
        except Exception:  # data files fetched on demand are not bundled
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        yield n, img


def synthetic(rng):
    s = 512
    yy, xx = np.mgrid[0:s, 0:s] / (s - 1)
    yield "blank_black", np.zeros((s, s), np.uint8)
    yield "blank_white", np.full((s, s), 255, np.uint8)
    yield "blank_gray", np.full((s, s), 128, np.uint8)
    yield "noise_uniform", rng.integers(0, 256, (s, s), dtype=np.uint8)
    yield "noise_gaussian", np.clip(128 + 40 * rng.standard_normal((s, s)), 0, 255).astype(np.uint8)
    yield "noise_colour", rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
    yield "gradient_horizontal", (xx * 255).astype(np.uint8)
    yield "gradient_radial", (255 * np.clip(np.hypot(xx - .5, yy - .5) * 1.6, 0, 1)).astype(np.uint8)
    yield "checkerboard", (((xx * 8).astype(int) + (yy * 8).astype(int)) % 2 * 255).astype(np.uint8)
    yield "stripes", (127 + 127 * np.sin(xx * 60)).astype(np.uint8)
    img = Image.new("RGB", (640, 480), (250, 250, 245))
    d = ImageDraw.Draw(img)
    for i in range(40):
        x0, y0 = rng.integers(0, 600), rng.integers(0, 440)
        d.ellipse([x0, y0, x0 + rng.integers(10, 120), y0 + rng.integers(10, 120)],
                  fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    yield "shapes_colour", np.asarray(img)
    font = ImageFont.load_default()
    for k, (w, h) in enumerate([(850, 1100), (1100, 850)]):
        page = Image.new("L", (w, h), 255)
        d = ImageDraw.Draw(page)
        for line in range(0, h - 60, 18):
            vocab = "lorem ipsum dolor sit amet consectetur patient report".split()
            words = " ".join(vocab[int(i)] for i in rng.integers(0, len(vocab), 12))
            d.text((40, 30 + line), words, fill=0, font=font)
        yield f"document_page_{k}", np.asarray(page)
    scr = Image.new("RGB", (800, 600), (30, 30, 40))
    d = ImageDraw.Draw(scr)
    for line in range(0, 560, 16):
        d.text((20, 20 + line), f"$ pneumo predict image_{line}.jpeg  # {rng.integers(1e6)}",
               fill=(200, 220, 200), font=font)
    yield "terminal_screenshot", np.asarray(scr)
    # Harder cases: smooth gray images with an X-ray-like spread of intensities.
    blurred = np.asarray(Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).resize((512, 512),
                         Image.BICUBIC))
    yield "noise_smooth", blurred
    yield "noise_smooth_portrait", np.asarray(Image.fromarray(blurred).resize((420, 512), Image.BICUBIC))
    torso = Image.new("L", (512, 600), 20)  # a rendered torso-like phantom: body, two dark fields, a spine
    d = ImageDraw.Draw(torso)
    d.ellipse([40, 60, 472, 620], fill=170)
    d.ellipse([90, 130, 240, 480], fill=70)
    d.ellipse([272, 130, 422, 480], fill=70)
    d.rectangle([236, 60, 276, 600], fill=220)
    yield "render_torso", np.asarray(torso.resize((128, 150)).resize((512, 600), Image.BICUBIC))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261202)
    for name, img in skimage_images():
        colour = img.ndim == 3
        save(out, f"sk_{name}", img, "png")
        gray = np.asarray(Image.fromarray(img[:, :, :3]).convert("L")) if colour else img
        if colour:
            save(out, f"sk_{name}_gray", gray, "jpeg")
        if gray.ndim == 2 and name in ("camera", "moon", "astronaut", "coins"):  # contrast stretched to the full range
            eq = np.asarray(ImageOps.equalize(Image.fromarray(gray.astype(np.uint8))))
            save(out, f"sk_{name}_equalized", eq, "jpeg")
        h, w = gray.shape[:2]
        if min(h, w) >= 128:  # a random grayscale crop: framing that differs from the original
            ch, cw = int(h * rng.uniform(.5, .8)), int(w * rng.uniform(.5, .8))
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            save(out, f"sk_{name}_crop", gray[y:y + ch, x:x + cw], "jpeg")
    for name, img in synthetic(rng):
        save(out, f"syn_{name}", img, "png")
    print(len(os.listdir(out)))


if __name__ == "__main__":
    main()
