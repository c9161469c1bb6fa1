"""From a photo file to the pixels a model sees, before augmentation: one recipe for training, validation,
eval-set prediction, Grad-CAM and the Augment preview, so they can never drift apart.

The recipe: decode, optionally grey out the background, cut to the face box (or the centre crop), resize. Face
boxes follow one of two rules: `train` images may borrow a box from their person's other photos; `held_out`
images (validation, out-of-fold, eval set) follow the rule the eval set can follow, so a validation score
estimates the eval score.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskcls.data.faces import BoxRule, coverage, face_crops

ROLES = ("train", "held_out")


@dataclass(frozen=True)
class Preprocess:
    """Everything that turns a photo into a model's input pixels (RunConfig.preprocess() builds it)."""

    size: tuple[int, int]  # (height, width)
    crop: list | None = None  # centre crop [h, w] in source pixels (when there is no face crop)
    face_crop: bool = False
    face_margin: float = 0.2
    train_rule: BoxRule = BoxRule(borrow=True)
    held_out_rule: BoxRule = BoxRule()
    background: bool = False  # GrabCut background removal
    cache_dir: str = ""  # decoded images and face boxes

    def rule(self, role: str) -> BoxRule:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        return self.train_rule if role == "train" else self.held_out_rule

    def boxes(self, paths: list[str], role: str, device="cpu", progress=None) -> tuple[np.ndarray | None, dict]:
        """The face crop's boxes for `paths` under `role`'s rule (None without the face crop), and their coverage
        (detected / borrowed / fallback)."""
        if not self.face_crop:
            return None, {}
        boxes, sources = face_crops(paths, self.cache_dir, self.face_margin, device, progress, rule=self.rule(role))
        return boxes, coverage(sources)

    def cache(self, parts: list[tuple[list[str], str]], *, device="cpu", workers=None, progress=None,
              box_progress=None, decode_device=None):
        """One decoded-image cache over several (paths, role) parts, in order; returns (ImageCache, coverage per
        role)."""
        from maskcls.data.cache import build_cache
        paths, boxes, cover = [], [], {}
        for part, role in parts:
            b, c = self.boxes(list(part), role, device, box_progress)
            paths += list(part)
            boxes.append(b)
            if c:
                cover[role] = c
        all_boxes = np.concatenate(boxes) if self.face_crop and paths else None
        cache = build_cache(paths, self.size, self.cache_dir, self.crop, workers=workers, progress=progress,
                            device=decode_device, boxes=all_boxes, background=self.background)
        return cache, cover

    def pixels(self, path: str, role: str = "held_out") -> np.ndarray:
        """One photo as the model sees it (H, W, 3) uint8: what Grad-CAM explains."""
        from maskcls.data.imageio import load_preprocessed
        boxes, _ = self.boxes([path], role)
        return load_preprocessed(path, self.size, self.crop, None if boxes is None else tuple(boxes[0]),
                                 self.background)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir)

