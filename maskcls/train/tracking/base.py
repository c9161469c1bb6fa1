"""What every tracker receives, and the one interface each implements (TensorBoard, MLflow, W&B)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GROUP_RE = (re.compile(r"^(?P<group>.+)-r\d+-(?:s|fold)\d+$"),  # a ladder's rung run
            re.compile(r"^(?P<group>.+)-(?:fold\d+|s\d+|t\d{3})$"))  # a fold group, a repeat group, a sweep's trial


def group_of(run_name: str) -> str | None:
    """The group a run belongs to, read from its name (folds NAME-foldK, seeds NAME-sK, sweep trials NAME-tNNN,
    ladder runs NAME-rI-sK), None for a lone run."""
    for pattern in GROUP_RE:
        m = pattern.match(run_name)
        if m:
            return m["group"]
    return None


@dataclass
class TrackContext:
    """One run as a tracker sees it."""

    run_name: str
    run_dir: Path
    runs_root: Path
    config: dict
    group: str | None = None
    project: str = "maskcls"  # W&B project / MLflow experiment
    uri: str = ""  # MLflow tracking URI ("" = MLFLOW_TRACKING_URI, else SQLite in <runs root>/mlflow/)
    artifacts: bool = False  # send the best checkpoint (large) to MLflow / W&B
    classes: list = field(default_factory=list)


class Tracker:
    """One tracker. Each call may fail (a full disk, a server gone): the caller catches, warns, and drops it."""

    name = ""

    def start(self, ctx: TrackContext) -> None:
        raise NotImplementedError

    def epoch(self, row: dict) -> None:
        raise NotImplementedError

    def best(self, confusion: np.ndarray, epoch: int) -> None:
        """The best epoch's confusion matrix (true rows, predicted columns), as a table and an image."""
        raise NotImplementedError

    def finish(self, summary: dict, checkpoint: Path | None) -> None:
        raise NotImplementedError


def scalars(row: dict, classes: list[str] | None = None) -> dict[str, float]:
    """A metrics.jsonl row as flat scalars: losses, accuracy, macro F1, lr, images/s, and per-class F1."""
    keys = ("train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr", "images_per_s", "seconds")
    out = {k: float(row[k]) for k in keys if isinstance(row.get(k), (int, float)) and not isinstance(row.get(k), bool)}
    for c, f in enumerate(row.get("val_per_class_f1") or []):
        out[f"val_f1/class_{c:02d}"] = float(f)
    return out


def confusion_image(matrix: np.ndarray, cell: int = 18) -> np.ndarray:
    """A (H, W, 3) uint8 picture of a confusion matrix: white to dark blue by row share, a cell per class pair."""
    m = np.asarray(matrix, dtype=np.float64)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    blue = np.stack([1 - 0.85 * share, 1 - 0.6 * share, 1 - 0.25 * share], -1)
    img = (blue * 255).round().astype(np.uint8)
    return np.kron(img, np.ones((cell, cell, 1), np.uint8))


def flat_config(config: dict) -> dict[str, str]:
    """The run config as flat text values (what MLflow params and TensorBoard hparams hold)."""
    import json
    return {k: (v if isinstance(v, (int, float, str, bool)) else json.dumps(v)) for k, v in config.items()}
