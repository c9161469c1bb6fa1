"""What one training run updates: the model (timm backbone + head), loss, optimizer, LR schedule and EMA, built
from the config, and resumed from the newest good checkpoint."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from maskcls.common.runfolder import RunFolder
from maskcls.models.backbones import create_model, set_backbone_trainable
from maskcls.models.losses import create_loss
from maskcls.train.config import RunConfig
from maskcls.train.dist import Dist
from maskcls.train.inputs import Data
from maskcls.train.sampling import class_weights


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
    tracking: object = None  # the run's trackers (maskcls.train.tracking.Tracking), when it asks for any


def create_learner(cfg: RunConfig, data: Data, *, device: torch.device, dist: Dist, run: RunFolder, say) -> Learner:
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


def resume_from(run: RunFolder, learner: Learner, say) -> tuple[int, float]:
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
