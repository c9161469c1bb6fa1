"""The training driver: config in, run folder out (status, metrics, checkpoints, best predictions)."""
from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import dataclass

import numpy as np
import torch

from maskcls.common.devices import resolve_device
from maskcls.common.jobfolder import Cancelled, error_text, now, raise_cancelled_on_sigterm
from maskcls.common.progress import eta_text
from maskcls.common.settings import cpu_threads, default_cache_dir
from maskcls.data.cache import build_cache
from maskcls.data.corrections import load_corrections
from maskcls.data.index import index_data
from maskcls.data.labels import AgeBounds, class_names
from maskcls.data.splits import borderline, split_by_person
from maskcls.models.backbones import check_model, create_model, set_backbone_trainable
from maskcls.models.losses import create_loss
from maskcls.train.config import ConfigError, RunConfig
from maskcls.train.engine import train_one_epoch, validate
from maskcls.train.loaders import CachedLoader, baseline_loader
from maskcls.train.metrics import epoch_scores
from maskcls.train.rundir import RunDir, create_run, predictions_frame, save_checkpoint
from maskcls.train.sampling import class_weights, sample_weights


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def select_device(name: str, dist: Dist) -> torch.device:
    """The config's device; under DDP each process takes its own GPU (LOCAL_RANK)."""
    device = resolve_device(name)
    if device.type == "cuda" and dist.world > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.rank)))
    return device


def prepare_split(cfg: RunConfig):
    """Index the data and split it by person; returns (train rows, val rows, index)."""
    bounds = AgeBounds(cfg.age_lower, cfg.age_upper)
    corr = load_corrections(cfg.corrections) if cfg.corrections != "none" else None
    index = index_data(cfg.data_root, bounds, corr)
    if cfg.full_data:  # training + validation people: no held-out split
        is_val = np.zeros(len(index.train), dtype=bool)
    else:
        is_val = split_by_person(index.train, cfg.val_ratio, cfg.split_seed, None if cfg.fold < 0 else cfg.fold,
                                 cfg.n_folds)
    drop = borderline(index.train, bounds, cfg.drop_borderline) & ~is_val  # validation keeps everyone
    train = index.train[~is_val & ~drop].reset_index(drop=True)
    train.attrs["borderline_dropped"] = int(drop.sum())
    return train, index.train[is_val].reset_index(drop=True), index


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


def run_training(cfg: RunConfig, run: RunDir, resume: bool = False, progress=None, should_stop=None) -> dict:
    """Train as `cfg` says into `run`; returns the final status. Failures are written, then re-raised.

    `progress` (a TerminalProgress, optional) hears each epoch's line and the steps within it. While it
    trains, this process holds the run's lock: a second trainer of the same folder is refused.
    `should_stop(epoch, metrics_row) -> bool` is asked after each epoch's checkpoint is written (a sweep's
    pruner): True ends the run there, in the state "pruned".
    """
    dist = _init_dist()
    lock = None
    if dist.main:
        run.path.mkdir(parents=True, exist_ok=True)
        lock = run.acquire_lock()
        from maskcls.common.procs import proc_start
        run.write_status(state="running", pid=os.getpid(), pid_start=proc_start(os.getpid()), pgid=os.getpgid(0),
                         started=run.read_status().get("started") or now(), error=None,
                         epoch=run.read_status().get("epoch", 0), epochs=cfg.epochs)
    try:
        raise_cancelled_on_sigterm()
        status = _train(cfg, run, resume, dist, progress, should_stop)
    except Cancelled:
        if dist.main:
            run.log("cancelled: SIGTERM received; checkpoints written so far stay loadable")
            run.write_status(state="cancelled", ended=now(), pid=None)
        raise
    except BaseException as e:
        if dist.main:
            msg = error_text(e)
            run.log("failed: " + msg + "\n" + "".join(traceback.format_exception(e)[-6:]))
            run.write_status(state="failed", ended=now(), error=msg, pid=None)
        raise
    finally:
        if progress is not None:
            progress.close()
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        if lock is not None:
            lock.close()
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


@dataclass
class Data:
    """The split and its loaders."""

    train_rows: "object"
    val_rows: "object"
    train_loader: "object"
    val_loader: "object"


@dataclass
class Learner:
    """What one training run updates: model, optimizer, schedule, EMA; plus the loss and where it runs."""

    model: torch.nn.Module
    train_model: torch.nn.Module  # compiled and/or DDP-wrapped view of `model`
    optimizer: torch.optim.Optimizer
    scheduler: "object"
    ema: "object"
    loss_fn: torch.nn.Module
    device: torch.device
    steps: int


def _train(cfg: RunConfig, run: RunDir, resume: bool, dist: Dist, progress=None, should_stop=None) -> dict:
    """The driver: data, model, resume, then one loop step per epoch."""
    say = _teller(run, dist, progress)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = select_device(cfg.device, dist)
    if device.type == "cpu":  # the job runner says how many cores this job may use
        torch.set_num_threads(max(1, cpu_threads() // dist.world))
    data = load_data(cfg, device, dist, say, progress)
    learner = create_learner(cfg, data, device, dist, run, say)
    start_epoch, best_f1 = resume_from(run, learner, say) if resume else (1, -1.0)
    say(f"model {cfg.model} ({cfg.head} head) on {device}; {cfg.epochs} epochs of {learner.steps} steps; "
        f"world {dist.world}")
    frozen = cfg.freeze == "head"
    mix_g = torch.Generator().manual_seed(cfg.seed + 7)
    started = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs + 1):
        if frozen and cfg.unfreeze_after and epoch > cfg.unfreeze_after:
            set_backbone_trainable(learner.model, True)
            frozen = False
            say(f"epoch {epoch}: backbone unfrozen")
        row = run_epoch(cfg, epoch, data, learner, dist, run, mix_g, progress)
        if dist.main:
            best_f1 = save_epoch(cfg, run, epoch, row, data, learner, best_f1)
            eta = (time.perf_counter() - started) / (epoch - start_epoch + 1) * (cfg.epochs - epoch)
            say(epoch_line(epoch, cfg.epochs, row) + (f", ETA {eta_text(eta)}" if epoch < cfg.epochs else ""))
        if dist.world > 1:
            torch.distributed.barrier()
        if dist.main and should_stop is not None and should_stop(epoch, row) and epoch < cfg.epochs:
            say(f"pruned after epoch {epoch}: the sweep's pruner stopped it (macro F1 {row['val_macro_f1']:.4f}); "
                f"its checkpoints stay loadable")
            return run.write_status(state="pruned", ended=now(), pid=None)
    if not dist.main:
        return {}
    status = run.write_status(state="completed", ended=now(), pid=None, progress=1.0)
    say("completed: trained on all data; best.pt is the last epoch" if cfg.full_data else
        f"completed: best validation macro F1 {best_f1:.4f}")
    return status


def _teller(run: RunDir, dist: Dist, progress):
    """The driver's voice: the run's log.txt, and the terminal when a progress display is given."""
    def say(message: str) -> None:
        if not dist.main:
            return
        run.log(message)
        if progress is not None:
            progress.line(message)
    return say


def load_data(cfg: RunConfig, device: torch.device, dist: Dist, say, progress=None) -> Data:
    """Index and split by person, then the loaders: the decoded-image cache (built once) or PIL workers."""
    spec = cfg.augment_spec()
    train_rows, val_rows, index = prepare_split(cfg)
    say(f"data {index.root}: {len(train_rows)} train / {len(val_rows)} validation images "
        f"({train_rows['person_id'].nunique()} / {val_rows['person_id'].nunique()} people), "
        f"{len(index.skipped)} files skipped"
        + (f"; {train_rows.attrs['borderline_dropped']} borderline-age training images left out"
           if cfg.drop_borderline else ""))
    for path, reason in index.skipped[["path", "reason"]].head(20).itertuples(index=False):
        say(f"skipped {path}: {reason}")
    if cfg.batch_size > len(train_rows) // dist.world:
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(train_rows)} training images"
                          f"{' per process' if dist.world > 1 else ''}: use a batch of at most "
                          f"{max(1, len(train_rows) // dist.world)}")
    size = tuple(cfg.image_size)
    weights = sample_weights(train_rows["label"].to_numpy(), cfg.sampler) if cfg.sampler != "none" else None
    if cfg.loader != "cache":
        pin = device.type == "cuda"
        return Data(train_rows, val_rows,
                    baseline_loader(train_rows["path"], train_rows["label"], size, spec, True, cfg.batch_size,
                                    cfg.workers, weights, cfg.seed, pin),
                    baseline_loader(val_rows["path"], val_rows["label"], size, spec, False, cfg.batch_size * 2,
                                    cfg.workers, None, cfg.seed, pin))
    all_paths = list(train_rows["path"]) + list(val_rows["path"])
    boxes = face_boxes(cfg, all_paths, device, say, progress) if dist.main else None
    if dist.main:
        say(f"decoded-image cache: {len(all_paths)} images at {size[0]}x{size[1]}")
        bar = progress.count("decoding images", "img") if progress is not None else None
        cache = build_cache(all_paths, size, default_cache_dir(cfg), spec.crop, cfg.workers or None, progress=bar,
                            device=device if device.type == "cuda" else None, boxes=boxes,
                            background=cfg.remove_background)
        say(f"cache {'built' if cache.built else 'loaded'} in {cache.seconds:.1f}s; "
            f"{len(cache.problems)} images could not be decoded")
        for p, r in cache.problems[:20]:
            say(f"skipped {p}: {r}")
    if dist.world > 1:
        torch.distributed.barrier()
        if not dist.main:
            cache = build_cache(all_paths, size, default_cache_dir(cfg), spec.crop, 1,
                                boxes=face_boxes(cfg, all_paths, device, say), background=cfg.remove_background)
    n_tr = len(train_rows)
    tr_ok, va_ok = np.flatnonzero(cache.ok[:n_tr]), np.flatnonzero(cache.ok[n_tr:])
    train_rows, val_rows = train_rows.iloc[tr_ok].reset_index(drop=True), val_rows.iloc[va_ok].reset_index(drop=True)
    if weights is not None:
        weights = weights[tr_ok]
    cl = cfg.channels_last
    # batch_size is the global batch: each of `world` processes takes its share of it
    return Data(train_rows, val_rows,
                CachedLoader(cache.array, tr_ok, train_rows["label"].to_numpy(), cfg.batch_size // dist.world, spec,
                             True, device, weights, cfg.seed, dist.rank, dist.world, cl),
                CachedLoader(cache.array, n_tr + va_ok, val_rows["label"].to_numpy(), cfg.batch_size * 2, spec,
                             False, device, channels_last=cl))


def face_boxes(cfg: RunConfig, paths: list[str], device: torch.device, say=None, progress=None):
    """The face crop's boxes for `paths` (None without face_crop); detection runs once per image, then is cached."""
    if not cfg.face_crop:
        return None
    from maskcls.data.faces import coverage, face_crops
    bar = progress.count("finding faces", "img") if progress is not None else None
    boxes, sources = face_crops(paths, default_cache_dir(cfg), cfg.face_margin,
                                device if device.type == "cuda" else "cpu", bar)
    if say:
        say("face crop: " + ", ".join(f"{n} {k}" for k, n in coverage(sources).items()))
    return boxes


def create_learner(cfg: RunConfig, data: Data, device: torch.device, dist: Dist, run: RunDir, say) -> Learner:
    """Model (timm backbone + head), loss, optimizer, LR schedule and optional EMA, compile and DDP."""
    model, warning = create_model(cfg.model, cfg.pretrained, cfg.weights_file, cfg.head, cfg.drop_rate)
    if warning:
        say("WARNING: " + warning)
        if dist.main:
            run.write_status(warning=warning)
    model.to(device)
    if cfg.channels_last and cfg.loader == "cache":
        model = model.to(memory_format=torch.channels_last)
    cw = class_weights(data.train_rows["label"].to_numpy()).to(device) if cfg.class_weights else None
    loss_fn = create_loss(cfg.loss, cw, cfg.focal_gamma, cfg.smoothing, cfg.combo).to(device)
    set_backbone_trainable(model, cfg.freeze != "head")
    optimizer = create_optimizer(cfg, model)
    steps = min(len(data.train_loader), cfg.limit_batches) if cfg.limit_batches else len(data.train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps))
    ema = None
    if cfg.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    train_model = torch.compile(model) if cfg.compile else model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        train_model = DDP(train_model, device_ids=[device.index] if device.type == "cuda" else None)
    return Learner(model, train_model, optimizer, scheduler, ema, loss_fn, device, steps)


def resume_from(run: RunDir, learner: Learner, say) -> tuple[int, float]:
    """Load the newest good checkpoint into `learner`; returns (first epoch to train, best F1 so far).

    Epoch files carry no optimizer state: resuming from one (last.pt unusable) restarts the optimizer's
    moments, and says so. Metrics rows of epochs after the checkpoint are dropped, so they are not doubled.
    """
    good = run.latest_good_checkpoint()
    if good is None:
        return 1, -1.0
    path, ckpt = good
    learner.model.load_state_dict(ckpt["model"])
    if ckpt.get("optimizer") is not None:
        learner.optimizer.load_state_dict(ckpt["optimizer"])
        learner.scheduler.load_state_dict(ckpt["scheduler"])
    else:
        learner.scheduler.last_epoch = int(ckpt["epoch"]) * learner.steps
        say(f"{path.name} holds no optimizer state: the optimizer restarts from its initial moments")
    if learner.ema is not None and ckpt.get("ema"):
        learner.ema.load_state_dict(ckpt["ema"])
    epoch, best_f1 = int(ckpt["epoch"]), float(ckpt.get("best_f1", -1.0))
    dropped = run.truncate_metrics(epoch)
    say(f"resumed from {path.name} at epoch {epoch} (best macro F1 {best_f1:.4f})"
        + (f"; dropped {dropped} metrics row(s) of later epochs" if dropped else ""))
    return epoch + 1, best_f1


def run_epoch(cfg: RunConfig, epoch: int, data: Data, learner: Learner, dist: Dist, run: RunDir, mix_g,
              progress=None) -> dict:
    """Train one epoch, then validate on the main process; returns the metrics row (empty elsewhere)."""
    t0 = time.perf_counter()
    bar = progress.count(f"epoch {epoch}/{cfg.epochs}", "step") if progress is not None and dist.main else None

    def on_step(step, n):
        if bar is not None:
            bar(step, n)
        if dist.main and (step % 10 == 0 or step == n):
            run.write_status(epoch=epoch - 1, step=step, progress=round(((epoch - 1) + step / n) / cfg.epochs, 4))
    tr = train_one_epoch(learner.train_model, data.train_loader, learner.loss_fn, learner.optimizer,
                         learner.scheduler, learner.device, cfg.amp, cfg.grad_clip, learner.ema, cfg.augment_spec(),
                         mix_g, cfg.limit_batches, on_step)
    if dist.world > 1:
        stats = torch.tensor([tr["train_images"], tr["train_loss"] * tr["train_images"]], dtype=torch.float64,
                             device=learner.device if learner.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(stats)
        tr["train_images_all"] = int(stats[0])
    if not dist.main:
        return {}
    if data.val_rows.empty:  # full_data: nothing held out, nothing to score
        return {"epoch": epoch, **tr, "val_loss": None, "val_accuracy": None, "val_macro_f1": None,
                "lr": learner.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0, "_probs": None}
    eval_model = learner.ema.module if learner.ema is not None else learner.model
    val_stats, probs = validate(eval_model, data.val_loader, data.val_rows["label"].to_numpy(), learner.device,
                                cfg.amp)
    scores = epoch_scores(data.val_rows["label"].to_numpy(), probs)
    return {"epoch": epoch, **tr, **val_stats, **scores, "lr": learner.optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0, "_probs": probs}


def save_epoch(cfg: RunConfig, run: RunDir, epoch: int, row: dict, data: Data, learner: Learner,
               best_f1: float) -> float:
    """Metrics row, epoch file (weights only), best.pt and its predictions, last.pt (with optimizer state);
    then prune epoch files beyond `keep_epochs`. Returns the best macro F1 so far."""
    probs = row.pop("_probs")
    run.append_metrics(row)
    f1 = row["val_macro_f1"]
    improved = f1 is None or f1 > best_f1  # full_data: no score, so best.pt is always the latest epoch
    best_f1 = best_f1 if f1 is None else max(best_f1, f1)
    eval_model = learner.ema.module if learner.ema is not None else learner.model
    weights = {"model": eval_model.state_dict(), "config": cfg.to_dict(),
               "classes": class_names(AgeBounds(cfg.age_lower, cfg.age_upper)), "epoch": epoch,
               "val_macro_f1": f1, "best_f1": best_f1}
    save_checkpoint(run.epoch_path(epoch), weights)
    if improved:
        save_checkpoint(run.best_path, weights)
    if improved and probs is not None:
        run.write_predictions(predictions_frame(data.val_rows["path"], data.val_rows["person_id"],
                                                data.val_rows["label"], probs), epoch)
    save_checkpoint(run.last_path, {**weights, "optimizer": learner.optimizer.state_dict(),
                                    "scheduler": learner.scheduler.state_dict(),
                                    "ema": learner.ema.state_dict() if learner.ema is not None else None})
    run.prune_epochs(cfg.keep_epochs)
    run.write_status(epoch=epoch, step=0, progress=round(epoch / cfg.epochs, 4), best_f1=best_f1 if f1 is not None else None,
                     best_epoch=epoch if improved else run.read_status().get("best_epoch"),
                     images_per_s=round(row["images_per_s"], 1))
    return best_f1


def epoch_line(epoch: int, epochs: int, row: dict) -> str:
    if row["val_macro_f1"] is None:
        return (f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f}, no validation (all data), "
                f"{row['images_per_s']:.0f} img/s, {row['seconds']:.1f}s")
    return (f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f}, val loss {row['val_loss']:.4f}, "
            f"val acc {row['val_accuracy']:.4f}, val macro F1 {row['val_macro_f1']:.4f}, "
            f"{row['images_per_s']:.0f} img/s, {row['seconds']:.1f}s")


def train_from_config(cfg: RunConfig, runs_root: str | os.PathLike, name: str, resume: bool = False,
                      progress=None) -> dict:
    """Foreground training (the CLI, tests): a new run folder, created atomically, or a resume of one.

    A new run refuses an existing name; a resume refuses a run that is queued or running, and waits for
    its device's slot like a background job does.
    """
    if not resume:
        cfg.validate()
        check_model(cfg.model, cfg.image_size)
        run = create_run(runs_root, name, cfg)
        return run_training(cfg, run, False, progress)
    run = RunDir.open(runs_root, name)
    check_resumable(run)
    from maskcls.common.devices import device_of
    from maskcls.train.queue import wait_for_slot
    cfg = RunConfig.from_dict(run.read_config())
    device = device_of(cfg.device)
    held = wait_for_slot(run, device)
    try:
        return run_training(cfg, run, True, progress)
    finally:
        for f in held:
            f.close()


def full_data_config(run: RunDir) -> RunConfig:
    """A finished run's config for "train on all data": training + validation people, for as many epochs as
    the run needed to reach its best validation F1 (the count a held-out split chose)."""
    cfg = RunConfig.from_dict(run.read_config())
    if cfg.full_data:
        raise ValueError(f"{run.name!r} already trained on all data")
    status = run.read_status()
    if status.get("state") not in ("completed", "pruned"):
        raise ValueError(f"{run.name!r} is {status.get('state', 'unknown')}: its best epoch count is known once it "
                         f"has completed")
    epochs = int(status.get("best_epoch") or cfg.epochs)
    return RunConfig.from_dict({**cfg.to_dict(), "full_data": True, "fold": -1, "epochs": epochs})


def check_resumable(run: RunDir) -> None:
    """A resume needs a run folder with a config, not queued or running (its process alive)."""
    if not run.exists():
        raise ValueError(f"cannot resume {run.name!r}: no run folder {run.path}")
    if not run.config_path.exists():
        raise ValueError(f"cannot resume {run.name!r}: {run.config_path} does not exist")
    if run.status_path.exists():
        state = run.state()["state"]
        if state in ("queued", "running"):
            raise ValueError(f"cannot resume {run.name!r}: it is {state} (pid {run.read_status().get('pid')}); "
                             f"wait for it to end or cancel it first (`maskcls jobs cancel {run.name}`)")
    if run.is_locked():
        raise ValueError(f"cannot resume {run.name!r}: another process is training it right now")
