"""Losses on (B, 18) logits with hard (B,) or soft (B, 18) targets (soft ones come from CutMix / MixUp)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _soft(target: torch.Tensor, n: int) -> torch.Tensor:
    return target.float() if target.dim() == 2 else F.one_hot(target, n).float()


class CrossEntropy(nn.Module):
    """Cross entropy with optional label smoothing and class weights."""

    def __init__(self, weight: torch.Tensor | None = None, smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("weight", weight)
        self.smoothing = smoothing

    def forward(self, logits, target):
        return F.cross_entropy(logits.float(), target if target.dim() == 1 else target.float(), weight=self.weight,
                               label_smoothing=self.smoothing)


class FocalLoss(nn.Module):
    """Focal loss: (1 - p_t)^gamma down-weights easy examples; gamma = 0 is cross entropy. `alpha`: per class."""

    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | None = None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("alpha", alpha)

    def forward(self, logits, target):
        logp = F.log_softmax(logits.float(), 1)  # (B, C)
        t = _soft(target, logits.shape[1])
        loss = -t * (1 - logp.exp()).pow(self.gamma) * logp
        if self.alpha is not None:
            loss = loss * self.alpha.view(1, -1)
        return loss.sum(1).mean()


class F1Loss(nn.Module):
    """1 - soft macro F1: the competition metric made differentiable with probabilities in place of counts."""

    def __init__(self, eps: float = 1e-7):
        super().__init__()
        self.eps = eps

    def forward(self, logits, target):
        p = F.softmax(logits.float(), 1)
        t = _soft(target, logits.shape[1])
        tp = (p * t).sum(0)
        fp = (p * (1 - t)).sum(0)
        fn = ((1 - p) * t).sum(0)
        f1 = 2 * tp / (2 * tp + fp + fn + self.eps)
        return 1 - f1.mean()


class WeightedSum(nn.Module):
    def __init__(self, parts: dict[str, tuple[float, nn.Module]]):
        super().__init__()
        self.weights = {k: w for k, (w, _) in parts.items()}
        self.parts = nn.ModuleDict({k: m for k, (_, m) in parts.items()})

    def forward(self, logits, target):
        return sum(self.weights[k] * m(logits, target) for k, m in self.parts.items())


def create_loss(name: str, class_weight: torch.Tensor | None = None, gamma: float = 2.0, smoothing: float = 0.1,
                combo: dict | None = None) -> nn.Module:
    """ce | focal | smooth | f1 | combo (a weighted sum of the others)."""
    def one(n: str) -> nn.Module:
        if n == "ce":
            return CrossEntropy(class_weight)
        if n == "smooth":
            return CrossEntropy(class_weight, smoothing)
        if n == "focal":
            return FocalLoss(gamma, class_weight)
        if n == "f1":
            return F1Loss()
        raise ValueError(f"unknown loss {n!r}; valid: ce, focal, smooth, f1, combo")
    if name == "combo":
        return WeightedSum({k: (float(w), one(k)) for k, w in (combo or {"ce": 1.0, "f1": 1.0}).items()})
    return one(name)
