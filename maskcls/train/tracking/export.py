"""A finished run sent to a tracker after the fact: its config, every epoch of metrics.jsonl, the best epoch's
confusion (from its validation predictions) and its summary, so runs trained before a team chose a tracker join it."""
from __future__ import annotations

from pathlib import Path

from maskcls.train.tracking import TRACKERS, Tracking, check_trackers
from maskcls.train.tracking.base import TrackContext, group_of


def export_run(run, to: str, *, project: str = "maskcls", uri: str = "", artifacts: bool = False,
               wait: float = 300.0) -> dict:
    """Replay `run` (a RunFolder) into tracker `to`; returns what was sent. Failures are raised, not just logged:
    an export is a command, not a training run."""
    from sklearn.metrics import confusion_matrix
    check_trackers([to])
    if to == "mlflow":
        from maskcls.train.tracking.mlflow_tracker import check_uri
        check_uri(uri)  # before anything is sent or created
    config = run.read_config()
    rows = run.read_metrics()
    if not rows:
        raise ValueError(f"run {run.name!r} has no metrics.jsonl rows to export")
    problems: list[str] = []
    where = Path(run.local_dir)  # a teammate's pulled run is read-only: its export goes beside it
    earlier = sorted((where / "tensorboard").glob("events.out.tfevents.*")) if to == "tensorboard" else []
    ctx = TrackContext(run.name, where, Path(run.root), config, config.get("track_group") or group_of(run.name),
                       project or "maskcls", uri, artifacts)
    tracking = Tracking([to], ctx, problems.append, after="nothing more was sent")
    for row in rows:
        tracking.epoch(row)
    preds = run.read_predictions()
    status = run.read_status()
    if preds is not None:
        probs = preds[[f"p{i}" for i in range(18)]].to_numpy()
        tracking.best(confusion_matrix(preds["label"], probs.argmax(1), labels=list(range(18))),
                      int(status.get("predictions_epoch") or status.get("best_epoch") or rows[-1]["epoch"]))
    tracking.close({"state": status.get("state", "completed"), "best_f1": status.get("best_f1"),
                    "best_epoch": status.get("best_epoch"), "epochs": len(rows)},
                   run.best_path if run.best_path.exists() else None, wait=wait)
    if problems:
        raise ValueError(f"export of {run.name!r} to {to}: " + "; ".join(problems))
    for old in earlier:  # the new event file holds every epoch: the earlier ones would show each curve twice
        old.unlink(missing_ok=True)
    return {"run": run.name, "to": to, "epochs": len(rows), "confusion": preds is not None, "group": ctx.group,
            "replaced": [p.name for p in earlier]}


__all__ = ["TRACKERS", "export_run"]
