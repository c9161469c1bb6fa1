"""Background removal (the second-place team's step): OpenCV's GrabCut seeded by where the person is.

The seed rectangle is the person's head and shoulders: the face box widened and run to the bottom of the frame
when there is one, else the middle of the frame. GrabCut runs on a half-size copy (its cost grows with pixels;
about 0.1-0.2 s per 384x512 photo on one core here); pixels it calls background become neutral grey. Off by
default: it is an option to try, not a measured gain.
"""
from __future__ import annotations

import numpy as np

GREY = 128


def person_rect(w: int, h: int, face_box=None) -> tuple[int, int, int, int]:
    """(x, y, width, height) GrabCut may call foreground: around the face down to the bottom, or the centre."""
    if face_box is None:
        x0, y0, x1, y1 = 0.08 * w, 0.04 * h, 0.92 * w, h - 1
    else:
        fx0, fy0, fx1, fy1 = (float(v) for v in face_box)
        fw, fh = fx1 - fx0, fy1 - fy0
        x0, y0, x1, y1 = fx0 - 0.7 * fw, fy0 - 0.5 * fh, fx1 + 0.7 * fw, h - 1
    x0, y0 = int(max(1, x0)), int(max(1, y0))
    x1, y1 = int(min(w - 2, x1)), int(min(h - 2, y1))
    return x0, y0, max(2, x1 - x0), max(2, y1 - y0)


def remove_background(rgb: np.ndarray, face_box=None, iterations: int = 3) -> np.ndarray:
    """(H, W, 3) uint8 with what GrabCut calls background set to grey; `face_box` in this image's pixels."""
    import cv2
    h, w = rgb.shape[:2]
    scale = 0.5 if min(h, w) >= 64 else 1.0
    small = cv2.resize(rgb, (max(2, int(w * scale)), max(2, int(h * scale))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    box = None if face_box is None else [v * scale for v in face_box]
    x, y, rw, rh = person_rect(sw, sh, box)
    mask = np.full((sh, sw), cv2.GC_BGD, np.uint8)
    mask[y:y + rh, x:x + rw] = cv2.GC_PR_FGD
    if box is not None:  # the middle of the face is the person, whatever the colours say
        fx0, fy0, fx1, fy1 = box
        cx, cy, qw, qh = (fx0 + fx1) / 2, (fy0 + fy1) / 2, (fx1 - fx0) / 4, (fy1 - fy0) / 4
        mask[max(0, int(cy - qh)):int(cy + qh) + 1, max(0, int(cx - qw)):int(cx + qw) + 1] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means starts at random: the same photo must give the same pixels everywhere
    try:
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return rgb  # a degenerate image (one colour): nothing to separate
    keep = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    if keep.sum() < 0.03 * rw * rh:  # GrabCut lost the person: better the photo than a grey frame
        return rgb
    keep = cv2.resize(keep.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    out = rgb.copy()
    out[~keep] = GREY
    return out
