"""Procedural 384x512 face photos for the demo dataset: learnable, but not trivially.

Cues a model can learn: where the mask sits (mask), hair length and face shape (gender), forehead
lines and grey hair that grow with an *apparent* age = age + noise (age band, hard near 30 and 60).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

W, H = 384, 512
SKIN = np.array([(241, 204, 170), (224, 180, 140), (198, 152, 112), (250, 218, 190), (212, 166, 128)], float)
HAIR = np.array([(25, 20, 18), (48, 32, 22), (70, 48, 30), (35, 28, 26)], float)
GREY = np.array([205, 205, 208], float)
MASK_COLORS = [(245, 245, 245), (150, 190, 230), (30, 30, 34), (120, 120, 125), (235, 170, 190), (60, 90, 160)]
AGE_NOISE = 0.45  # std of apparent age in years: what makes 59 vs 60 and 29 vs 30 genuinely hard


@dataclass
class Person:
    """Everything that stays the same across one person's seven photos."""

    gender: int  # 0 male, 1 female
    age: int
    apparent_age: float
    skin: np.ndarray
    hair: np.ndarray
    hair_len: float  # 0 = cropped, 1 = to the shoulders
    cx: float
    cy: float
    scale: float
    jaw: float  # face width factor
    bg_top: np.ndarray
    bg_bottom: np.ndarray
    shirt: tuple
    props: list


def _grey_fraction(apparent_age: float) -> float:
    """Grey slowly from 35, and a marked step at 60."""
    slow = np.clip((apparent_age - 35.0) / 60.0, 0.0, 0.35)
    return float(slow + (0.55 if apparent_age >= 59.5 else 0.0))


def _forehead_lines(apparent_age: float) -> int:
    """None before 30, one to three through the fifties, four from 60."""
    if apparent_age < 29.5:
        return 0
    return 4 if apparent_age >= 59.5 else 1 + min(2, int((apparent_age - 29.5) // 10))


def make_person(rng: np.random.Generator, gender: int, age: int) -> Person:
    apparent = age + rng.normal(0.0, AGE_NOISE)
    female = gender == 1
    # mostly long hair for women and short for men, with an overlap so gender is not read off one cue
    if female:
        hair_len = rng.uniform(0.55, 1.0) if rng.random() > 0.04 else rng.uniform(0.15, 0.35)
    else:
        hair_len = rng.uniform(0.0, 0.3) if rng.random() > 0.03 else rng.uniform(0.45, 0.6)
    g = _grey_fraction(apparent)
    hair = (1 - g) * HAIR[rng.integers(len(HAIR))] + g * GREY + rng.normal(0, 6, 3)
    skin = SKIN[rng.integers(len(SKIN))] + rng.normal(0, 8, 3)
    bg_top = rng.uniform(60, 240, 3)
    bg_bottom = np.clip(bg_top + rng.normal(0, 40, 3), 0, 255)
    props = [(rng.uniform(0, W), rng.uniform(0, H * 0.6), rng.uniform(30, 120), rng.uniform(30, 160),
              tuple(int(c) for c in rng.uniform(40, 250, 3))) for _ in range(rng.integers(0, 4))]
    return Person(
        gender=gender, age=age, apparent_age=apparent, skin=skin, hair=np.clip(hair, 0, 255), hair_len=hair_len,
        cx=W / 2 + rng.normal(0, 14), cy=H * 0.45 + rng.normal(0, 14), scale=rng.uniform(0.85, 1.1),
        jaw=(0.9 if female else 1.04) + rng.normal(0, 0.03), bg_top=bg_top, bg_bottom=bg_bottom,
        shirt=tuple(int(c) for c in rng.uniform(20, 235, 3)), props=props,
    )


def _background(p: Person) -> Image.Image:
    t = np.linspace(0.0, 1.0, H)[:, None, None]
    grad = (1 - t) * p.bg_top + t * p.bg_bottom  # (H, 1, 3)
    img = Image.fromarray(np.broadcast_to(grad, (H, W, 3)).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for x, y, w, h, c in p.props:
        d.rectangle([x, y, x + w, y + h], fill=c)
    return img


def _rgb(a) -> tuple:
    return tuple(int(v) for v in np.clip(a, 0, 255))


def draw_photo(p: Person, mask: int, rng: np.random.Generator, mask_color: tuple | None = None) -> Image.Image:
    """One photo of person `p` with mask state 0 wear / 1 incorrect / 2 none."""
    img = _background(p)
    d = ImageDraw.Draw(img)
    s = p.scale
    cx = p.cx + rng.normal(0, 6)
    cy = p.cy + rng.normal(0, 6)
    fw, fh = 150 * s * p.jaw, 200 * s
    skin, hair = _rgb(p.skin), _rgb(p.hair)
    # shoulders; long hair falls behind the neck and down to the shoulders
    d.ellipse([cx - 1.25 * fw, cy + 0.75 * fh, cx + 1.25 * fw, cy + 2.2 * fh], fill=p.shirt)
    if p.hair_len > 0.4:
        bottom = cy + fh * (0.1 + 0.8 * p.hair_len)
        d.rounded_rectangle([cx - 0.62 * fw, cy - 0.55 * fh, cx + 0.62 * fw, bottom], radius=int(0.3 * fw), fill=hair)
    d.rectangle([cx - 0.2 * fw, cy + 0.3 * fh, cx + 0.2 * fw, cy + 0.85 * fh], fill=_rgb(p.skin * 0.92))
    # face
    d.ellipse([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], fill=skin)
    # hair cap: thicker for long hair, never so thin that its colour (grey with age) is lost at low resolution
    cap = 0.24 + 0.08 * p.hair_len
    d.chord([cx - 0.56 * fw, cy - 0.62 * fh, cx + 0.56 * fw, cy + (cap * 2 - 0.4) * fh], 180, 360, fill=hair)
    # ears
    for side in (-1, 1):
        ex = cx + side * 0.5 * fw
        d.ellipse([ex - 0.08 * fw, cy - 0.08 * fh, ex + 0.08 * fw, cy + 0.1 * fh], fill=_rgb(p.skin * 0.95))
    # forehead lines (age)
    line_col = _rgb(p.skin * 0.62)
    for k in range(_forehead_lines(p.apparent_age)):
        y = cy - 0.3 * fh + k * 0.055 * fh
        d.arc([cx - 0.3 * fw, y, cx + 0.3 * fw, y + 0.12 * fh], 200, 340, fill=line_col, width=max(3, int(4 * s)))
    # eyes and brows
    brow = max(2, int((10 if p.gender == 0 else 3) * s))  # heavy brows read as male even above a mask
    brow_col = _rgb(p.hair * 0.5)  # darker than the hair, so grey-haired men keep visible brows
    for side in (-1, 1):
        ex, ey = cx + side * 0.2 * fw, cy - 0.08 * fh
        d.ellipse([ex - 0.09 * fw, ey - 0.035 * fh, ex + 0.09 * fw, ey + 0.035 * fh], fill=(250, 250, 250))
        d.ellipse([ex - 0.035 * fw, ey - 0.03 * fh, ex + 0.035 * fw, ey + 0.03 * fh], fill=(40, 30, 25))
        d.line([ex - 0.1 * fw, ey - 0.08 * fh, ex + 0.1 * fw, ey - 0.085 * fh], fill=brow_col, width=brow)
        if p.apparent_age >= 45:  # bags under the eyes
            d.arc([ex - 0.09 * fw, ey, ex + 0.09 * fw, ey + 0.08 * fh], 20, 160, fill=line_col, width=2)
    # nose and mouth
    d.polygon([(cx, cy - 0.02 * fh), (cx - 0.06 * fw, cy + 0.14 * fh), (cx + 0.06 * fw, cy + 0.14 * fh)],
              fill=_rgb(p.skin * 0.8))
    lips = (185, 70, 80) if p.gender == 1 else _rgb(p.skin * 0.7)
    d.ellipse([cx - 0.15 * fw, cy + 0.24 * fh, cx + 0.15 * fw, cy + 0.31 * fh], fill=lips)
    # the mask
    if mask != 2:
        color = mask_color or MASK_COLORS[rng.integers(len(MASK_COLORS))]
        if mask == 0:
            top, bot = cy + rng.uniform(-0.04, 0.02) * fh, cy + 0.47 * fh
        elif rng.random() < 0.6:  # under the nose: nose visible
            top, bot = cy + rng.uniform(0.16, 0.2) * fh, cy + 0.5 * fh
        else:  # on the chin: nose and mouth visible
            top, bot = cy + rng.uniform(0.33, 0.36) * fh, cy + 0.56 * fh
        d.rounded_rectangle([cx - 0.47 * fw, top, cx + 0.47 * fw, bot], radius=int(0.12 * fw), fill=color,
                            outline=_rgb(np.array(color) * 0.7), width=2)
        for side in (-1, 1):  # straps to the ears
            d.line([cx + side * 0.47 * fw, top + 0.03 * fh, cx + side * 0.52 * fw, cy - 0.02 * fh],
                   fill=_rgb(np.array(color) * 0.8), width=3)
    # camera: small rotation and lighting change
    angle = rng.normal(0, 4)
    img = img.rotate(angle, resample=Image.BILINEAR, center=(cx, cy), fillcolor=_rgb(p.bg_top))
    gain = rng.uniform(0.82, 1.15)
    arr = np.asarray(img, dtype=np.float32) * gain + rng.normal(0, 3.0, (1, 1, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
