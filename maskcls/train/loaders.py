"""Batches for training and inference, two ways, same model input:

- `CachedLoader` (fast): pixels come decoded from the uint8 cache, the batch goes to the device, and the
  spec's batched augmentation runs there with per-image randomness.
- `baseline_loader` (the competition baseline's way): a DataLoader whose workers decode every JPEG with
  PIL, resize and augment per image, on every epoch.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torchvision.transforms.v2 as v2
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from maskcls.augment.pipelines import BatchAugment, PerImageAugment, normalize
from maskcls.augment.spec import AugmentSpec
from maskcls.common.settings import prefetch_enabled
from maskcls.data.imageio import load_rgb
from maskcls.train.sampling import epoch_indices


def _to_tensor(array: np.ndarray, rows: np.ndarray, device: torch.device, max_gpu_fraction: float) -> torch.Tensor:
    """The selected rows as one (N, H, W, 3) uint8 tensor: GPU-resident when it fits, else pinned host memory.

    Copied in chunks straight from the memory map, so no second full-size host copy is made.
    """
    n = len(rows)
    shape = (n,) + tuple(array.shape[1:])
    contiguous = n == 0 or (rows[0] == 0 and np.array_equal(rows, np.arange(n)))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        nbytes = int(np.prod(shape))
        out = torch.empty(shape, dtype=torch.uint8, device=device if nbytes < max_gpu_fraction * free else "cpu",
                          pin_memory=nbytes >= max_gpu_fraction * free)
    else:
        return torch.from_numpy(np.array(array[:n]) if contiguous else array[rows])  # a private, writable copy
    step = 2048
    for start in range(0, n, step):
        part = array[start:start + step] if contiguous else array[rows[start:start + step]]
        with warnings.catch_warnings():  # a read-only memory map: the tensor is only read, to copy it
            warnings.simplefilter("ignore", UserWarning)
            out[start:start + step].copy_(torch.from_numpy(np.ascontiguousarray(part)), non_blocking=False)
    return out


class CachedLoader:
    """Iterates (x float (B,3,H,W) on `device`, y (B,), row idx (B,)) over rows of a decoded cache.

    On CUDA the pixels, labels and the epoch's order all live on the GPU, so a step never waits for a
    host-to-device copy or a sync.
    """

    def __init__(self, array: np.ndarray | torch.Tensor, rows: np.ndarray, labels: np.ndarray, batch_size: int, *,
                 spec: AugmentSpec, train: bool, device: torch.device, weights: np.ndarray | None = None,
                 seed: int = 0, rank: int = 0, world: int = 1, channels_last: bool = False,
                 max_gpu_fraction: float = 0.4):
        self.rows = np.asarray(rows)
        self.batch_size = batch_size
        self.train = train
        self.device = device
        self.weights = weights
        self.rank, self.world = rank, world
        self.channels_last = channels_last
        self.augment = BatchAugment(spec, train=train, seed=seed + 1000 * rank, device=device)
        self.generator = torch.Generator().manual_seed(seed)  # same order on every rank, then sharded
        self.data = array if isinstance(array, torch.Tensor) else _to_tensor(array, self.rows, device, max_gpu_fraction)
        self.labels = torch.as_tensor(np.array(labels, dtype=np.int64)).to(device)

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
        order = order.to(self.data.device)  # one copy per epoch, not per batch
        labels = self.labels.to(self.data.device)
        batches = (order[start:start + self.batch_size] for start in range(0, stop, self.batch_size))
        if self.device.type == "cuda" and prefetch_enabled():
            yield from self._prefetched(batches, labels)
            return
        for idx in batches:
            yield self._batch(idx, labels)

    def _batch(self, idx: torch.Tensor, labels: torch.Tensor):
        xb = self.data[idx].to(self.device, non_blocking=True).permute(0, 3, 1, 2)  # (B, 3, H, W) uint8
        x, _ = self.augment(xb)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, labels[idx].to(self.device, non_blocking=True), idx

    def _prefetched(self, batches, labels: torch.Tensor):
        """Batch k+1 is gathered and augmented on a side stream while the model works on batch k, so the input
        kernels fill the gaps the model leaves instead of adding to the step time."""
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(main)  # the epoch order and labels were made on the main stream
        pending = None
        for idx in batches:
            with torch.cuda.stream(side):
                batch = self._batch(idx, labels)
                ready = side.record_event()
            if pending is not None:
                yield self._hand_over(*pending, main)
            pending = (batch, ready)
        if pending is not None:
            yield self._hand_over(*pending, main)

    @staticmethod
    def _hand_over(batch, ready, main):
        main.wait_event(ready)
        for t in batch:
            if t.is_cuda:
                t.record_stream(main)  # the allocator must not reuse this memory until main is done with it
        return batch


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


def baseline_loader(paths, labels, size, *, spec: AugmentSpec, train: bool, batch_size: int, workers: int,
                    weights: np.ndarray | None = None, seed: int = 0, pin: bool = False) -> DataLoader:
    ds = ImageFiles(paths, labels, size, spec, train)
    g = torch.Generator().manual_seed(seed)
    sampler = WeightedRandomSampler(weights, len(ds), replacement=True, generator=g) if (train and weights is not None) else None
    return DataLoader(ds, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                      num_workers=workers, pin_memory=pin, drop_last=train and len(ds) >= batch_size, generator=g,
                      persistent_workers=workers > 0)
