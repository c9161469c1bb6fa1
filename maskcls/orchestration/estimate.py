"""How long a run, a ladder or a sweep will take on this device, said before it starts.

From measured throughput, never a guess: the images/s that runs of the same model, image size, batch, device and
precision reached here (each run records its own as it trains, in <runs root>/.throughput.json), or else a short
probe that trains and predicts a few batches of that model on synthetic images through the real batched pipeline
(`probe=True`: seconds). The time is: start-up, the decoded-image cache when it is not built yet (a decode probe of
a few photos), then each epoch's training images at the training rate and validation images at the prediction
rate. A ladder adds its rungs' runs, a sweep its trials (pruned trials end sooner: the sweep's figure is the most
it takes). `maskcls bench estimate` checks an estimate against the run it estimated.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from maskcls.train.config import RunConfig
from maskcls.train.pace import Speed, device_kind, measured_speed

STARTUP_S = {"cpu": 8.0, "cuda": 20.0}  # process start, imports, index and model build (CUDA: its context)
DECODE_PROBE = 12  # photos decoded to time the cache build


@dataclass
class Estimate:
    seconds: float
    how: str
    parts: dict = field(default_factory=dict)

    def text(self) -> str:
        return f"about {duration_text(self.seconds)} ({self.how})"


def duration_text(seconds: float) -> str:
    """12 s, 3 min 10 s, 2 h 05 min: what a person reads (the tables and logs use it too)."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def probe_speed(cfg: RunConfig, *, steps: int = 6, warmup: int = 2) -> Speed:
    """Train and predict a few batches of the config's model on synthetic images through the batched pipeline
    (augmentation, loss, optimizer as configured): seconds, not an epoch."""
    import numpy as np
    import torch

    from maskcls.common.devices import resolve_device
    from maskcls.models.backbones import create_model
    from maskcls.models.losses import create_loss
    from maskcls.train.engine import predict_batches, train_one_epoch
    from maskcls.train.learner import create_optimizer
    from maskcls.train.loaders import CachedLoader
    device = resolve_device(cfg.device)
    torch.manual_seed(0)
    h, w = cfg.image_size
    n = cfg.batch_size * (steps + warmup)
    pixels = np.random.default_rng(0).integers(0, 255, (n, h, w, 3), dtype=np.uint8)
    labels = np.arange(n) % 18
    spec = cfg.augment_spec()
    loader = CachedLoader(pixels, np.arange(n), labels, cfg.batch_size, spec=spec, train=True, device=device,
                          channels_last=cfg.channels_last)
    model, _ = create_model(cfg.model, False, "", cfg.head, cfg.drop_rate)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = create_loss(cfg.loss, None, cfg.focal_gamma, cfg.smoothing, cfg.combo).to(device)
    optimizer = create_optimizer(cfg, model)
    kw = dict(scheduler=None, device=device, amp=cfg.amp, spec=spec)
    train_one_epoch(model, loader, loss_fn, optimizer, limit_batches=warmup, **kw)
    stats = train_one_epoch(model, loader, loss_fn, optimizer, limit_batches=steps, **kw)
    val = CachedLoader(pixels, np.arange(n), labels, cfg.batch_size * 2, spec=spec, train=False, device=device,
                       channels_last=cfg.channels_last)
    t0 = time.perf_counter()
    predict_batches(model, val, device, cfg.amp)
    val_ips = n / max(time.perf_counter() - t0, 1e-9)
    return Speed(stats["images_per_s"], val_ips, f"a probe of {steps} training batches of {cfg.model} at {h}x{w} "
                                                 f"on {device.type}: {stats['images_per_s']:.0f} img/s training")


def cache_seconds(cfg: RunConfig, paths: list[str]) -> tuple[float, str]:
    """(seconds to build the decoded-image cache, what was found): none when the cache for these photos at this
    size and crop is there; else a decode probe of a few photos times the photos over the build's workers, and
    with the face crop a detection probe for the photos with no face box cached yet."""
    from maskcls.data.cache import cache_key
    from maskcls.data.faces import FACES_FILE
    from maskcls.data.imageio import load_preprocessed
    if not paths:
        return 0.0, "no photos"
    recipe = cfg.preprocess()
    folder = recipe.cache_path
    if not cfg.face_crop:
        key = cache_key(paths, recipe.size, recipe.crop, None, recipe.background)
        if (folder / f"{key}.u8").is_file() and (folder / f"{key}.json").is_file():
            return 0.0, "its decoded-image cache is built"
    sample = paths[:: max(1, len(paths) // DECODE_PROBE)][:DECODE_PROBE]
    t0 = time.perf_counter()
    for p in sample:
        try:
            load_preprocessed(p, recipe.size, recipe.crop, None, recipe.background)
        except (OSError, ValueError):
            continue
    per = (time.perf_counter() - t0) / max(len(sample), 1)
    workers = max(1, min(cfg.workers or os.cpu_count() or 1, os.cpu_count() or 1))
    seconds, how = per * len(paths) / workers, f"the decoded-image cache is built first ({per * 1000:.0f} ms a photo)"
    if cfg.face_crop and not (folder / FACES_FILE).is_file():
        from maskcls.data.faces import face_crops
        t0 = time.perf_counter()
        face_crops(sample[:3], str(folder), cfg.face_margin)  # kept: the run would find these boxes anyway
        per_face = (time.perf_counter() - t0) / 3
        seconds += per_face * len(paths)
        how += f"; MTCNN finds each face once ({per_face:.1f} s a photo)"
    return seconds, how


def estimate_run(cfg: RunConfig, runs_root, *, probe: bool = False, built: set | None = None) -> Estimate | None:
    """The run's time on its device; None when no run of its speed key was measured here and `probe` is off.
    `built`: cache keys an earlier part of a ladder or sweep builds (not counted twice)."""
    from maskcls.data.splits import prepare_split
    kind = device_kind(cfg)
    speed = measured_speed(runs_root, cfg, kind) or (probe_speed(cfg) if probe else None)
    if speed is None:
        return None
    train, val, _ = prepare_split(cfg.split_spec())
    paths = list(train["path"]) + list(val["path"])
    recipe_key = (str(cfg.preprocess()), len(paths))
    cache_s, cache_how = (0.0, "its cache is built by an earlier run") if built is not None and recipe_key in built \
        else cache_seconds(cfg, paths)
    if built is not None:
        built.add(recipe_key)
    steps = len(train) // cfg.batch_size
    if cfg.limit_batches:
        steps = min(steps, cfg.limit_batches)
    train_s = steps * cfg.batch_size / speed.train_ips
    val_s = len(val) / speed.val_ips
    total = STARTUP_S.get(kind, 10.0) + cache_s + cfg.epochs * (train_s + val_s)
    return Estimate(total, f"{speed.source}; {cache_how}",
                    {"startup": STARTUP_S.get(kind, 10.0), "cache": cache_s, "epochs": cfg.epochs,
                     "train_per_epoch": train_s, "val_per_epoch": val_s, "train_images": len(train),
                     "val_images": len(val), "train_ips": speed.train_ips, "val_ips": speed.val_ips})


def estimate_many(configs: list[RunConfig], runs_root, *, probe: bool = False, what: str = "runs") -> Estimate | None:
    """Several runs one after another on one device (a ladder's rungs and seeds, a sweep's trials, folds)."""
    built: set = set()
    parts = []
    for cfg in configs:
        e = estimate_run(cfg, runs_root, probe=probe, built=built)
        if e is None:
            return None
        parts.append(e)
    total = sum(e.seconds for e in parts)
    return Estimate(total, f"{len(parts)} {what} on one device; {parts[0].how}", {"runs": len(parts),
                                                                                 "each": [e.seconds for e in parts]})
