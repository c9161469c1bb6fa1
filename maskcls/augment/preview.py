"""Augmentation preview: N random draws of one image under a spec, and how often each transform fired."""
from __future__ import annotations

import time

import numpy as np
import torch

from maskcls.augment.pipelines import BatchAugment, denormalize
from maskcls.augment.spec import AugmentSpec
from maskcls.data.imageio import image_size, load_preprocessed


def load_source(path: str, spec: AugmentSpec, box=None, background: bool = False) -> np.ndarray:
    """The image as the pipeline sees it before random transforms: background greyed out when asked, then
    center-cropped (or cut to the face `box`, the first stage of a face-crop run), full size."""
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        return load_preprocessed(path, (y1 - y0, x1 - x0), None, (x0, y0, x1, y1), background)
    w, h = image_size(path)
    crop = spec.crop
    if crop:
        spec.validate((h, w))
        return load_preprocessed(path, (crop[0], crop[1]), crop, None, background)
    return load_preprocessed(path, (h, w), None, None, background)


MAX_DRAWS = 256  # a grid of more is unreadable, and each draw holds a full-size image in memory at once


def check_draws(n: int) -> int:
    """How many draws a preview makes: 1 to MAX_DRAWS, said before an image is loaded."""
    if not 1 <= n <= MAX_DRAWS:
        raise ValueError(f"a preview makes 1 to {MAX_DRAWS} draws (each a full-size image held at once; the fire "
                         f"rates settle well before), got {n}")
    return n


def preview_draws(image: np.ndarray, spec: AugmentSpec, n: int = 8, seed: int = 0) -> tuple[list[np.ndarray], dict[str, int], float]:
    """`n` augmented copies of `image` (H, W, 3) uint8 as uint8 arrays, fire counts per transform, seconds."""
    check_draws(n)
    t0 = time.perf_counter()
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0).expand(n, -1, -1, -1)
    out, fired = BatchAugment(spec, train=True, seed=seed)(x)
    pixels = (denormalize(out, spec) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    counts = {k: int(v.sum()) for k, v in fired.items()}
    return list(pixels), counts, time.perf_counter() - t0


def contact_sheet(images: list[np.ndarray], columns: int = 3) -> np.ndarray:
    """Tile equally sized (H, W, 3) images into one grid image (for `maskcls augment preview`)."""
    h, w, _ = images[0].shape
    rows = (len(images) + columns - 1) // columns
    sheet = np.full((rows * h, columns * w, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
    return sheet


def mix_preview(images: list[np.ndarray], labels: list[int], spec: AugmentSpec, seed: int = 0,
                ) -> tuple[list[np.ndarray], list[dict[int, float]]]:
    """The spec's batch mixing as it looks when it fires: `images` (equal-sized (H, W, 3) uint8) as one batch,
    CutMix forced on (MixUp when the spec has no CutMix), the mixed images and each one's {class: weight}."""
    import copy

    from maskcls.augment.pipelines import mix_batch
    forced = copy.deepcopy(spec)
    cut = spec.mix.cutmix_p > 0 or spec.mix.mixup_p == 0
    forced.mix.cutmix_p, forced.mix.mixup_p = (1.0, 0.0) if cut else (0.0, 1.0)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    out, target = mix_batch(x, torch.as_tensor(labels), forced, torch.Generator().manual_seed(seed))
    weights = [{int(c): round(float(w), 3) for c, w in enumerate(row) if w > 0} for row in target]
    return list(out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()), weights
