"""Photo-like demo images: the drawn faces given the texture, sensor noise and JPEG settings of a phone photo.

Smooth drawn faces compress to ~15 KB and decode faster than a real 384x512 photo (~70-80 KB), which flatters
a decode-bound baseline. `--photo` demo data costs what a photo costs to decode, so benchmark ratios measured
on it say something about real data.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

PHONE_JPEG = {"quality": 93, "subsampling": "4:2:0", "optimize": False}  # what phone cameras typically write


def photolike(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Fine skin-and-fabric texture, soft lens blur, uneven light and per-pixel sensor noise."""
    h, w = img.height, img.width
    base = np.asarray(img.filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float32)
    texture = rng.normal(0.0, 1.0, (h // 2 + 1, w // 2 + 1)).astype(np.float32)
    texture = np.asarray(Image.fromarray(texture).resize((w, h), Image.BICUBIC), dtype=np.float32)[..., None] * 9.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    light = 1.0 + 0.12 * ((np.cos(angle) * xx / w + np.sin(angle) * yy / h) - 0.5)
    noise = rng.normal(0.0, 5.5, (h, w, 3)).astype(np.float32)  # sensor noise, per channel
    out = base * light[..., None] + texture + noise
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
