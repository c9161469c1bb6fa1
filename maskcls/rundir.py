"""A run is a folder under the runs root; every file in it is written atomically.

checkpoints/<run>/ config.json status.json metrics.jsonl log.txt epoch_NNN.pt best.pt last.pt
                   val_predictions.csv (best epoch: path, person_id, label, p0..p17)
"""
from __future__ import annotations

import json
import os
import pickle
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .fileio import atomic_path, check_name, inside, write_csv, write_json, write_text

CKPT_FORMAT = "maskcls-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot or must not be loaded."""


def now() -> float:
    return round(time.time(), 3)


class StatusFile:
    """A folder's status.json (`status_path`): read whole, updated by merging fields, written atomically."""

    status_path: Path

    def read_status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def write_status(self, **fields) -> dict:
        status = {**self.read_status(), **fields, "updated": now()}
        write_json(self.status_path, status)
        return status


class RunDir(StatusFile):
    def __init__(self, runs_root: str | os.PathLike, name: str):
        self.name = check_name(name)
        self.root = Path(runs_root)
        self.path = inside(runs_root, self.name)

    # files
    config_path = property(lambda self: self.path / "config.json")
    status_path = property(lambda self: self.path / "status.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    log_path = property(lambda self: self.path / "log.txt")
    predictions_path = property(lambda self: self.path / "val_predictions.csv")
    best_path = property(lambda self: self.path / "best.pt")
    last_path = property(lambda self: self.path / "last.pt")

    def epoch_path(self, epoch: int) -> Path:
        return self.path / f"epoch_{epoch:03d}.pt"

    def exists(self) -> bool:
        return self.path.is_dir()

    # metrics
    def read_metrics(self) -> list[dict]:
        rows = []
        try:
            for line in self.metrics_path.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn line from a killed writer
        except FileNotFoundError:
            pass
        return rows

    def append_metrics(self, row: dict) -> None:
        rows = self.read_metrics() + [row]
        write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n"
        with open(self.log_path, "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(line)
            f.flush()

    def read_config(self) -> dict:
        return json.loads(self.config_path.read_text())

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 64_000))
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    # checkpoints and predictions
    def list_checkpoints(self) -> list[str]:
        names = sorted(p.name for p in self.path.glob("epoch_*.pt"))
        return [n for n in ("best.pt", "last.pt") if (self.path / n).exists()] + names

    def latest_good_checkpoint(self) -> tuple[Path, dict] | None:
        """The newest checkpoint that loads: last.pt or the highest loadable epoch_NNN.pt, whichever is later
        (a kill can leave last.pt unwritten or stale). Loads at most last.pt and the epoch files down to the
        first good one."""
        found = []
        for group in (["last.pt"], sorted((p.name for p in self.path.glob("epoch_*.pt")), reverse=True)):
            for name in group:
                try:
                    found.append((self.path / name, load_checkpoint(self.path / name)))
                    break
                except CheckpointError:
                    continue
        return max(found, key=lambda t: t[1]["epoch"]) if found else None

    def checkpoint(self, name: str) -> Path:
        return inside(self.path, check_name(name, "checkpoint name"))

    def write_predictions(self, frame: pd.DataFrame) -> None:
        write_csv(self.predictions_path, frame)

    def read_predictions(self) -> pd.DataFrame | None:
        if not self.predictions_path.exists():
            return None
        return pd.read_csv(self.predictions_path, dtype={"person_id": str})


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """torch.save to a temp file, then os.replace: a kill mid-write leaves the previous file intact."""
    with atomic_path(path) as tmp:
        torch.save({"format": CKPT_FORMAT, **payload}, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load with weights_only=True: a checkpoint carrying code is refused, a damaged one is named."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} refused: it holds objects other than tensors and plain "
                              f"data, which could run code when loaded ({str(e).splitlines()[0][:200]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged or incomplete ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a maskcls checkpoint (expected format {CKPT_FORMAT})")
    return ckpt


def predictions_frame(paths, person_ids, labels, probs: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"path": list(paths), "person_id": list(person_ids), "label": np.asarray(labels, int)})
    probs = np.asarray(probs, dtype=np.float32)
    return pd.concat([frame, pd.DataFrame(probs, columns=[f"p{i}" for i in range(probs.shape[1])])], axis=1)


def probs_of(frame: pd.DataFrame) -> np.ndarray:
    return frame[[f"p{i}" for i in range(18)]].to_numpy(np.float32)


def list_runs(runs_root: str | os.PathLike) -> list[RunDir]:
    root = Path(runs_root)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if p.is_dir() and (p / "config.json").exists():
            try:
                out.append(RunDir(root, p.name))
            except ValueError:
                continue
    return out
