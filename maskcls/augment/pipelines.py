"""Pipelines built from an AugmentSpec: preprocessing (crop + resize), a per-image torchvision-v2 pipeline,
and a batched pipeline that draws its randomness per image (torchvision v2 on a batch draws once per batch).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as v2

from maskcls.augment.spec import AugmentSpec, TransformSpec

GRAY = torch.tensor([0.299, 0.587, 0.114])


def normalize(x: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    """uint8 or [0, 1] float (.., 3, H, W) -> float, normalised as the spec says."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    if not spec.normalize:
        return x
    mean = torch.tensor(spec.mean, device=x.device, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(spec.std, device=x.device, dtype=x.dtype).view(3, 1, 1)
    return (x - mean) / std


def denormalize(x: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    """Back to [0, 1] for display."""
    if spec.normalize:
        mean = torch.tensor(spec.mean, device=x.device).view(3, 1, 1)
        std = torch.tensor(spec.std, device=x.device).view(3, 1, 1)
        x = x * std + mean
    return x.clamp(0, 1)


# -- per-image pipeline (torchvision v2): what the baseline-style DataLoader runs in its workers -------------
def _v2_op(spec: AugmentSpec, t: TransformSpec):
    prm = spec.params(t)
    deterministic = spec.mode == "preprocess"
    if t.name == "grayscale":
        return v2.Grayscale(num_output_channels=3)
    if t.name == "color_jitter":
        return v2.ColorJitter(prm["brightness"], prm["contrast"], prm["saturation"], prm["hue"])
    if t.name == "gaussian_blur":
        k = int(prm["kernel"])
        mid = (prm["sigma_min"] + prm["sigma_max"]) / 2
        return v2.GaussianBlur(k, sigma=(mid, mid) if deterministic else (prm["sigma_min"], prm["sigma_max"]))
    if t.name == "hflip":
        return v2.RandomHorizontalFlip(p=1.0)
    if t.name == "vflip":
        return v2.RandomVerticalFlip(p=1.0)
    if t.name == "rotation":
        return v2.RandomRotation(prm["degrees"])
    if t.name == "random_erasing":
        return v2.RandomErasing(p=1.0, scale=(prm["scale_min"], prm["scale_max"]), value=0)
    raise ValueError(f"unknown transform {t.name!r}")


class PerImageAugment:
    """Callable on one (3, H, W) uint8 tensor -> (augmented uint8 tensor, {name: fired})."""

    def __init__(self, spec: AugmentSpec, train: bool = True):
        self.spec = spec
        self.train = train
        self.ops = [(t, _v2_op(spec, t)) for t in spec.ordered()]

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, bool]]:
        spec = self.spec
        fired = {t.name: False for t, _ in self.ops}
        if spec.mode == "preprocess":
            active = {t.name for t, _ in self.ops}
        elif not self.train:
            active = set()
        elif spec.mode == "all":
            active = {t.name for t, _ in self.ops} if torch.rand(()) < spec.p else set()
        else:
            active = {t.name for t, _ in self.ops if torch.rand(()) < t.p}
        for t, op in self.ops:
            if t.name in active:
                x = op(x)
                fired[t.name] = True
        return x, fired


# -- batched pipeline: per-image randomness on a (B, 3, H, W) tensor, any device ----------------------------
def _gray(x: torch.Tensor) -> torch.Tensor:
    return (x * GRAY.to(x.device, x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    """Per-image parameters drawn where the batch lives (the generator is on that device)."""
    return torch.rand(n, generator=g, device=g.device) * (hi - lo) + lo


def _bcast(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def _color_jitter(x, prm, g):
    b = x.shape[0]
    for key in ("brightness", "contrast", "saturation"):
        amt = prm[key]
        if amt <= 0:
            continue
        f = _bcast(_uniform(b, max(0.0, 1 - amt), 1 + amt, g))
        if key == "brightness":
            x = x * f
        elif key == "contrast":
            mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * f + mean
        else:
            gray = _gray(x)
            x = (x - gray) * f + gray
        x = x.clamp(0, 1)
    if prm["hue"] > 0:  # rotate chroma in YIQ space: a per-image hue shift without an HSV round trip
        ang = _uniform(b, -prm["hue"], prm["hue"], g) * 2 * math.pi
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                              device=x.device, dtype=x.dtype)
        yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
        c, s = torch.cos(ang).view(-1, 1, 1), torch.sin(ang).view(-1, 1, 1)
        i, q = yiq[:, 1], yiq[:, 2]
        yiq = torch.stack([yiq[:, 0], i * c - q * s, i * s + q * c], 1)
        x = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq).clamp(0, 1)
    return x


def _blur(x, prm, g, deterministic):
    b, c, h, w = x.shape
    k = int(prm["kernel"])
    if deterministic:
        sigma = torch.full((b,), (prm["sigma_min"] + prm["sigma_max"]) / 2, device=x.device)
    else:
        sigma = _uniform(b, prm["sigma_min"], prm["sigma_max"], g)
    r = torch.arange(k, device=x.device, dtype=x.dtype) - (k - 1) / 2
    ker = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    ker = (ker / ker.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, k)
    y = x.reshape(1, b * c, h, w)
    pad = k // 2
    y = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode="reflect"), ker.view(b * c, 1, 1, k), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, pad, pad), mode="reflect"), ker.view(b * c, 1, k, 1), groups=b * c)
    return y.view(b, c, h, w)


def _rotate(x, prm, g):
    b, _, h, w = x.shape
    ang = _uniform(b, -prm["degrees"], prm["degrees"], g) * math.pi / 180
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _erase(x, prm, g):
    b, _, h, w = x.shape
    area = _uniform(b, prm["scale_min"], prm["scale_max"], g) * h * w
    ratio = torch.exp(_uniform(b, math.log(0.3), math.log(3.3), g))
    eh = torch.sqrt(area * ratio).clamp(1, h)
    ew = torch.sqrt(area / ratio).clamp(1, w)
    top = _uniform(b, 0, 1, g) * (h - eh)
    left = _uniform(b, 0, 1, g) * (w - ew)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys >= top.view(-1, 1, 1)) & (ys < (top + eh).view(-1, 1, 1)) &
              (xs >= left.view(-1, 1, 1)) & (xs < (left + ew).view(-1, 1, 1)))
    return x.masked_fill(inside[:, None], 0.0)


def same_device_key(device) -> torch.device:
    """'cuda' and 'cuda:0' name one GPU but compare unequal: give CUDA devices their index, so the parameter
    generator made for 'cuda' is used for batches on 'cuda:0' (a mismatch put the draws on the CPU and failed)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    return device


class BatchAugment:
    """Callable on (B, 3, H, W) uint8/float -> (normalised float batch, {name: bool tensor (B,)})."""

    def __init__(self, spec: AugmentSpec, train: bool = True, seed: int | None = None, device="cpu"):
        self.spec = spec
        self.train = train
        seed = seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        self.g = torch.Generator(device="cpu").manual_seed(seed)  # which transforms fire: decided on the host
        self.device = same_device_key(device)
        self.gd = torch.Generator(device=self.device).manual_seed(seed + 1)  # parameters: drawn on the device

    def fire_masks(self, b: int) -> dict[str, torch.Tensor]:
        spec = self.spec
        out = {}
        if spec.mode == "all" and self.train:
            coin = torch.rand(b, generator=self.g) < spec.p
        for t in spec.ordered():
            if spec.mode == "preprocess":
                out[t.name] = torch.ones(b, dtype=torch.bool)
            elif not self.train:
                out[t.name] = torch.zeros(b, dtype=torch.bool)
            elif spec.mode == "all":
                out[t.name] = coin.clone()
            else:
                out[t.name] = torch.rand(b, generator=self.g) < t.p
        return out

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        b = x.shape[0]
        fired = self.fire_masks(b)
        det = self.spec.mode == "preprocess"
        for t in self.spec.ordered():
            if not bool(fired[t.name].any()):  # decided on the host: no device sync
                continue
            m = fired[t.name]
            m = m.pin_memory().to(x.device, non_blocking=True) if x.is_cuda else m
            g = self.gd if same_device_key(self.gd.device) == same_device_key(x.device) else self.g
            prm = self.spec.params(t)
            if t.name == "grayscale":
                y = _gray(x).expand_as(x)
            elif t.name == "color_jitter":
                y = _color_jitter(x, prm, g)
            elif t.name == "gaussian_blur":
                y = _blur(x, prm, g, det)
            elif t.name == "hflip":
                y = x.flip(-1)
            elif t.name == "vflip":
                y = x.flip(-2)
            elif t.name == "rotation":
                y = _rotate(x, prm, g)
            else:
                y = _erase(x, prm, g)
            x = torch.where(_bcast(m), y, x)
        return normalize(x, self.spec), fired


def mix_partners(y: torch.Tensor, same_class: bool, g: torch.Generator) -> torch.Tensor:
    """Each image's partner: any image of the batch, or one of its own class (itself when it is alone in it)."""
    if not same_class:
        return torch.randperm(len(y), generator=g).to(y.device)
    labels = y.cpu()
    perm = torch.arange(len(labels))
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).flatten()
        perm[idx] = idx[torch.randperm(len(idx), generator=g)]
    return perm.to(y.device)


def _cut_box(h: int, w: int, m, g: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the region taken from the partner."""
    if m.vertical:  # one vertical line at cut_min..cut_max of the width: right of it from the partner
        line = int(round(w * float(m.cut_min + (m.cut_max - m.cut_min) * torch.rand((), generator=g))))
        return 0, line, h, w - line
    lam = float(np.random.default_rng(int(torch.randint(0, 2**31, (), generator=g))).beta(m.cutmix_alpha, m.cutmix_alpha))
    cw, ch = int(round(w * math.sqrt(1 - lam))), int(round(h * math.sqrt(1 - lam)))
    cx = int(torch.randint(0, max(1, w - cw + 1), (), generator=g))
    cy = int(torch.randint(0, max(1, h - ch + 1), (), generator=g))
    return cy, cx, ch, cw


def mix_batch(x: torch.Tensor, y: torch.Tensor, spec: AugmentSpec, g: torch.Generator,
              num_classes: int = 18) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (a box, or the vertical cut) or MixUp on a batch: images and soft targets (B, C), mixed by area."""
    target = F.one_hot(y, num_classes).float()
    m = spec.mix
    u = float(torch.rand((), generator=g))
    if u >= m.cutmix_p + m.mixup_p or x.shape[0] < 2:
        return x, target
    perm = mix_partners(y, m.partner == "same_class", g)
    if u < m.cutmix_p:
        h, w = x.shape[-2:]
        top, left, ch, cw = _cut_box(h, w, m, g)
        x = x.clone()
        x[..., top:top + ch, left:left + cw] = x[perm][..., top:top + ch, left:left + cw]
        lam = 1 - (cw * ch) / (w * h)
    else:
        lam = float(np.random.default_rng(int(torch.randint(0, 2**31, (), generator=g))).beta(m.mixup_alpha, m.mixup_alpha))
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * target + (1 - lam) * target[perm]
