"""What can be known before a run folder exists, asked by every way of starting a run and by an estimate."""
from __future__ import annotations

import os

from maskcls.data.corrections import load_corrections
from maskcls.models.backbones import check_model
from maskcls.train.config import RunConfig
from maskcls.train.tracking import check_trackers


def check_startable(cfg: RunConfig) -> None:
    """What can be known before a run folder exists: the config, the model at its size, the data root, the
    corrections file. Every way of starting a run (train, jobs, folds, sweeps, the studio) asks this first."""
    cfg.validate()
    if not cfg.data_root or not os.path.isdir(cfg.data_root):  # first: a stat, before the model is built
        raise ValueError(f"data root {cfg.data_root!r} is not a folder: expected a data root in the competition layout "
                         f"(train/images/, eval/)")
    if not os.path.isdir(os.path.join(cfg.data_root, "train", "images")):
        raise ValueError(f"data root {cfg.data_root!r} has no train/images/ folder: expected a data root in the "
                         f"competition layout (train/images/, train/train.csv, eval/)")
    check_model(cfg.model, cfg.image_size)
    from maskcls.common.devices import resolve_device
    resolve_device(cfg.device)  # a GPU this machine does not have is named now, before a folder is made
    if cfg.corrections != "none":
        load_corrections(cfg.corrections)  # a missing or malformed file is named now, not by the job
    check_trackers(cfg.track)  # an uninstalled tracker is named now, with its install command
    if "mlflow" in cfg.track:
        from maskcls.train.tracking.mlflow_tracker import check_uri
        check_uri(cfg.track_uri)
    if cfg.team:
        from maskcls.common.settings import team_settings
        team_settings()  # where to push it and as whom are named now, not when it ends
