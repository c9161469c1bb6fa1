"""Face boxes for the face crop: MTCNN (facenet-pytorch) once per image, cached beside the decoded images.

Detection runs once per image on a downscaled copy (faces fill much of these photos), batched, on the GPU when
there is one, and is stored per path in <cache_dir>/faces.npz (keyed by path, size and mtime, so a changed
file is detected again). The crop a run uses is derived from the stored detections:
- detected: MTCNN found a face in this photo;
- borrowed: it did not, but found one in the same person's other photos (the seven photos share a framing),
  whose median box is used;
- fallback: neither: a centre box.
The box grows by `margin` of its size on every side and is clamped to the image.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np

from maskcls.common.fileio import atomic_path
from maskcls.data.imageio import image_size

FACES_FILE = "faces.npz"
DETECT_LONG_SIDE = 256  # detection size: MTCNN's cost grows with pixels, these faces stay large
PERSON_DIR = re.compile(r"^\d+_(male|female)_")
SOURCES = ("detected", "borrowed", "fallback")


def _stamp(path: str) -> str:
    try:
        st = os.stat(path)
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return "missing"


def load_detections(cache_dir) -> dict[str, tuple[np.ndarray, str]]:
    """path -> (raw box x0, y0, x1, y1 in source pixels, NaN when no face; stamp)."""
    f = Path(cache_dir) / FACES_FILE
    if not f.is_file():
        return {}
    with np.load(f, allow_pickle=False) as z:
        return {p: (b, s) for p, b, s in zip(z["paths"].tolist(), z["boxes"], z["stamps"].tolist())}


def _save_detections(cache_dir, found: dict) -> None:
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    paths = sorted(found)
    with atomic_path(Path(cache_dir) / FACES_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, paths=np.array(paths, dtype=str), boxes=np.array([found[p][0] for p in paths], np.float32),
                 stamps=np.array([found[p][1] for p in paths], dtype=str))


def detector(device="cpu"):
    """MTCNN with the weights its wheel carries (it works offline)."""
    from facenet_pytorch import MTCNN
    return MTCNN(keep_all=False, select_largest=True, device=str(device))


def detect_boxes(paths: list[str], device="cpu", batch: int = 32, progress=None) -> np.ndarray:
    """(N, 4) boxes in source pixels, NaN rows where no face was found; one MTCNN pass per batch of same-sized
    downscaled images."""
    from PIL import Image
    mtcnn = detector(device)
    out = np.full((len(paths), 4), np.nan, np.float32)
    for start in range(0, len(paths), batch):
        groups: dict[tuple, list] = {}
        for i in range(start, min(start + batch, len(paths))):
            try:
                with Image.open(paths[i]) as im:
                    im.draft("RGB", (DETECT_LONG_SIDE, DETECT_LONG_SIDE))
                    rgb = im.convert("RGB")
                    scale = DETECT_LONG_SIDE / max(im.size)
                    small = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))))
                    src_w, src_h = image_size(paths[i])
                    groups.setdefault(small.size, []).append((i, small, src_w / small.width, src_h / small.height))
            except (OSError, ValueError):
                continue  # an unreadable image: no box (the index reports it)
        for items in groups.values():
            boxes, _ = mtcnn.detect([it[1] for it in items])
            for (i, _, fx, fy), b in zip(items, boxes):
                if b is not None and len(b):
                    out[i] = np.asarray(b[0], np.float32) * np.array([fx, fy, fx, fy], np.float32)
        if progress:
            progress(min(start + batch, len(paths)), len(paths))
    return out


def ensure_detections(paths: list[str], cache_dir, device="cpu", progress=None) -> dict:
    """The stored detections of `paths`, detecting (and storing) the ones missing or changed."""
    found = load_detections(cache_dir)
    todo = [p for p in paths if p not in found or found[p][1] != _stamp(p)]
    if todo:
        boxes = detect_boxes(todo, device, progress=progress)
        for p, b in zip(todo, boxes):
            found[p] = (b, _stamp(p))
        _save_detections(cache_dir, found)
    elif progress:
        progress(len(paths), len(paths))
    return found


def person_key(path: str) -> str:
    """A person's photos share a folder in the competition layout; any other image stands alone."""
    parent = Path(path).parent
    return str(parent) if PERSON_DIR.match(parent.name) else path


def face_crops(paths: list[str], cache_dir, margin: float = 0.2, device="cpu", progress=None
               ) -> tuple[np.ndarray, list[str]]:
    """Crop boxes (N, 4) int (x0, y0, x1, y1, source pixels) and each box's source (detected/borrowed/fallback)."""
    paths = [str(p) for p in paths]
    found = ensure_detections(paths, cache_dir, device, progress)
    by_person: dict[str, list[np.ndarray]] = {}
    for p, (b, _) in found.items():
        if not np.isnan(b).any():
            by_person.setdefault(person_key(p), []).append(b)
    boxes, sources = np.zeros((len(paths), 4), np.int32), []
    for i, p in enumerate(paths):
        w, h = image_size(p)
        raw = found[p][0]
        if not np.isnan(raw).any():
            box, source = raw, "detected"
        elif person_key(p) in by_person:
            box, source = np.median(np.stack(by_person[person_key(p)]), 0), "borrowed"
        else:  # the middle of the frame, where these photos put the face
            box, source = np.array([0.2 * w, 0.15 * h, 0.8 * w, 0.75 * h]), "fallback"
        boxes[i] = grow(box, margin, w, h)
        sources.append(source)
    return boxes, sources


def grow(box, margin: float, w: int, h: int) -> np.ndarray:
    """The box grown by `margin` of its width/height on each side, clamped to the image, at least 2x2 pixels."""
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    x0, y0 = max(0, int(round(x0 - dx))), max(0, int(round(y0 - dy)))
    x1, y1 = min(w, int(round(x1 + dx))), min(h, int(round(y1 + dy)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.array([0, 0, w, h], np.int32)
    return np.array([x0, y0, x1, y1], np.int32)


def coverage(sources: list[str]) -> dict[str, int]:
    return {s: sources.count(s) for s in SOURCES}


def faces_report(paths: list[str], cache_dir, margin: float = 0.2, device="cpu", progress=None,
                 csv_path=None) -> dict:
    """What `maskcls faces` prints: images, detected, borrowed, fallback, seconds, and a CSV of every box."""
    import pandas as pd
    t0 = time.perf_counter()
    boxes, sources = face_crops(paths, cache_dir, margin, device, progress)
    seconds = time.perf_counter() - t0
    csv_path = Path(csv_path or Path(cache_dir) / "faces.csv")
    frame = pd.DataFrame(boxes, columns=["x0", "y0", "x1", "y1"])
    frame.insert(0, "path", paths)
    frame["source"] = sources
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    return {"images": len(paths), **coverage(sources), "seconds": round(seconds, 2), "csv": str(csv_path)}


SOURCE_COLOURS = {"detected": (40, 200, 80), "borrowed": (240, 170, 30), "fallback": (220, 50, 50)}


def boxed_thumbnail(path: str, box, source: str, height: int = 160) -> np.ndarray:
    """The photo with its crop box drawn in the colour of its source (green detected, amber borrowed, red
    fallback), scaled to `height` pixels."""
    from PIL import Image, ImageDraw
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    scale = height / rgb.height
    rgb = rgb.resize((max(1, round(rgb.width * scale)), height))
    draw = ImageDraw.Draw(rgb)
    draw.rectangle([round(v * scale) for v in box], outline=SOURCE_COLOURS.get(source, (255, 255, 255)), width=3)
    return np.asarray(rgb)
