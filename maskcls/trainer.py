"""The training driver: config in, run folder out (status, metrics, checkpoints, best predictions)."""
from __future__ import annotations

import math
import os
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .cache import build_cache
from .config import ConfigError, RunConfig
from .corrections import load_corrections
from .dataindex import index_data
from .engine import TrainingError, train_one_epoch, validate
from .labels import AgeBounds, class_names
from .loaders import CachedLoader, baseline_loader
from .losses import create_loss
from .metrics import epoch_scores
from .models import create_model, set_backbone_trainable
from .rundir import RunDir, now, predictions_frame, save_checkpoint
from .sampling import class_weights, sample_weights
from .splits import split_by_person


class Cancelled(Exception):
    """SIGTERM arrived: stop after writing what is safe to write."""


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def select_device(name: str, dist: Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available here")
        if dist.world > 1:
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.rank)))
    return torch.device(name)


def default_cache_dir(cfg: RunConfig) -> Path:
    return Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.data_root) / ".maskcls-cache"


def prepare_split(cfg: RunConfig):
    """Index the data and split it by person; returns (train rows, val rows, index)."""
    bounds = AgeBounds(cfg.age_lower, cfg.age_upper)
    corr = load_corrections(cfg.corrections) if cfg.corrections != "none" else None
    index = index_data(cfg.data_root, bounds, corr)
    is_val = split_by_person(index.train, cfg.val_ratio, cfg.split_seed, None if cfg.fold < 0 else cfg.fold,
                             cfg.n_folds)
    return index.train[~is_val].reset_index(drop=True), index.train[is_val].reset_index(drop=True), index


def lr_lambda(cfg: RunConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.scheduler == "cosine":
            t = (step - warm) / max(1, total - warm)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        if cfg.scheduler == "step":
            return cfg.step_gamma ** ((step // steps_per_epoch) // cfg.step_size)
        return 1.0
    return f


def create_optimizer(cfg: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    fused = {"fused": True} if next(model.parameters()).is_cuda else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)


def _install_sigterm() -> None:
    def handler(signum, frame):
        raise Cancelled("cancelled (SIGTERM)")
    signal.signal(signal.SIGTERM, handler)


def run_training(cfg: RunConfig, run: RunDir, resume: bool = False) -> dict:
    """Train as `cfg` says into `run`; returns the final status. Failures are written, then re-raised."""
    dist = _init_dist()
    if dist.main:
        run.path.mkdir(parents=True, exist_ok=True)
        from .jobs import proc_start
        run.write_status(state="running", pid=os.getpid(), pid_start=proc_start(os.getpid()), pgid=os.getpgid(0),
                         started=run.read_status().get("started") or now(), error=None,
                         epoch=run.read_status().get("epoch", 0), epochs=cfg.epochs)
    try:
        _install_sigterm()
        status = _train(cfg, run, resume, dist)
    except Cancelled:
        if dist.main:
            run.log("cancelled: SIGTERM received; checkpoints written so far stay loadable")
            run.write_status(state="cancelled", ended=now(), pid=None)
        raise
    except BaseException as e:
        if dist.main:
            msg = str(e) if isinstance(e, (ValueError, TrainingError, ConfigError)) else f"{type(e).__name__}: {e}"
            run.log("failed: " + msg + "\n" + "".join(traceback.format_exception(e)[-6:]))
            run.write_status(state="failed", ended=now(), error=msg, pid=None)
        raise
    finally:
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return status


def _init_dist() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as td
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not td.is_initialized():
        td.init_process_group(backend)
    return Dist(td.get_rank(), td.get_world_size())


def _train(cfg: RunConfig, run: RunDir, resume: bool, dist: Dist) -> dict:
    say = run.log if dist.main else (lambda m: None)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = select_device(cfg.device, dist)
    if device.type == "cpu":  # the job runner says how many cores this job may use
        share = int(os.environ.get("MASKCLS_THREADS", 0)) or (os.cpu_count() or 1)
        torch.set_num_threads(max(1, share // dist.world))
    spec = cfg.augment_spec()
    train_rows, val_rows, index = prepare_split(cfg)
    say(f"data {index.root}: {len(train_rows)} train / {len(val_rows)} validation images "
        f"({train_rows['person_id'].nunique()} / {val_rows['person_id'].nunique()} people), "
        f"{len(index.skipped)} files skipped")
    for path, reason in index.skipped[["path", "reason"]].head(20).itertuples(index=False):
        say(f"skipped {path}: {reason}")
    if cfg.batch_size > len(train_rows) // dist.world:
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(train_rows)} training images"
                          f"{' per process' if dist.world > 1 else ''}: use a batch of at most "
                          f"{max(1, len(train_rows) // dist.world)}")
    size = tuple(cfg.image_size)
    weights = sample_weights(train_rows["label"].to_numpy(), cfg.sampler) if cfg.sampler != "none" else None
    if cfg.loader == "cache":
        all_paths = list(train_rows["path"]) + list(val_rows["path"])
        if dist.main:
            say(f"decoded-image cache: {len(all_paths)} images at {size[0]}x{size[1]}")
            cache = build_cache(all_paths, size, default_cache_dir(cfg), spec.crop, cfg.workers or None)
            say(f"cache {'built' if cache.built else 'loaded'} in {cache.seconds:.1f}s; "
                f"{len(cache.problems)} images could not be decoded")
            for p, r in cache.problems[:20]:
                say(f"skipped {p}: {r}")
        if dist.world > 1:
            torch.distributed.barrier()
            if not dist.main:
                cache = build_cache(all_paths, size, default_cache_dir(cfg), spec.crop, 1)
        n_tr = len(train_rows)
        tr_ok = np.flatnonzero(cache.ok[:n_tr])
        va_ok = np.flatnonzero(cache.ok[n_tr:])
        train_rows, val_rows = train_rows.iloc[tr_ok].reset_index(drop=True), val_rows.iloc[va_ok].reset_index(drop=True)
        if weights is not None:
            weights = weights[tr_ok]
        cl = cfg.channels_last
        # batch_size is the global batch: each of `world` processes takes its share of it
        train_loader = CachedLoader(cache.array, tr_ok, train_rows["label"].to_numpy(), cfg.batch_size // dist.world,
                                    spec, True, device, weights, cfg.seed, dist.rank, dist.world, cl)
        val_loader = CachedLoader(cache.array, n_tr + va_ok, val_rows["label"].to_numpy(), cfg.batch_size * 2, spec,
                                  False, device, channels_last=cl)
    else:
        pin = device.type == "cuda"
        train_loader = baseline_loader(train_rows["path"], train_rows["label"], size, spec, True, cfg.batch_size,
                                       cfg.workers, weights, cfg.seed, pin)
        val_loader = baseline_loader(val_rows["path"], val_rows["label"], size, spec, False, cfg.batch_size * 2,
                                     cfg.workers, None, cfg.seed, pin)
    model, warning = create_model(cfg.model, cfg.pretrained, cfg.weights_file, cfg.head, cfg.drop_rate)
    if warning:
        say("WARNING: " + warning)
        if dist.main:
            run.write_status(warning=warning)
    model.to(device)
    if cfg.channels_last and cfg.loader == "cache":
        model = model.to(memory_format=torch.channels_last)
    cw = class_weights(train_rows["label"].to_numpy()).to(device) if cfg.class_weights else None
    loss_fn = create_loss(cfg.loss, cw, cfg.focal_gamma, cfg.smoothing, cfg.combo).to(device)
    frozen = cfg.freeze == "head"
    set_backbone_trainable(model, not frozen)
    optimizer = create_optimizer(cfg, model)
    steps = min(len(train_loader), cfg.limit_batches) if cfg.limit_batches else len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps))
    ema = None
    if cfg.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    start_epoch, best_f1 = 1, -1.0
    good = run.latest_good_checkpoint() if resume else None
    if good is not None:
        path, ckpt = good
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ema is not None and ckpt.get("ema"):
            ema.load_state_dict(ckpt["ema"])
        start_epoch, best_f1 = int(ckpt["epoch"]) + 1, float(ckpt.get("best_f1", -1.0))
        say(f"resumed from {path.name} at epoch {ckpt['epoch']} (best macro F1 {best_f1:.4f})")
    train_model = model
    if cfg.compile:
        train_model = torch.compile(model)
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        train_model = DDP(train_model, device_ids=[device.index] if device.type == "cuda" else None)
    names = class_names(AgeBounds(cfg.age_lower, cfg.age_upper))
    mix_g = torch.Generator().manual_seed(cfg.seed + 7)
    say(f"model {cfg.model} ({cfg.head} head) on {device}; {cfg.epochs} epochs of {steps} steps; world {dist.world}")
    status = run.read_status()
    for epoch in range(start_epoch, cfg.epochs + 1):
        if frozen and cfg.unfreeze_after and epoch > cfg.unfreeze_after:
            set_backbone_trainable(model, True)
            frozen = False
            say(f"epoch {epoch}: backbone unfrozen")
        t0 = time.perf_counter()

        def on_step(step, n, epoch=epoch):
            if dist.main and (step % 10 == 0 or step == n):
                run.write_status(epoch=epoch - 1, step=step, progress=round(((epoch - 1) + step / n) / cfg.epochs, 4))
        tr = train_one_epoch(train_model, train_loader, loss_fn, optimizer, scheduler, device, cfg.amp,
                             cfg.grad_clip, ema, spec, mix_g, cfg.limit_batches, on_step)
        if dist.world > 1:
            stats = torch.tensor([tr["train_images"], tr["train_loss"] * tr["train_images"]], dtype=torch.float64,
                                 device=device if device.type == "cuda" else "cpu")
            torch.distributed.all_reduce(stats)
            tr["train_images_all"] = int(stats[0])
        if not dist.main:
            torch.distributed.barrier()
            continue
        eval_model = ema.module if ema is not None else model
        val_stats, probs = validate(eval_model, val_loader, val_rows["label"].to_numpy(), device, cfg.amp)
        scores = epoch_scores(val_rows["label"].to_numpy(), probs)
        row = {"epoch": epoch, **tr, **val_stats, **scores, "lr": optimizer.param_groups[0]["lr"],
               "seconds": time.perf_counter() - t0}
        run.append_metrics(row)
        payload = {"model": eval_model.state_dict(), "config": cfg.to_dict(), "classes": names, "epoch": epoch,
                   "val_macro_f1": scores["val_macro_f1"], "optimizer": optimizer.state_dict(),
                   "scheduler": scheduler.state_dict(), "ema": ema.state_dict() if ema is not None else None}
        improved = scores["val_macro_f1"] > best_f1
        best_f1 = max(best_f1, scores["val_macro_f1"])
        payload["best_f1"] = best_f1
        save_checkpoint(run.epoch_path(epoch), payload)
        if improved:
            save_checkpoint(run.best_path, payload)
            run.write_predictions(predictions_frame(val_rows["path"], val_rows["person_id"], val_rows["label"], probs))
        save_checkpoint(run.last_path, payload)
        say(f"epoch {epoch}/{cfg.epochs}: train loss {tr['train_loss']:.4f}, val loss {val_stats['val_loss']:.4f}, "
            f"val acc {scores['val_accuracy']:.4f}, val macro F1 {scores['val_macro_f1']:.4f}, "
            f"{tr['images_per_s']:.0f} img/s, {row['seconds']:.1f}s")
        status = run.write_status(epoch=epoch, step=0, progress=round(epoch / cfg.epochs, 4), best_f1=best_f1,
                                  images_per_s=round(tr["images_per_s"], 1))
        if dist.world > 1:
            torch.distributed.barrier()
    if dist.main:
        status = run.write_status(state="completed", ended=now(), pid=None, progress=1.0)
        say(f"completed: best validation macro F1 {best_f1:.4f}")
    return status


def train_from_config(cfg: RunConfig, runs_root: str | os.PathLike, name: str, resume: bool = False) -> dict:
    """CLI entry: write config.json, then train."""
    from .fileio import write_text
    run = RunDir(runs_root, name)
    run.path.mkdir(parents=True, exist_ok=True)
    if resume:
        if not run.config_path.exists():
            raise ValueError(f"cannot resume {name!r}: {run.config_path} does not exist")
        cfg = RunConfig.from_dict(run.read_config())
    else:
        write_text(run.config_path, cfg.to_json())
    return run_training(cfg, run, resume)
