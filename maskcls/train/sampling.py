"""Class-balancing: inverse-frequency weights over the 18 classes or one attribute, for a sampler or a loss."""
from __future__ import annotations

import numpy as np
import torch

from maskcls.data.labels import decode


def group_of(labels: np.ndarray, by: str) -> tuple[np.ndarray, int]:
    """The group each label falls in when balancing `by` class / mask / gender / age."""
    labels = np.asarray(labels)
    if by == "class":
        return labels, 18
    m, g, a = decode(labels)
    return {"mask": (m, 3), "gender": (g, 2), "age": (a, 3)}[by]


def sample_weights(labels: np.ndarray, by: str) -> np.ndarray:
    """Per-sample weights 1 / count(group): every present group is drawn equally often."""
    groups, n = group_of(labels, by)
    counts = np.bincount(groups, minlength=n).astype(float)
    return 1.0 / counts[groups]


def class_weights(labels: np.ndarray, num_classes: int = 18) -> torch.Tensor:
    """Loss weights proportional to 1 / class count, mean 1 over present classes (absent classes get 0)."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(float)
    w = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    w = w / w[counts > 0].mean()
    return torch.tensor(w, dtype=torch.float32)


def epoch_indices(n: int, weights: np.ndarray | None, generator: torch.Generator) -> torch.Tensor:
    """One epoch's order: a shuffle, or `n` weighted draws with replacement (WeightedRandomSampler's rule)."""
    if weights is None:
        return torch.randperm(n, generator=generator)
    return torch.multinomial(torch.as_tensor(weights, dtype=torch.double), n, replacement=True, generator=generator)
