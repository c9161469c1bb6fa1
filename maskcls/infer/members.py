"""Ensemble members: a checkpoint reference (Member), its model, and the device-resident inputs members share."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from maskcls.common.settings import cudnn_autotune_eval, nvjpeg_preferred
from maskcls.models.backbones import create_model
from maskcls.train.config import RunConfig
from maskcls.train.engine import predict_batches
from maskcls.train.loaders import CachedLoader
from maskcls.common.runfolder import RunFolder, run_folder_path
from maskcls.common.checkpoints import CheckpointError, load_checkpoint


@dataclass
class Member:
    run: str
    checkpoint: str = "best.pt"
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "Member":
        """'RUN', 'RUN:CKPT' or 'RUN:CKPT:WEIGHT'; RUN is a run name or a run folder path."""
        parts = text.split(":")
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"member {text!r}: expected RUN[:CHECKPOINT[:WEIGHT]]")
        checkpoint = parts[1] if len(parts) > 1 and parts[1] else "best.pt"
        if not checkpoint.endswith(".pt"):
            raise ValueError(f"member {text!r}: {checkpoint!r} is not a checkpoint; expected best.pt, last.pt or "
                             f"epoch_NNN.pt")
        weight = 1.0
        if len(parts) > 2 and parts[2]:
            try:
                weight = float(parts[2])
            except ValueError:
                raise ValueError(f"member {text!r}: weight {parts[2]!r} is not a number") from None
            if not (np.isfinite(weight) and weight > 0):
                raise ValueError(f"member {text!r}: weight must be a finite number above 0, got {parts[2]!r}")
        return cls(parts[0], checkpoint, weight)

    def absolute(self) -> str:
        """This member as text, its run folder path made absolute (for a job process in another folder)."""
        path = run_folder_path(".", self.run)
        run = str(path) if path is not None else self.run
        return f"{run}:{self.checkpoint}:{self.weight!r}"

    @property
    def label(self) -> str:
        return f"{self.run}:{self.checkpoint}"


def member_run(runs_root, member: Member) -> RunFolder:
    run = RunFolder.open(runs_root, member.run)
    if not run.config_path.exists():
        raise ValueError(f"no run named {member.run!r} in {runs_root}")
    return run


def load_member(runs_root, member: Member) -> tuple[dict, RunConfig]:
    ckpt = load_checkpoint(member_run(runs_root, member).checkpoint(member.checkpoint))
    return ckpt, RunConfig.from_dict(ckpt["config"])


def member_config(runs_root, member: Member) -> RunConfig:
    """A member's run config from its config.json: no checkpoint is read when only the config is needed."""
    return RunConfig.from_dict(member_run(runs_root, member).read_config())


def build_model(ckpt: dict, cfg: RunConfig, source: str = "checkpoint") -> torch.nn.Module:
    """The checkpoint's own architecture with its weights; a mismatch is explained, not dumped."""
    model, _ = create_model(cfg.model, pretrained=False, head=cfg.head)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{source} does not fit model {cfg.model} ({cfg.head} head): "
                              f"{str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e}") from None
    return model.eval()


class EvalInputs:
    """Decoded, device-resident inputs for a list of images, built once per input form and shared by members.

    `progress(fraction, text)` hears about decoding; `decode_seconds` says how long it took.
    """

    def __init__(self, paths: list[str], device: torch.device, cache_dir, batch_size: int | None = None,
                 progress=None):
        self.paths, self.device, self.cache_dir = paths, device, cache_dir
        self.batch_size = batch_size or int(os.environ.get("MASKCLS_EVAL_BATCH", 0)) or (512 if device.type == "cuda"
                                                                                         else 256)
        self.progress = progress
        self.decode_seconds = 0.0
        self._loaders: dict = {}
        if device.type == "cuda" and cudnn_autotune_eval():
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels

    def loader(self, cfg: RunConfig) -> CachedLoader:
        """The decoded inputs as `cfg`'s recipe cuts them (held-out rule: what the eval set can follow), cached."""
        import dataclasses
        spec = cfg.augment_spec()
        recipe = dataclasses.replace(cfg.preprocess(), cache_dir=str(self.cache_dir))
        key = (repr(recipe), spec.to_json(), cfg.channels_last)
        if key not in self._loaders:
            t0 = time.perf_counter()
            report = (lambda d, n: self.progress(d / max(n, 1), f"decoding images {d}/{n}")) if self.progress else None
            cache, _ = recipe.cache([(self.paths, "held_out")], progress=report,
                                    device=self.device if self.device.type == "cuda" else "cpu",
                                    decode_device=self.device if nvjpeg_preferred() else None)
            if cache.problems:
                shown = "; ".join(f"{p}: {why}" for p, why in cache.problems[:5])
                more = f"; and {len(cache.problems) - 5} more" if len(cache.problems) > 5 else ""
                raise ValueError(f"{len(cache.problems)} eval image(s) could not be decoded, so no submission was "
                                 f"written (every ImageID needs an answer): {shown}{more}")
            n = len(self.paths)
            self._loaders[key] = CachedLoader(cache.array, np.arange(n), np.zeros(n), self.batch_size, spec=spec,
                                              train=False, device=self.device, channels_last=cfg.channels_last)
            self.decode_seconds += time.perf_counter() - t0
        return self._loaders[key]


def predict_paths(model: torch.nn.Module, cfg: RunConfig, inputs: EvalInputs, tta: bool = False) -> np.ndarray:
    """(N, 18) probabilities of `model` for the images of `inputs`, at the model's own input size."""
    loader = inputs.loader(cfg)
    model = model.to(inputs.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    probs, rows = predict_batches(model, loader, inputs.device, cfg.amp, tta_flip=tta)
    out = np.zeros_like(probs)
    out[rows] = probs
    return out
