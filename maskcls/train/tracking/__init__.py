"""The trackers teams already read: TensorBoard, MLflow and W&B, fed from the run as it trains.

They come with the README's install (`pip install -r requirements.txt -e .`); a run asks for them with the config key `track`. Every call to
them runs on one background thread: a tracker that is slow or fails (a full disk, a server gone) never stalls or
fails training; it gets a warning in the run's log and is dropped, and the run's own records stay complete.
"""
from __future__ import annotations

import importlib
import importlib.util
import queue
import threading
from pathlib import Path

from maskcls.train.tracking.base import TrackContext, group_of

TRACKERS = {  # name -> (module, class, the package it needs)
    "tensorboard": ("maskcls.train.tracking.tb", "TensorBoardTracker", "tensorboard"),
    "mlflow": ("maskcls.train.tracking.mlflow_tracker", "MlflowTracker", "mlflow"),
    "wandb": ("maskcls.train.tracking.wandb_tracker", "WandbTracker", "wandb"),
}
INSTALL = "pip install -r requirements.txt -e . (the README's install)"
CLOSE_WAIT_S = 60.0  # how long the end of a run waits for the trackers to catch up, at most


def list_trackers() -> list[str]:
    return list(TRACKERS)


def check_trackers(names) -> list[str]:
    """Refuse, before any training, a tracker that is unknown or not installed, naming the install command."""
    names = list(names or [])
    for name in names:
        if name not in TRACKERS:
            raise ValueError(f"unknown tracker {name!r}; valid: {', '.join(TRACKERS)}")
        package = TRACKERS[name][2]
        if importlib.util.find_spec(package) is None:
            raise ValueError(f"tracker {name!r} needs the {package} package, which is not installed: run "
                             f"`{INSTALL}` (or `pip install {package}`)")
    return names


def create_tracker(name: str):
    module, cls, _ = TRACKERS[name]
    return getattr(importlib.import_module(module), cls)()


class Tracking:
    """The run's trackers behind one background thread; `warn(text)` hears about each one that fails."""

    def __init__(self, names: list[str], ctx: TrackContext, warn, after: str = "the run goes on without it"):
        self.names, self.ctx, self.warn, self.after = list(names), ctx, warn, after
        self.events: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="maskcls-trackers", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        live = []
        for name in self.names:
            try:
                tracker = create_tracker(name)
                tracker.start(self.ctx)
                live.append(tracker)
            except Exception as e:  # noqa: BLE001 - a tracker must never fail the run
                self.warn(f"tracker {name} could not start ({type(e).__name__}: {e}); {self.after}")
        while True:
            event = self.events.get()
            if event is None:
                return
            method, args = event
            for tracker in list(live):
                try:
                    getattr(tracker, method)(*args)
                except Exception as e:  # noqa: BLE001
                    live.remove(tracker)
                    self.warn(f"tracker {tracker.name} failed in {method} ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}); {self.after}")

    def epoch(self, row: dict) -> None:
        self.events.put(("epoch", (dict(row),)))

    def best(self, confusion, epoch: int) -> None:
        self.events.put(("best", ([list(map(int, r)) for r in confusion], epoch)))

    def close(self, summary: dict, checkpoint: Path | None = None, wait: float = CLOSE_WAIT_S) -> None:
        """Finish every tracker; wait for them at most `wait` seconds, then leave them behind with a warning."""
        self.events.put(("finish", (dict(summary), checkpoint)))
        self.events.put(None)
        self.thread.join(wait)
        if self.thread.is_alive():
            self.warn(f"trackers still busy after {wait:.0f} s (a server that does not answer?): left behind; "
                      f"the run's own files are complete")


def open_tracking(cfg, run, warn) -> Tracking | None:
    """The trackers `cfg.track` asks for, for the run folder `run` (None when it asks for none)."""
    if not cfg.track:
        return None
    from maskcls.data.labels import AgeBounds, class_names
    ctx = TrackContext(run.name, Path(run.path), Path(run.root), cfg.to_dict(), cfg.track_group or group_of(run.name),
                       cfg.track_project or "maskcls", cfg.track_uri, cfg.track_artifacts,
                       class_names(AgeBounds(cfg.age_lower, cfg.age_upper)))
    return Tracking(cfg.track, ctx, warn)
