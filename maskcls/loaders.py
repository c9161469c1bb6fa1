"""Batches for training and inference, two ways, same model input:

- `CachedLoader` (fast): pixels come decoded from the uint8 cache, the batch goes to the device, and the
  spec's batched augmentation runs there with per-image randomness.
- `baseline_loader` (the competition baseline's way): a DataLoader whose workers decode every JPEG with
  PIL, resize and augment per image, on every epoch.
"""
from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.v2 as v2
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from .augment import AugmentSpec
from .imageio import load_rgb
from .pipelines import BatchAugment, PerImageAugment, normalize
from .sampling import epoch_indices


class CachedLoader:
    """Iterates (x float (B,3,H,W) on `device`, y (B,), row idx (B,)) over rows of a decoded cache."""

    def __init__(self, array: np.ndarray, rows: np.ndarray, labels: np.ndarray, batch_size: int,
                 spec: AugmentSpec, train: bool, device: torch.device, weights: np.ndarray | None = None,
                 seed: int = 0, rank: int = 0, world: int = 1, channels_last: bool = False,
                 max_gpu_fraction: float = 0.4):
        self.rows = np.asarray(rows)
        self.labels = torch.as_tensor(np.array(labels, dtype=np.int64))
        self.batch_size = batch_size
        self.train = train
        self.device = device
        self.weights = weights
        self.rank, self.world = rank, world
        self.channels_last = channels_last
        self.augment = BatchAugment(spec, train=train, seed=seed + 1000 * rank)
        self.generator = torch.Generator().manual_seed(seed)  # same order on every rank, then sharded
        host = torch.from_numpy(np.ascontiguousarray(array[self.rows]))  # (N, H, W, 3) uint8
        self.data = host
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if host.numel() < max_gpu_fraction * free:  # GPU-resident: no host->device copy per batch
                self.data = host.to(device)
            else:
                self.data = host.pin_memory()
        self.labels_dev = self.labels.to(device)

    def __len__(self) -> int:
        n = len(self.rows) // self.world
        return (n + self.batch_size - 1) // self.batch_size if not self.train else max(1, n // self.batch_size)

    def order(self) -> torch.Tensor:
        if not self.train:
            return torch.arange(len(self.rows))
        return epoch_indices(len(self.rows), self.weights, self.generator)

    def __iter__(self):
        order = self.order()
        if self.world > 1:
            usable = len(order) - len(order) % self.world
            order = order[:usable][self.rank::self.world]
        n = len(order)
        stop = n - n % self.batch_size if (self.train and n >= self.batch_size) else n
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            xb = self.data[idx.to(self.data.device)] if self.data.device.type == "cuda" else self.data[idx]
            xb = xb.to(self.device, non_blocking=True).permute(0, 3, 1, 2)  # (B, 3, H, W) uint8
            x, _ = self.augment(xb)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels_dev[idx.to(self.device)], idx


class ImageFiles(Dataset):
    """Baseline-style dataset: decode + resize + per-image augmentation in the worker, every epoch."""

    def __init__(self, paths, labels, size: tuple[int, int], spec: AugmentSpec, train: bool):
        self.paths = list(paths)
        self.labels = np.asarray(labels)
        self.spec = spec
        self.resize = v2.Resize(list(size), antialias=True)
        self.crop = v2.CenterCrop(spec.crop) if spec.crop else None
        self.augment = PerImageAugment(spec, train=train)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        x = v2.functional.pil_to_tensor(load_rgb(self.paths[i]))  # (3, H, W) uint8
        if self.crop is not None:
            x = self.crop(x)
        x, _ = self.augment(self.resize(x))
        return normalize(x, self.spec), int(self.labels[i]), i


def baseline_loader(paths, labels, size, spec: AugmentSpec, train: bool, batch_size: int, workers: int,
                    weights: np.ndarray | None = None, seed: int = 0, pin: bool = False) -> DataLoader:
    ds = ImageFiles(paths, labels, size, spec, train)
    g = torch.Generator().manual_seed(seed)
    sampler = WeightedRandomSampler(weights, len(ds), replacement=True, generator=g) if (train and weights is not None) else None
    return DataLoader(ds, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                      num_workers=workers, pin_memory=pin, drop_last=train and len(ds) >= batch_size, generator=g,
                      persistent_workers=workers > 0)
