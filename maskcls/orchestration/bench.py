"""Benchmarks: the baseline-style pipeline and the fast one on the same data, model and batch, in one process.

baseline = a DataLoader whose workers decode every image with PIL, resize and augment it per image, every
epoch (the competition baseline's way). fast = decoded-image cache + batched augmentation on the device,
bf16 autocast and channels_last on CUDA.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from maskcls.augment.spec import create_preset
from maskcls.common.devices import resolve_device
from maskcls.common.settings import default_cache_dir
from maskcls.data.cache import build_cache
from maskcls.data.index import index_data
from maskcls.models.backbones import create_model
from maskcls.models.losses import create_loss
from maskcls.train.engine import predict_batches, train_one_epoch
from maskcls.train.loaders import CachedLoader, baseline_loader


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


class _Slice:
    """`n` batches from a running iterator, so warm-up and timed steps share one loader pass."""

    def __init__(self, it, n: int):
        self.it, self.n = it, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return self.it


class _Resident:
    """`n` batches of one device-resident tensor: the model's own limit, with no input pipeline at all."""

    def __init__(self, batch: int, size, device: torch.device, n: int, channels_last: bool):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, *size, generator=g).to(device)
        self.x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        self.y = torch.randint(0, 18, (batch,), generator=g).to(device)
        self.idx = torch.arange(batch, device=device)
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            yield self.x, self.y, self.idx


def train_limit(model_name: str, size, batch: int, *, device: torch.device, amp: bool, steps: int, warmup: int,
                compile_model: bool = False) -> float:
    """Training images/s of the fast path's model (same batch, precision, memory format, compile setting) on
    tensors already on the device: what no input pipeline can beat."""
    torch.manual_seed(0)
    model = _model(model_name, device, True, compile_model)
    return _timed_train(model, _Resident(batch, size, device, warmup + steps, True), device, amp=amp, steps=steps,
                        warmup=warmup)


def _timed_train(model, loader, device, *, amp: bool, steps: int, warmup: int) -> float:
    loss_fn = create_loss("ce").to(device)
    opt_kw = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **opt_kw)
    it = iter(loader)
    train_one_epoch(model, _Slice(it, warmup), loss_fn, optimizer, scheduler=None, device=device, amp=amp,
                    limit_batches=warmup)
    stats = train_one_epoch(model, _Slice(it, steps), loss_fn, optimizer, scheduler=None, device=device, amp=amp,
                            limit_batches=steps)
    return stats["images_per_s"]


def _model(name: str, device: torch.device, fast: bool, compile_model: bool = False):
    model, _ = create_model(name, pretrained=False)
    model = model.to(device)
    if fast:
        model = model.to(memory_format=torch.channels_last)
    if fast and compile_model:
        model = torch.compile(model)
    return model


def bench_train(root, *, model: str = "resnet10t", size=(128, 96), batch: int = 32, workers: int = 2,
                steps: int = 20, warmup: int = 3, amp: bool = True, augment: str = "baseline",
                device: str = "auto", cache_dir=None, compile_model: bool = False) -> dict:
    """Training images/s of both pipelines on the data under `root`."""
    dev = resolve_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    spec = create_preset(augment)
    train = index_data(root).train
    paths, labels = train["path"].tolist(), train["label"].to_numpy()
    need = (steps + warmup + 2) * batch
    if len(paths) < need:
        raise ValueError(f"bench needs at least {need} images for {warmup}+{steps} steps of {batch}; {root} has {len(paths)}")
    torch.manual_seed(0)
    loader = baseline_loader(paths, labels, size, spec=spec, train=True, batch_size=batch, workers=workers,
                             pin=dev.type == "cuda")
    # the baseline as the competition ran it: bf16 autocast only on CUDA, fp32 on the CPU
    base = _timed_train(_model(model, dev, False), loader, dev, amp=amp and dev.type == "cuda", steps=steps,
                        warmup=warmup)
    del loader
    cache_dir = default_cache_dir(root, cache_dir)
    t0 = time.perf_counter()
    cache = build_cache(paths, size, cache_dir, spec.crop, workers=os.cpu_count())
    build_s = time.perf_counter() - t0
    fast_loader = CachedLoader(cache.array, np.flatnonzero(cache.ok), labels[cache.ok], batch, spec=spec, train=True,
                               device=dev, channels_last=True)
    fast = _timed_train(_model(model, dev, True, compile_model), fast_loader, dev, amp=amp, steps=steps,
                        warmup=warmup + (10 if compile_model else 0))
    limit = train_limit(model, size, batch, device=dev, amp=amp, steps=steps, warmup=warmup + (10 if compile_model else 0),
                        compile_model=compile_model)
    from maskcls.train.engine import cpu_has_bf16
    return {"bench": "train", "model": model, "size": list(size), "batch": batch,
            "fast_bf16": amp and (dev.type == "cuda" or cpu_has_bf16()), "baseline_bf16": amp and dev.type == "cuda",
            "baseline_workers": workers, "images": len(paths), "baseline_img_per_s": round(base, 1),
            "fast_img_per_s": round(fast, 1), "ratio": round(fast / base, 2), "limit_img_per_s": round(limit, 1),
            "fast_to_limit": round(fast / limit, 3), "baseline_to_limit": round(base / limit, 3),
            "compiled": compile_model, "cache_build_s": round(build_s, 2), "cache_was_built": cache.built,
            "device": device_name(dev)}


def bench_infer(root, *, model: str = "resnet10t", size=(128, 96), batch: int = 64, workers: int = 2,
                device: str = "auto", cache_dir=None, members: int = 1, tta: bool = False) -> dict:
    """Eval-set prediction images/s: PIL DataLoader vs the cache; `members` models averaged, optional flip TTA."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    index = index_data(root)
    if index.eval is None:
        raise ValueError(f"{root} has no eval/info.csv to predict")
    paths = index.eval["path"].tolist()
    spec = create_preset("baseline")
    models = [_model(model, dev, False).eval() for _ in range(members)]
    t0 = time.perf_counter()
    loader = baseline_loader(paths, np.zeros(len(paths)), size, spec=spec, train=False, batch_size=batch,
                             workers=workers, pin=dev.type == "cuda")
    for m in models:
        predict_batches(m, loader, dev, True, tta)
    base_s = time.perf_counter() - t0
    cache_dir = default_cache_dir(root, cache_dir)
    fast_models = [m.to(memory_format=torch.channels_last) if dev.type == "cuda" else m for m in models]
    t0 = time.perf_counter()
    cache = build_cache(paths, size, cache_dir, spec.crop, workers=os.cpu_count())
    build_s = time.perf_counter() - t0
    fast_loader = CachedLoader(cache.array, np.arange(len(paths)), np.zeros(len(paths)), batch * 4, spec=spec,
                               train=False, device=dev, channels_last=dev.type == "cuda")
    if dev.type == "cuda":  # warm-up: cuDNN autotuning is not what we measure
        predict_batches(fast_models[0], _Slice(iter(fast_loader), 2), dev, True, tta)
    t0 = time.perf_counter()
    probs = [predict_batches(m, fast_loader, dev, True, tta)[0] for m in fast_models]
    _ = np.mean(probs, 0)  # the soft vote, as the ensemble does it
    if dev.type == "cuda":
        torch.cuda.synchronize()
    fast_s = time.perf_counter() - t0
    n = len(paths)
    limit_s = infer_limit(fast_models, n, batch * 4, size, device=dev, tta=tta)
    return {"bench": "infer", "model": model, "size": list(size), "members": members, "tta": "flip" if tta else "none",
            "images": n, "baseline_seconds": round(base_s, 2), "fast_seconds": round(fast_s, 2),
            "fast_seconds_with_cache_build": round(fast_s + build_s, 2), "cache_was_built": cache.built,
            "baseline_img_per_s": round(n / base_s, 1), "fast_img_per_s": round(n / fast_s, 1),
            "ratio": round(base_s / fast_s, 2), "limit_img_per_s": round(n / limit_s, 1),
            "fast_to_limit": round(limit_s / fast_s, 3), "device": device_name(dev)}


def infer_limit(models, n: int, batch: int, size, *, device: torch.device, tta: bool) -> float:
    """Seconds the models alone take for `n` images already on the device (same batch, TTA and precision)."""
    resident = _Resident(batch, size, device, max(1, -(-n // batch)), device.type == "cuda")
    predict_batches(models[0], _Slice(iter(resident), 1), device, True, tta)  # warm-up
    t0 = time.perf_counter()
    for m in models:
        predict_batches(m, resident, device, True, tta)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * n / (len(resident) * batch)


def bench_cache(root, size=(224, 224), device: str = "auto", workers: int | None = None, limit: int = 0) -> dict:
    """Decoded-image cache build of the training images: Pillow worker processes vs batched decoding on
    `device` (nvJPEG on CUDA), each into a fresh folder, and how far their pixels differ."""
    import shutil
    import tempfile
    dev = resolve_device(device)
    paths = index_data(root).train["path"].tolist()
    paths = paths[:limit] if limit else paths
    out = {"bench": "cache", "images": len(paths), "size": list(size), "device": device_name(dev)}
    folder = Path(tempfile.mkdtemp(prefix="maskcls-bench-cache-"))
    try:
        t0 = time.perf_counter()
        cpu = build_cache(paths, size, folder / "cpu", None, workers=workers or os.cpu_count())
        out["cpu_seconds"] = round(time.perf_counter() - t0, 2)
        out["cpu_img_per_s"] = round(len(paths) / out["cpu_seconds"], 1)
        from maskcls.data.gpudecode import decode_paths, gpu_decode_available
        t0 = time.perf_counter()
        if gpu_decode_available(dev):
            fast = build_cache(paths, size, folder / "device", None, device=dev)
            arr = fast.array
        else:  # no GPU: the same batched path on the CPU, to check its pixels (not a speed figure)
            arr, _ = decode_paths(paths[:512], size, None, dev)
        out["device_seconds"] = round(time.perf_counter() - t0, 2)
        out["device_decoder"] = "nvJPEG" if gpu_decode_available(dev) else "torchvision on the CPU (pixel check only)"
        n = len(arr)
        diff = np.abs(np.asarray(arr[:n], np.int16) - np.asarray(cpu.array[:n], np.int16))
        out.update(pixel_mean_abs_diff=round(float(diff.mean()), 3), pixel_p99_abs_diff=float(np.percentile(diff, 99)))
        if gpu_decode_available(dev):
            out["device_img_per_s"] = round(len(paths) / out["device_seconds"], 1)
            out["speedup"] = round(out["cpu_seconds"] / out["device_seconds"], 2)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def bench_scan(root) -> dict:
    """Indexing: a baseline-style listdir loop over every folder vs `index_data` (which also checks headers)."""
    from maskcls.data.labels import MASK_FILES
    t0 = time.perf_counter()
    found = []
    images = Path(root) / "train" / "images"
    for folder in os.listdir(images):
        if folder.startswith("."):
            continue
        for f in os.listdir(images / folder):
            stem = os.path.splitext(f)[0]
            if stem in MASK_FILES and not f.startswith("._"):
                found.append(str(images / folder / f))
    base_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    idx = index_data(root)
    fast_s = time.perf_counter() - t0
    n = len(idx.train)
    return {"bench": "scan", "images": n, "baseline_seconds": round(base_s, 3), "fast_seconds": round(fast_s, 3),
            "baseline_img_per_s": round(len(found) / base_s, 1), "fast_img_per_s": round(n / fast_s, 1),
            "ratio": round(base_s / fast_s, 2), "device": device_name(torch.device("cpu"))}


def bench_estimate(cfg, *, runs_root=None) -> dict:
    """Estimate a run as a user about to launch it would (a probe: no earlier run here, the image cache not built),
    then train exactly that run in a fresh process and compare: the estimate's error against the model's own
    measured time."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from maskcls.orchestration.estimate import estimate_run
    work = Path(tempfile.mkdtemp(prefix="maskcls-estimate-"))
    runs = Path(runs_root) if runs_root else work / "runs"
    cfg = type(cfg).from_dict({**cfg.to_dict(), "cache_dir": str(work / "cache")})
    try:
        t0 = time.perf_counter()
        estimate = estimate_run(cfg, runs, probe=True)
        estimate_s = time.perf_counter() - t0
        (work / "run.json").write_text(cfg.to_json())
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "maskcls", "train", "--config", str(work / "run.json"),
                              "--name", "timed", "--runs-root", str(runs), "--quiet"], capture_output=True,
                             text=True)
        measured = time.perf_counter() - t0
        if out.returncode != 0:
            raise ValueError(f"the timed run failed: {out.stderr.strip()[-400:]}")
        best = json.loads(out.stdout.splitlines()[-1]).get("best_f1")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"bench": "estimate", "model": cfg.model, "size": list(cfg.image_size), "epochs": cfg.epochs,
            "estimated_s": round(estimate.seconds, 1), "measured_s": round(measured, 1),
            "ratio": round(estimate.seconds / measured, 3), "error": round(abs(estimate.seconds / measured - 1), 3),
            "within_30_percent": abs(estimate.seconds / measured - 1) <= 0.3, "estimating_took_s": round(estimate_s, 1),
            "how": estimate.how, "parts": {k: round(v, 1) if isinstance(v, float) else v
                                           for k, v in estimate.parts.items()}, "best_f1": best}
