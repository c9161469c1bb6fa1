"""A run is a folder under the runs root; every file in it is written atomically.

checkpoints/<run>/ config.json status.json metrics.jsonl log.txt epoch_NNN.pt best.pt last.pt
                   val_predictions.csv (best epoch: path, person_id, label, p0..p17)
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from maskcls.common.fileio import atomic_path, check_name, inside, read_json, write_csv, write_text
from maskcls.common.jobfolder import JobFolder

CKPT_FORMAT = "maskcls-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot or must not be loaded."""


class RunDir(JobFolder):
    """One training run's folder; state, log and cancel come from JobFolder."""

    kind = "run"

    def __init__(self, runs_root: str | os.PathLike, name: str):
        self.name = check_name(name)
        self.root = Path(runs_root)
        self.path = inside(runs_root, self.name)

    @classmethod
    def open(cls, runs_root: str | os.PathLike, ref: str) -> "RunDir":
        """A run given by name (in `runs_root`) or by its folder's path, as a terminal user tab-completes it
        (`checkpoints/my-run/`, `/abs/path/run`, `./run`)."""
        path = run_folder_path(runs_root, ref)
        if path is None:
            return cls(runs_root, ref)
        try:
            return cls(path.parent, path.name)
        except ValueError:
            raise ValueError(f"run folder {ref!r}: its name {path.name!r} is not a valid run name (letters, digits, "
                             f"'.', '_', '-')") from None

    # files
    config_path = property(lambda self: self.path / "config.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    predictions_path = property(lambda self: self.path / "val_predictions.csv")
    best_path = property(lambda self: self.path / "best.pt")
    last_path = property(lambda self: self.path / "last.pt")

    def epoch_path(self, epoch: int) -> Path:
        return self.path / f"epoch_{epoch:03d}.pt"

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

    def truncate_metrics(self, last_epoch: int) -> int:
        """Drop rows of epochs after `last_epoch` (a resume from an earlier checkpoint); returns how many."""
        rows = self.read_metrics()
        keep = [r for r in rows if int(r.get("epoch", 0)) <= last_epoch]
        if len(keep) != len(rows):
            write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in keep))
        return len(rows) - len(keep)

    def read_config(self) -> dict:
        try:
            return read_json(self.config_path)
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.config_path} is not valid JSON ({e.msg} at line {e.lineno})") from None

    # the trainer's lock: held by the one process that trains this folder, released by the kernel at its exit
    lock_path = property(lambda self: self.path / ".train.lock")

    def acquire_lock(self):
        """An open file holding an exclusive flock on this run; a ValueError when another process trains it."""
        f = open(self.lock_path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise ValueError(f"run {self.name!r} is being trained by another process right now; "
                             f"wait for it or cancel it") from None
        return f

    def is_locked(self) -> bool:
        if not self.lock_path.exists():
            return False
        try:
            self.acquire_lock().close()
            return False
        except ValueError:
            return True

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

    def prune_epochs(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` epoch files (0 keeps all); best.pt and last.pt always stay."""
        files = sorted(self.path.glob("epoch_*.pt"))
        gone = files[:-keep] if keep > 0 else []
        for p in gone:
            p.unlink(missing_ok=True)
        return [p.name for p in gone]

    def write_predictions(self, frame: pd.DataFrame, epoch: int | None = None) -> None:
        """The best epoch's validation predictions; `epoch` is recorded in status.json as `predictions_epoch`."""
        write_csv(self.predictions_path, frame)
        if epoch is not None:
            self.write_status(predictions_epoch=epoch)

    def read_predictions(self) -> pd.DataFrame | None:
        if not self.predictions_path.exists():
            return None
        return pd.read_csv(self.predictions_path, dtype={"person_id": str})


def run_folder_path(runs_root: str | os.PathLike, ref: str) -> Path | None:
    """The folder `ref` names when it is a path rather than a bare run name (None for a bare name).

    A path: it has a separator, starts with '.' or '~', or is not a run in `runs_root` but is a folder with a
    config.json here.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError("a run name or run folder path is needed, got an empty one")
    looks_like_path = os.sep in ref or (os.altsep and os.altsep in ref) or ref.startswith((".", "~"))
    if not looks_like_path:
        if (Path(runs_root) / ref).is_dir() or not (Path(ref) / "config.json").exists():
            return None
    path = Path(ref).expanduser().resolve()
    if path.name in ("", "/"):
        raise ValueError(f"run folder {ref!r} is not a run folder")
    return path


def create_run(runs_root: str | os.PathLike, name: str, config) -> "RunDir":
    """Create the run folder atomically with its config.json: one name, one run; an existing name is refused.

    Every way of starting a run (CLI train, jobs submit, the studio) comes through here.
    """
    run = RunDir(runs_root, name)
    Path(runs_root).mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(run.path)
    except FileExistsError:
        raise ValueError(f"a run named {name!r} already exists in {runs_root}: choose another name, or continue it "
                         f"with `maskcls train --resume {name}`") from None
    write_text(run.config_path, config.to_json())
    return run


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """torch.save to a temp file, then os.replace: a kill mid-write leaves the previous file intact."""
    with atomic_path(path) as tmp:
        try:
            torch.save({"format": CKPT_FORMAT, **payload}, tmp)
        except RuntimeError as e:  # torch's writer reports a full disk as "inline_container.cc: unexpected pos"
            raise OSError(errno.EIO, write_failure_reason(tmp, e)) from e


def write_failure_reason(tmp: Path, error: BaseException) -> str:
    """Why a write failed, in words: a full disk or a file-size limit says so rather than torch's internals."""
    import resource
    import shutil
    try:
        free = shutil.disk_usage(tmp.parent).free
    except OSError:
        free = None
    size = tmp.stat().st_size if tmp.exists() else 0
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if free is not None and free < 64 * 2**20:
        return f"no space left on the device ({free / 2**20:.1f} MB free)"
    if limit != resource.RLIM_INFINITY and size >= limit - 4096:
        return f"file too large for this process's file-size limit ({limit:,} bytes)"
    return f"the writer failed ({str(error).splitlines()[0][:160]})"


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


def is_run_folder(path: Path) -> bool:
    """A run folder holds the config.json and status.json every run writes as it is created; a folder that
    merely holds a config.json (someone's configs) is not one."""
    return path.is_dir() and (path / "config.json").is_file() and (path / "status.json").is_file()


def list_runs(runs_root: str | os.PathLike) -> list[RunDir]:
    root = Path(runs_root)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if is_run_folder(p):
            try:
                out.append(RunDir(root, p.name))
            except ValueError:
                continue
    return out
