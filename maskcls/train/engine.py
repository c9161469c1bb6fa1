"""One epoch of training, one pass of validation / prediction. Each returns plain numbers and arrays."""
from __future__ import annotations

import contextlib
import functools
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from maskcls.augment.pipelines import mix_batch
from maskcls.augment.spec import AugmentSpec


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, ...); the message says why and what to try."""


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Native bf16 matmul/conv on this CPU (AMX / AVX512-BF16): there bf16 autocast is ~1.5-2x faster."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA, and on CPUs with native bf16; otherwise full fp32."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if amp and device.type == "cpu" and cpu_has_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_one_epoch(model: nn.Module, loader, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, *,
                    scheduler, device: torch.device, amp: bool = True, grad_clip: float = 0.0, ema=None,
                    spec: AugmentSpec | None = None, mix_generator: torch.Generator | None = None,
                    limit_batches: int = 0, on_step=None, check_every: int = 25) -> dict:
    """Train over `loader` once; `on_step(step, n_steps)` reports progress. Raises TrainingError on NaN.

    Running sums stay on the device and finiteness is checked every `check_every` steps, so the GPU
    is not made to wait for the host on every step.
    """
    model.train()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    finite = torch.ones((), device=device, dtype=torch.bool)
    seen = 0
    n_steps = min(len(loader), limit_batches) if limit_batches else len(loader)
    mixing = spec is not None and (spec.mix.cutmix_p + spec.mix.mixup_p) > 0
    t0 = time.perf_counter()
    for step, (x, y, _) in enumerate(loader):
        if limit_batches and step >= limit_batches:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        target = mix_batch(x, y, spec, mix_generator) if mixing else (x, y)
        x, target = target
        with autocast(device, amp):
            logits = model(x)
        loss = loss_fn(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        b = y.shape[0]
        loss = loss.detach()
        finite &= torch.isfinite(loss)
        total_loss += loss * b
        correct += (logits.detach().argmax(1) == y).sum()
        seen += b
        if (step + 1) % check_every == 0 or step + 1 == n_steps:
            if not bool(finite):
                raise TrainingError(f"the loss became nan or inf by step {step + 1}: lower the learning rate, "
                                    f"turn on gradient clipping, or check the data")
        if on_step:
            on_step(step + 1, n_steps)
    if not bool(finite):
        raise TrainingError("the loss became nan or inf: lower the learning rate, turn on gradient clipping, "
                            "or check the data")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    return {"train_loss": float(total_loss) / max(seen, 1), "train_accuracy": int(correct) / max(seen, 1),
            "train_images": seen, "train_seconds": seconds, "images_per_s": seen / max(seconds, 1e-9)}


@torch.no_grad()  # not inference_mode: lazily made buffers must stay usable by training
def predict_batches(model: nn.Module, loader, device: torch.device, amp: bool = True, tta_flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (N, 18) and the row indices they belong to, in loader order.

    Flip TTA runs the image and its mirror as one double batch: one forward pass, fuller GPU.
    """
    model.eval()
    probs, rows = [], []
    for x, _, idx in loader:
        x = x.to(device, non_blocking=True)
        b = x.shape[0]
        if tta_flip:
            nhwc = x.dim() == 4 and b > 1 and x.is_contiguous(memory_format=torch.channels_last)
            x = torch.cat([x, x.flip(-1)])
            if nhwc:
                x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            p = F.softmax(model(x).float(), 1)
        if tta_flip:
            p = (p[:b] + p[b:]) / 2
        probs.append(p)  # stays on the device: one transfer at the end, no sync per batch
        rows.append(idx)
    if not probs:
        return np.zeros((0, 18), np.float32), np.zeros(0, np.int64)
    return torch.cat(probs).cpu().numpy(), torch.cat([r.to(probs[0].device) for r in rows]).cpu().numpy()


def validate(model: nn.Module, loader, labels: np.ndarray, device: torch.device, amp: bool = True) -> tuple[dict, np.ndarray]:
    """Validation loss (cross entropy) and probabilities in row order of `labels`."""
    probs, rows = predict_batches(model, loader, device, amp)
    ordered = np.zeros_like(probs)
    ordered[rows] = probs
    y = np.array(labels, dtype=np.int64)[: len(ordered)]
    loss = float(F.nll_loss(torch.log(torch.from_numpy(ordered.copy()).clamp_min(1e-8)), torch.from_numpy(y).long())) if len(y) else math.nan
    return {"val_loss": loss}, ordered
