"""Procedural 384x512 face photos for the demo dataset: learnable, but not trivially, and found by a face detector.

Cues a model can learn: where the mask sits (mask), hair length and face shape (gender), forehead
lines and grey hair that grow with an *apparent* age = age + noise (age band, hard near 30 and 60).

Framed like phone photos: each person stands nearer or farther (face 108-165 px wide) and off centre, so a
face crop has real work. Lit and drawn like photos (shaded face, eye sockets, a mask that follows the lower
face, rendered at half size and softened by the upscale), so that MTCNN finds most faces, masked ones
included: about 7 in 10 (`python -m maskcls faces` on the studio demo reports the coverage).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 384, 512
SKIN = np.array([(241, 204, 170), (224, 180, 140), (198, 152, 112), (250, 218, 190), (212, 166, 128)], float)
HAIR = np.array([(25, 20, 18), (48, 32, 22), (70, 48, 30), (35, 28, 26)], float)
GREY = np.array([205, 205, 208], float)
MASK_COLORS = [(245, 245, 245), (150, 190, 230), (30, 30, 34), (120, 120, 125), (235, 170, 190), (60, 90, 160)]
RENDER = 0.5  # drawn at half size and upscaled: a photo's softness at a third of the cost of a blur at full size
BLUR = 1.6  # Gaussian radius at RENDER scale; sharper cartoons are found less often by MTCNN
SCALES = (0.72, 1.1)  # face 108-165 px wide: per person, as near or far as the phone was held
OFF_CENTRE = 0.6  # share of the room left and right (and of 60 px up and down) a person may stand off centre
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
    # framing as in phone photos: nearer or farther, off centre, the head always in the picture
    scale = rng.uniform(*SCALES)
    fw, fh = 150 * scale, 200 * scale
    cx = W / 2 + rng.uniform(-1, 1) * OFF_CENTRE * (W / 2 - 0.7 * fw)
    cy = max(0.65 * fh + 8, H * 0.45 + rng.uniform(-1, 1) * OFF_CENTRE * 60)
    return Person(
        gender=gender, age=age, apparent_age=apparent, skin=skin, hair=np.clip(hair, 0, 255), hair_len=hair_len,
        cx=cx, cy=cy, scale=scale,
        jaw=(0.9 if female else 1.04) + rng.normal(0, 0.03), bg_top=bg_top, bg_bottom=bg_bottom,
        shirt=tuple(int(c) for c in rng.uniform(20, 235, 3)), props=props,
    )


def _background(p: Person, k: float) -> Image.Image:
    w, h = round(W * k), round(H * k)
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    grad = (1 - t) * p.bg_top + t * p.bg_bottom  # (h, 1, 3)
    img = Image.fromarray(np.broadcast_to(grad, (h, w, 3)).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for x, y, pw, ph, c in p.props:
        d.rectangle([k * x, k * y, k * (x + pw), k * (y + ph)], fill=c)
    return img


def _rgb(a) -> tuple:
    return tuple(int(v) for v in np.clip(a, 0, 255))


def _shade(img: Image.Image, face: tuple, gain: float, tint) -> Image.Image:
    """Light a drawn face like a photo (darker towards the face's edge, eye sockets and the nose's sides in
    shadow), then the camera's exposure `gain` and colour `tint` over the whole frame."""
    cx, cy, fw, fh = face
    x0, y0 = int(max(0, cx - 0.75 * fw)), int(max(0, cy - 0.75 * fh))
    x1, y1 = int(min(img.width, cx + 0.75 * fw)), int(min(img.height, cy + 0.75 * fh))
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    u, v = (xx - cx) / (0.5 * fw), (yy - cy) / (0.5 * fh)
    r2 = u * u + v * v
    f = np.where(r2 < 1.0, 0.72 + 0.28 * np.sqrt(np.clip(1.0 - r2, 0, 1)), 1.0)
    for side in (-1, 1):  # eye sockets
        f *= 1.0 - 0.22 * np.exp(-((u - side * 0.4) / 0.22) ** 2 - ((v + 0.2) / 0.14) ** 2)
        f *= 1.0 - 0.12 * np.exp(-((u - side * 0.12) / 0.06) ** 2 - ((v - 0.15) / 0.18) ** 2)  # nose sides
    f *= 1.0 - 0.15 * np.exp(-(u / 0.3) ** 2 - ((v - 0.36) / 0.05) ** 2)  # under the nose
    arr = np.asarray(img, dtype=np.float32).copy()
    if x1 > x0 and y1 > y0:
        arr[y0:y1, x0:x1] *= f[..., None]
    arr = arr * gain + np.asarray(tint, np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def draw_photo(p: Person, mask: int, rng: np.random.Generator, mask_color: tuple | None = None) -> Image.Image:
    """One photo of person `p` with mask state 0 wear / 1 incorrect / 2 none."""
    return draw_photo_and_face(p, mask, rng, mask_color)[0]


def draw_photo_and_face(p: Person, mask: int, rng: np.random.Generator, mask_color: tuple | None = None
                        ) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """The photo and where its face is drawn: (centre x, centre y, width, height) in photo pixels."""
    k = RENDER
    img = _background(p, k)
    s = k * p.scale * rng.uniform(0.96, 1.04)
    cx, cy = k * (p.cx + rng.normal(0, 6)), k * (p.cy + rng.normal(0, 6))
    fw, fh = 150 * s * p.jaw, 200 * s
    face = (cx, cy, fw, fh)  # centre x, centre y, width, height
    _draw_head(ImageDraw.Draw(img), p, face, s)
    if mask != 2:
        color = np.array(mask_color or MASK_COLORS[rng.integers(len(MASK_COLORS))], float)
        _draw_mask(img, mask, color, rng, face)
    # camera: small rotation and lighting change; the upscale from RENDER softens the drawing like a lens
    img = img.rotate(rng.normal(0, 4), resample=Image.BILINEAR, center=(cx, cy), fillcolor=_rgb(p.bg_top))
    img = _shade(img, face, rng.uniform(0.82, 1.15), rng.normal(0, 3.0, 3))
    img = img.filter(ImageFilter.GaussianBlur(BLUR)).resize((W, H), Image.BICUBIC)
    return img, (cx / k, cy / k, fw / k, fh / k)


def _draw_head(d: ImageDraw.ImageDraw, p: Person, face: tuple, s: float) -> None:
    """Shoulders, hair, face, ears, the age and gender cues, eyes, nose and mouth; `face` = (cx, cy, fw, fh)."""
    cx, cy, fw, fh = face
    skin, hair = _rgb(p.skin), _rgb(p.hair)
    # shoulders; long hair falls behind the neck and down to the shoulders
    d.ellipse([cx - 1.25 * fw, cy + 0.75 * fh, cx + 1.25 * fw, cy + 2.2 * fh], fill=p.shirt)
    if p.hair_len > 0.4:
        bottom = cy + fh * (0.1 + 0.8 * p.hair_len)
        d.rounded_rectangle([cx - 0.62 * fw, cy - 0.55 * fh, cx + 0.62 * fw, bottom], radius=int(0.3 * fw), fill=hair)
    d.rectangle([cx - 0.2 * fw, cy + 0.3 * fh, cx + 0.2 * fw, cy + 0.85 * fh], fill=_rgb(p.skin * 0.92))
    d.ellipse([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], fill=skin)
    # hair cap: thicker for long hair, never so thin that its colour (grey with age) is lost at low resolution
    cap = 0.24 + 0.08 * p.hair_len
    d.chord([cx - 0.56 * fw, cy - 0.62 * fh, cx + 0.56 * fw, cy + (cap * 2 - 0.4) * fh], 180, 360, fill=hair)
    for side in (-1, 1):  # ears
        ex = cx + side * 0.5 * fw
        d.ellipse([ex - 0.08 * fw, cy - 0.08 * fh, ex + 0.08 * fw, cy + 0.1 * fh], fill=_rgb(p.skin * 0.95))
    line_col = _rgb(p.skin * 0.62)
    for k in range(_forehead_lines(p.apparent_age)):  # age
        y = cy - 0.3 * fh + k * 0.055 * fh
        d.arc([cx - 0.3 * fw, y, cx + 0.3 * fw, y + 0.12 * fh], 200, 340, fill=line_col, width=max(2, int(4 * s)))
    brow = max(1, int((10 if p.gender == 0 else 3) * s))  # heavy brows read as male even above a mask
    brow_col = _rgb(p.hair * 0.5)  # darker than the hair, so grey-haired men keep visible brows
    for side in (-1, 1):  # eyes: a small white, a dark iris, the upper lid's line; brows
        ex, ey = cx + side * 0.2 * fw, cy - 0.08 * fh
        d.ellipse([ex - 0.075 * fw, ey - 0.025 * fh, ex + 0.075 * fw, ey + 0.025 * fh], fill=(225, 222, 215))
        d.ellipse([ex - 0.035 * fw, ey - 0.027 * fh, ex + 0.035 * fw, ey + 0.027 * fh], fill=(30, 22, 20))
        d.arc([ex - 0.08 * fw, ey - 0.03 * fh, ex + 0.08 * fw, ey + 0.04 * fh], 190, 350, fill=(35, 25, 22),
              width=max(1, int(3 * s)))
        d.line([ex - 0.1 * fw, ey - 0.08 * fh, ex + 0.1 * fw, ey - 0.085 * fh], fill=brow_col, width=brow)
        if p.apparent_age >= 45:  # bags under the eyes
            d.arc([ex - 0.09 * fw, ey, ex + 0.09 * fw, ey + 0.08 * fh], 20, 160, fill=line_col, width=1)
    # nose: shaded sides, a lit bridge, nostrils; mouth
    d.polygon([(cx, cy - 0.02 * fh), (cx - 0.06 * fw, cy + 0.14 * fh), (cx + 0.06 * fw, cy + 0.14 * fh)],
              fill=_rgb(p.skin * 0.9))
    d.line([cx, cy - 0.06 * fh, cx, cy + 0.1 * fh], fill=_rgb(p.skin * 1.12), width=max(1, int(5 * s)))
    for side in (-1, 1):
        nx = cx + side * 0.045 * fw
        d.ellipse([nx - 0.025 * fw, cy + 0.125 * fh, nx + 0.025 * fw, cy + 0.145 * fh], fill=_rgb(p.skin * 0.5))
    lips = (185, 70, 80) if p.gender == 1 else _rgb(p.skin * 0.7)
    d.ellipse([cx - 0.15 * fw, cy + 0.24 * fh, cx + 0.15 * fw, cy + 0.31 * fh], fill=lips)


def _draw_mask(img: Image.Image, mask: int, color: np.ndarray, rng: np.random.Generator, face: tuple) -> None:
    """A mask that follows the lower face (the cheeks' outline stays visible), with pleats and ear straps:
    over the nose (worn), under the nose or on the chin (incorrect)."""
    cx, cy, fw, fh = face
    if mask == 0:
        top, bot = cy + rng.uniform(-0.01, 0.04) * fh, cy + 0.56 * fh
    elif rng.random() < 0.6:  # under the nose: nose visible
        top, bot = cy + rng.uniform(0.16, 0.2) * fh, cy + 0.58 * fh
    else:  # on the chin: nose and mouth visible
        top, bot = cy + rng.uniform(0.33, 0.36) * fh, cy + 0.64 * fh
    shape = Image.new("L", img.size, 0)
    md = ImageDraw.Draw(shape)
    mw = 0.47 * fw
    md.ellipse([cx - mw, cy - 0.5 * fh, cx + mw, bot], fill=255)
    md.rectangle([0, 0, img.width, top], fill=0)
    md.polygon([(cx - mw, top), (cx, top - 0.04 * fh), (cx + mw, top)], fill=255)  # raised over the nose
    img.paste(Image.new("RGB", img.size, _rgb(color)), (0, 0), shape)
    d = ImageDraw.Draw(img)
    for f in (0.24, 0.44, 0.64):  # pleats
        y = top + f * (bot - top)
        d.line([cx - 0.4 * fw, y, cx + 0.4 * fw, y + 0.01 * fh], fill=_rgb(color * 0.72), width=1)
    for side in (-1, 1):  # straps to the ears
        d.line([cx + side * 0.44 * fw, top + 0.03 * fh, cx + side * 0.52 * fw, cy - 0.02 * fh],
               fill=_rgb(color * 0.8), width=2)
