"""One model's predictions: a checkpoint reference (Member), its model, device-resident inputs shared by
members, and the eval set's submission file."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from maskcls.common.fileio import atomic_path
from maskcls.common.settings import cudnn_autotune_eval, nvjpeg_preferred
from maskcls.data.cache import build_cache
from maskcls.models.backbones import create_model
from maskcls.train.config import RunConfig
from maskcls.train.engine import predict
from maskcls.train.loaders import CachedLoader
from maskcls.train.metrics import macro_f1
from maskcls.train.rundir import CheckpointError, RunDir, load_checkpoint, run_folder_path


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


def member_run(runs_root, member: Member) -> RunDir:
    run = RunDir.open(runs_root, member.run)
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
        spec = cfg.augment_spec()
        key = (tuple(cfg.image_size), str(spec.crop), spec.to_json(), cfg.channels_last, cfg.face_crop, cfg.face_margin,
               cfg.remove_background)
        if key not in self._loaders:
            t0 = time.perf_counter()
            report = (lambda d, n: self.progress(d / max(n, 1), f"decoding images {d}/{n}")) if self.progress else None
            boxes = None
            if cfg.face_crop:  # the crop the checkpoint trained on, from the same box cache
                from maskcls.data.faces import face_crops
                boxes, _ = face_crops(self.paths, self.cache_dir, cfg.face_margin,
                                      self.device if self.device.type == "cuda" else "cpu")
            cache = build_cache(self.paths, tuple(cfg.image_size), self.cache_dir, spec.crop, progress=report,
                                device=self.device if nvjpeg_preferred() else None, boxes=boxes,
                                background=cfg.remove_background)
            if cache.problems:
                raise ValueError(f"{len(cache.problems)} image(s) could not be decoded, e.g. "
                                 f"{cache.problems[0][0]}: {cache.problems[0][1]}")
            n = len(self.paths)
            self._loaders[key] = CachedLoader(cache.array, np.arange(n), np.zeros(n), self.batch_size, spec, False,
                                              self.device, channels_last=cfg.channels_last)
            self.decode_seconds += time.perf_counter() - t0
        return self._loaders[key]


def predict_paths(model: torch.nn.Module, cfg: RunConfig, inputs: EvalInputs, tta: bool = False) -> np.ndarray:
    """(N, 18) probabilities of `model` for the images of `inputs`, at the model's own input size."""
    loader = inputs.loader(cfg)
    model = model.to(inputs.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    probs, rows = predict(model, loader, inputs.device, cfg.amp, tta_flip=tta)
    out = np.zeros_like(probs)
    out[rows] = probs
    return out


def eval_paths(data_root) -> tuple[pd.DataFrame, list[str]]:
    """eval/info.csv in its order with image paths; a missing image is an error that names it."""
    from maskcls.data.index import scan_eval
    problems: list = []
    table = scan_eval(Path(data_root), problems)
    if table is None:
        why = problems[0][2] if problems else "eval/info.csv not found"
        raise ValueError(f"cannot predict the eval set of {data_root}: {why}")
    missing = table.loc[~table["exists"], "image_id"].tolist()
    if missing:
        raise ValueError(f"{len(missing)} eval image(s) named in eval/info.csv are missing from eval/images: "
                         f"{', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}")
    return table, table["path"].tolist()


def check_output(out: str | os.PathLike) -> Path:
    """Refuse, before any work, an output path that is a folder or sits in a folder that cannot be written."""
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; expected a file name such as {str(out / 'submission.csv')!r}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--out {str(out)!r}: the folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {str(out)!r}: the folder {str(parent)!r} is not writable")
    return out


def write_submission(out: str | os.PathLike, image_ids: list[str], probs: np.ndarray) -> Path:
    """`ImageID,ans` in info.csv order; the probabilities go beside it as <out>.probs.csv for blending.

    The two files are a pair: both are written to temp files first and replaced only when both are whole, so
    a failure (a full disk) leaves the previous pair, never a new CSV beside old probabilities.
    """
    if probs.size == 0 and len(image_ids):
        raise ValueError("the ensemble produced no probabilities")
    if not np.isfinite(probs).all():
        raise ValueError(f"the ensemble's probabilities are not finite for {int((~np.isfinite(probs)).any(1).sum())} "
                         f"image(s): nothing was written (check the members' weights and checkpoints)")
    out = Path(out)
    probs_path = out.with_suffix(".probs.csv")
    frame = pd.DataFrame(probs, columns=[f"p{i}" for i in range(18)])
    frame.insert(0, "ImageID", image_ids)
    answers = pd.DataFrame({"ImageID": image_ids, "ans": probs.argmax(1).astype(int)})
    with atomic_path(probs_path) as tmp_probs, atomic_path(out) as tmp_csv:
        frame.to_csv(tmp_probs, index=False)
        answers.to_csv(tmp_csv, index=False)
    return probs_path


def demo_score(table: pd.DataFrame, probs: np.ndarray) -> dict | None:
    """Score against the demo's hidden labels (eval/labels.csv), when the data has them."""
    if "label" not in table.columns or table["label"].isna().any():
        return None
    y = table["label"].astype(int).to_numpy()
    return {"macro_f1": macro_f1(y, probs.argmax(1)), "accuracy": float((probs.argmax(1) == y).mean())}
