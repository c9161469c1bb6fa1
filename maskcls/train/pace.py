"""How fast a run goes: the steady ETA a training job reports as it trains, and the throughput each run records for
the next estimate (<runs root>/.throughput.json, read by maskcls.orchestration.estimate)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from maskcls.common.fileio import locked, read_json, write_json
from maskcls.train.config import RunConfig

THROUGHPUT_FILE = ".throughput.json"


@dataclass
class Speed:
    train_ips: float  # training images/s (the batched pipeline, forward + backward)
    val_ips: float  # prediction images/s
    source: str  # where the figures come from, in words


class Pace:
    """Seconds per training step, measured from the epoch's second step on (the first pays warm-up), and the
    validation pass's seconds, carried across epochs: an ETA that is steady from the first seconds of a run."""

    def __init__(self, val_images: int, guess_val_ips: float | None = None):
        self.val_images = val_images
        self.val_seconds = None if not guess_val_ips else val_images / guess_val_ips
        self.per_step = None
        self._first = None  # (step, time) after the epoch's first step

    def step(self, step: int) -> None:
        now = time.perf_counter()
        if step <= 1 or self._first is None or self._first[0] >= step:
            self._first = (step, now)
            return
        self.per_step = (now - self._first[1]) / (step - self._first[0])

    def validated(self, seconds: float) -> None:
        self.val_seconds = seconds
        self._first = None

    def figures(self, epoch: int, step: int, steps: int, epochs: int, batch: int) -> dict:
        """images_per_s and eta_s (this epoch's rest, the epochs after it, their validation passes) once a rate is
        measured; nothing before."""
        if not self.per_step:
            return {}
        left_steps = max(steps - step, 0) + max(epochs - epoch, 0) * steps
        val = self.val_seconds if self.val_seconds is not None else 0.0
        passes = max(epochs - epoch + (1 if step else 0), 0)
        return {"images_per_s": round(batch / self.per_step, 1),
                "eta_s": round(left_steps * self.per_step + passes * val, 1)}


def device_kind(cfg: RunConfig) -> str:
    from maskcls.common.devices import resolve_device
    return resolve_device(cfg.device).type


def speed_key(cfg: RunConfig, kind: str) -> str:
    """What decides a run's speed: model, head, image size, batch, device, precision, loader, memory layout."""
    h, w = cfg.image_size
    return (f"{cfg.model}|{cfg.head}|{h}x{w}|b{cfg.batch_size}|{kind}|amp{int(cfg.amp)}|{cfg.loader}|"
            f"cl{int(cfg.channels_last)}|c{int(cfg.compile)}")


def record_speed(runs_root, cfg: RunConfig, kind: str, *, train_ips: float, val_ips: float | None) -> None:
    """An epoch's measured rates, kept for the next estimate (the newest five per key)."""
    path = Path(runs_root) / THROUGHPUT_FILE
    with locked(path):
        table = _read(path)
        rows = table.setdefault(speed_key(cfg, kind), [])
        rows.append({"train_ips": float(train_ips), "val_ips": float(val_ips) if val_ips else None,
                     "at": time.time()})
        table[speed_key(cfg, kind)] = rows[-5:]
        write_json(path, table)


def _read(path: Path) -> dict:
    try:
        table = read_json(path, THROUGHPUT_FILE, root=path.parent)
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def measured_speed(runs_root, cfg: RunConfig, kind: str) -> Speed | None:
    """The median of what runs of this speed key measured here, or None."""
    rows = [r for r in _read(Path(runs_root) / THROUGHPUT_FILE).get(speed_key(cfg, kind), [])
            if isinstance(r, dict) and _positive(r.get("train_ips"))]
    if not rows:
        return None
    train = statistics.median(r["train_ips"] for r in rows)
    vals = [r["val_ips"] for r in rows if _positive(r.get("val_ips"))]
    return Speed(train, statistics.median(vals) if vals else 3 * train,
                 f"measured here by {len(rows)} epoch(s) of earlier runs of {cfg.model} at {cfg.image_size[0]}x"
                 f"{cfg.image_size[1]} on {kind}: {train:.0f} img/s training")


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and v == v and v != float("inf")


