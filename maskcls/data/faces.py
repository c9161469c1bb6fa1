"""Face boxes for the face crop: MTCNN (facenet-pytorch) once per image, cached beside the decoded images.

Detection runs once per image on a downscaled copy (faces fill much of these photos), batched, on the GPU when
there is one, and is stored per photo in <cache_dir>/faces.npz (keyed by its path with folder links resolved,
size and mtime: the same data reached through a linked folder keeps its boxes, a changed file is detected
again). A photo the first look misses gets a second look at lower thresholds (masked faces score low in MTCNN's
first stages); both are stored. The crop a run uses is derived from the stored detections
by one rule (`face_crops`):
- detected: MTCNN found a face in this photo (first look, or second when the rule takes it);
- borrowed: it did not, but found one in the same person's other photos (the seven photos share a framing),
  whose median box is used. Only training images may borrow: eval images have no person folder to borrow
  from, so validation (which must estimate the eval score) never borrows either;
- fallback: neither: the whole frame (or, by choice, a centre box).
The box grows by `margin` of its size on every side and is clamped to the image.
"""
from __future__ import annotations

import os
import re
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskcls.common.fileio import atomic_path
from maskcls.data.imageio import WIDE_MODES, image_size, open_image_file, to_8_bit

FACES_FILE = "faces.npz"
DETECT_LONG_SIDE = 256  # detection size: MTCNN's cost grows with pixels, these faces stay large
FIRST_LOOK = (0.6, 0.7, 0.7)  # MTCNN's own stage thresholds
SECOND_LOOK = (0.2, 0.3, 0.3)  # for the photos the first look missed: found 168 of 201 misses on the seed-7 demo's eval set
PERSON_DIR = re.compile(r"^\d+_(male|female)_")
SOURCES = ("detected", "borrowed", "fallback")
FALLBACKS = ("whole", "centre")


@dataclass(frozen=True)
class BoxRule:
    """How a photo's crop box is chosen from the stored detections; one rule per use (training vs held out)."""

    borrow: bool = False  # a photo without a face takes its person's median box (training images only)
    fallback: str = "whole"  # no face anywhere: the whole frame, or a centre box
    second_look: bool = True  # take the second look's box when the first found none

    def __post_init__(self):
        if self.fallback not in FALLBACKS:
            raise ValueError(f"face fallback must be one of {', '.join(FALLBACKS)}, got {self.fallback!r}")


def _stamp(path: str) -> str:
    try:
        st = os.stat(path)
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return "missing"


@dataclass
class Detection:
    """One photo's looks: `first` and `second` boxes (x0, y0, x1, y1, source pixels; NaN = no face or not looked),
    whether the second look was taken, and the file's stamp when it was looked at."""

    first: np.ndarray
    second: np.ndarray
    looked_twice: bool
    stamp: str

    def box(self, second_look: bool = True) -> np.ndarray:
        if not np.isnan(self.first).any() or not second_look:
            return self.first
        return self.second


NO_BOX = np.full(4, np.nan, np.float32)


def stored_keys(paths) -> list[str]:
    """The key each photo's detection is stored under: its path with the folder's links resolved, so a data root
    reached through a symlink reuses the boxes (MTCNN takes minutes per thousand photos on a CPU). One realpath per
    folder, not per photo: a page draw checks every photo."""
    folders: dict[str, str] = {}
    keys = []
    for p in paths:
        folder, name = os.path.split(str(p))
        if folder not in folders:
            folders[folder] = os.path.realpath(folder)
        keys.append(os.path.join(folders[folder], name))
    return keys


def unsearched(paths, cache_dir) -> int:
    """How many of `paths` have no stored detection yet (the Data page offers to find them)."""
    found = load_detections(cache_dir)
    return sum(k not in found for k in stored_keys(paths))


def load_detections(cache_dir) -> dict[str, Detection]:
    """stored key (`stored_keys`) -> its Detection, as stored in <cache_dir>/faces.npz ({} when there is none; a
    damaged file is named in a warning and detected again)."""
    f = Path(cache_dir) / FACES_FILE
    if not f.is_file():
        return {}
    try:
        with np.load(f, allow_pickle=False) as z:
            paths, boxes, stamps = z["paths"].tolist(), np.asarray(z["boxes"], np.float32), z["stamps"].tolist()
            second = np.asarray(z["second"], np.float32) if "second" in z.files else np.full_like(boxes, np.nan)
            twice = np.asarray(z["looked_twice"], bool) if "looked_twice" in z.files else np.zeros(len(paths), bool)
        if boxes.shape != (len(paths), 4) or second.shape != boxes.shape or len(stamps) != len(paths) or \
                len(twice) != len(paths):
            raise ValueError(f"{len(paths)} paths, boxes of shape {boxes.shape}, {len(stamps)} stamps")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        warnings.warn(f"the face-box cache {f} is damaged ({type(e).__name__}: {e}); its boxes are found again")
        return {}
    bad = np.isinf(boxes).any(1) | np.isinf(second).any(1)  # a box is 4 finite numbers, or NaN for "no face"
    if bad.any():
        warnings.warn(f"the face-box cache {f} holds {int(bad.sum())} box(es) that are not numbers (e.g. for "
                      f"{paths[int(np.flatnonzero(bad)[0])]}); those images are searched again")
    return {p: Detection(b, b2, bool(t), s) for p, b, b2, t, s, x in zip(paths, boxes, second, twice, stamps, bad)
            if not x}


def _save_detections(cache_dir, found: dict[str, Detection]) -> None:
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    paths = sorted(found)
    with atomic_path(Path(cache_dir) / FACES_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, paths=np.array(paths, dtype=str), boxes=np.array([found[p].first for p in paths], np.float32),
                 second=np.array([found[p].second for p in paths], np.float32).reshape(-1, 4),
                 looked_twice=np.array([found[p].looked_twice for p in paths], bool),
                 stamps=np.array([found[p].stamp for p in paths], dtype=str))


def detector(device="cpu", thresholds=FIRST_LOOK):
    """MTCNN with the weights its wheel carries (it works offline)."""
    from facenet_pytorch import MTCNN
    return MTCNN(keep_all=False, select_largest=True, device=str(device), thresholds=list(thresholds))


def _small_rgb(path: str):
    """The photo as RGB at DETECT_LONG_SIDE, and the factors back to source pixels; None if it cannot be read."""
    from PIL import Image
    try:
        with open_image_file(path) as f, Image.open(f) as im:
            im.draft("RGB", (DETECT_LONG_SIDE, DETECT_LONG_SIDE))
            rgb = (to_8_bit(im) if im.mode in WIDE_MODES else im).convert("RGB")
            scale = DETECT_LONG_SIDE / max(im.size)
            small = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))))
        src_w, src_h = image_size(path)
    except (OSError, ValueError):
        return None  # an unreadable image: no box (the index reports it)
    return small, src_w / small.width, src_h / small.height


def detect_boxes(paths: list[str], device="cpu", batch: int = 32, progress=None,
                 thresholds=FIRST_LOOK) -> np.ndarray:
    """(N, 4) boxes in source pixels, NaN rows where no face was found; one MTCNN pass per batch of same-sized
    downscaled images."""
    mtcnn = detector(device, thresholds)
    out = np.full((len(paths), 4), np.nan, np.float32)
    for start in range(0, len(paths), batch):
        groups: dict[tuple, list] = {}
        for i in range(start, min(start + batch, len(paths))):
            small = _small_rgb(paths[i])
            if small is not None:
                groups.setdefault(small[0].size, []).append((i, *small))
        for items in groups.values():
            boxes, _ = mtcnn.detect([it[1] for it in items])
            for (i, _, fx, fy), b in zip(items, boxes):
                if b is not None and len(b):
                    out[i] = np.asarray(b[0], np.float32) * np.array([fx, fy, fx, fy], np.float32)
        if progress:
            progress(min(start + batch, len(paths)), len(paths))
    return out


def ensure_detections(paths: list[str], cache_dir, device="cpu", progress=None) -> dict[str, Detection]:
    """The stored detections (by `stored_keys`) with those of `paths` looked for (and stored) where missing or
    changed, taking the second look for each photo the first look missed."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)  # a cache path that cannot hold the boxes fails before MTCNN
    found = load_detections(cache_dir)
    paths = stored_keys(paths)
    todo = [p for p in paths if p not in found or found[p].stamp != _stamp(p)]
    if todo:
        for p, b in zip(todo, detect_boxes(todo, device, progress=progress)):
            found[p] = Detection(b, NO_BOX, False, _stamp(p))
    elif progress:
        progress(len(paths), len(paths))
    again = [p for p in paths if not found[p].looked_twice and np.isnan(found[p].first).any()]
    if again:
        for p, b in zip(again, detect_boxes(again, device, thresholds=SECOND_LOOK)):
            found[p] = Detection(found[p].first, b, True, found[p].stamp)
    if todo or again:
        _save_detections(cache_dir, found)
    return found


def person_key(path: str) -> str:
    """A person's photos share a folder in the competition layout; any other image stands alone."""
    parent = Path(path).parent
    return str(parent) if PERSON_DIR.match(parent.name) else path


def face_crops(paths: list[str], cache_dir, margin: float = 0.2, device="cpu", progress=None, *,
               rule: BoxRule = BoxRule()) -> tuple[np.ndarray, list[str]]:
    """Crop boxes (N, 4) int (x0, y0, x1, y1, source pixels) and each box's source (detected/borrowed/fallback),
    chosen by `rule`: training images may borrow (BoxRule(borrow=True)); validation and eval images use the
    default rule, the one the eval set can follow."""
    paths = [str(p) for p in paths]
    return choose_boxes(ensure_detections(paths, cache_dir, device, progress), paths, margin, rule)


def choose_boxes(found: dict[str, Detection], paths: list[str], margin: float, rule: BoxRule
                 ) -> tuple[np.ndarray, list[str]]:
    """The crop boxes of `paths` from stored detections (every path must be in `found`), by `rule`."""
    keys = stored_keys(paths)
    by_person: dict[str, list[np.ndarray]] = {}
    if rule.borrow:
        for p, d in found.items():
            b = d.box(rule.second_look)
            if not np.isnan(b).any():
                by_person.setdefault(person_key(p), []).append(b)
    boxes, sources = np.zeros((len(paths), 4), np.int32), []
    for i, (p, key) in enumerate(zip(paths, keys)):
        w, h = image_size(p)
        raw = found[key].box(rule.second_look)
        if not np.isnan(raw).any():
            box, source, grow_by = raw, "detected", margin
        elif person_key(key) in by_person:
            box, source, grow_by = np.median(np.stack(by_person[person_key(key)]), 0), "borrowed", margin
        elif rule.fallback == "centre":  # the middle of the frame, where phone photos often put the face
            box, source, grow_by = np.array([0.2 * w, 0.15 * h, 0.8 * w, 0.75 * h]), "fallback", margin
        else:  # the whole frame: what the model sees without the crop
            box, source, grow_by = np.array([0, 0, w, h]), "fallback", 0.0
        boxes[i] = grow(box, grow_by, w, h)
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


def rates(sources: list[str]) -> dict:
    """Counts and shares (%) of each box source."""
    n = max(len(sources), 1)
    counts = coverage(sources)
    return {"images": len(sources), **counts, **{f"{k}_%": round(100 * v / n, 1) for k, v in counts.items()}}


def cached_coverage_warning(train_paths: list[str], eval_paths: list[str], cache_dir, margin: float = 0.2,
                            rule: BoxRule = BoxRule()) -> str | None:
    """coverage_warning from the boxes already cached, detecting nothing (a page draw stays quick); None while
    some photo has not been looked at."""
    if not eval_paths:
        return None
    found = load_detections(cache_dir)
    try:
        _, train_sources = choose_boxes(found, list(train_paths), margin, rule)
        _, eval_sources = choose_boxes(found, list(eval_paths), margin, rule)
    except KeyError:  # a photo not looked at yet
        return None
    return coverage_warning(rates(train_sources), rates(eval_sources))


FALLBACK_GAP = 10.0  # percentage points more eval fallback than validation fallback that earns a warning


def coverage_warning(validation: dict, eval_: dict | None) -> str | None:
    """A warning when the eval set falls back (no face found) much more often than validation does: then the
    validation score over-states what the crop earns on the eval set."""
    if not eval_ or not eval_["images"] or not validation["images"]:
        return None
    gap = eval_["fallback_%"] - validation["fallback_%"]
    if gap < FALLBACK_GAP:
        return None
    return (f"the eval set falls back to no face box for {eval_['fallback_%']:.0f} % of its photos, validation for "
            f"{validation['fallback_%']:.0f} %: a face-crop run's validation score over-states its eval score")


def faces_report(train_paths: list[str], eval_paths: list[str], cache_dir, *, margin: float = 0.2, device="cpu",
                 progress=None, train_rule: BoxRule = BoxRule(borrow=True), held_out_rule: BoxRule = BoxRule(),
                 csv_path=None) -> dict:
    """What `maskcls faces` prints: coverage (detected / borrowed / fallback) of the training photos as training
    cuts them, as validation cuts them, and of the eval photos; a warning when the eval set falls back much more
    often; and a CSV of every box."""
    import pandas as pd
    t0 = time.perf_counter()
    ensure_detections(list(train_paths) + list(eval_paths), cache_dir, device, progress)
    out, frames = {}, []
    for name, paths, rule in (("training", train_paths, train_rule), ("validation", train_paths, held_out_rule),
                              ("eval", eval_paths, held_out_rule)):
        if not paths:
            continue
        boxes, sources = face_crops(paths, cache_dir, margin, device, rule=rule)
        out[name] = rates(sources)
        if name != "validation":
            frame = pd.DataFrame(boxes, columns=["x0", "y0", "x1", "y1"])
            frame.insert(0, "path", list(paths))
            frame.insert(1, "set", name)
            frame["source"] = sources
            frames.append(frame)
    csv_path = Path(csv_path or Path(cache_dir) / "faces.csv")
    with atomic_path(csv_path) as tmp:
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
    return {**out, "warning": coverage_warning(out["validation"], out.get("eval")),
            "seconds": round(time.perf_counter() - t0, 2), "csv": str(csv_path)}


SOURCE_COLOURS = {"detected": (40, 200, 80), "borrowed": (240, 170, 30), "fallback": (220, 50, 50)}


def boxed_thumbnail(path: str, box, source: str, height: int = 160) -> np.ndarray:
    """The photo with its crop box drawn in the colour of its source (green detected, amber borrowed, red
    fallback), scaled to `height` pixels."""
    from PIL import Image, ImageDraw
    with open_image_file(path) as f, Image.open(f) as im:
        rgb = im.convert("RGB")
    scale = height / rgb.height
    rgb = rgb.resize((max(1, round(rgb.width * scale)), height))
    draw = ImageDraw.Draw(rgb)
    draw.rectangle([round(v * scale) for v in box], outline=SOURCE_COLOURS.get(source, (255, 255, 255)), width=3)
    return np.asarray(rgb)
