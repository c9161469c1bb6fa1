"""A run is a folder under the runs root; every file in it is written atomically.

checkpoints/<run>/ config.json status.json metrics.jsonl log.txt epoch_NNN.pt best.pt last.pt
                   val_predictions.csv (best epoch: path, person_id, label, p0..p17)
"""
from __future__ import annotations

import fcntl
import re
import json
import os
from pathlib import Path

from maskcls.common.checkpoints import CheckpointError, load_checkpoint
from maskcls.common.fileio import (LIMITS, NAME_RE, check_name, inside, is_reserved, json_kind, read_json,
                                   read_text_file, write_csv, write_text)
from maskcls.common.jobfolder import JobFolder
from maskcls.common.runuse import RunUse

from maskcls.common.runrefs import TEAM_DIR, run_folder_path  # noqa: F401  (re-exported: where they were)
PULLED_FILE = ".team.json"  # in a pulled run: where it came from; the run is read-only here


class RunFolder(RunUse, JobFolder):
    """One training run's folder; state, log and cancel come from JobFolder."""

    kind = "run"
    lock_names = (".job.lock", ".train.lock")  # the job process (queued or a sweep's trial), the trainer

    def __init__(self, runs_root: str | os.PathLike, name: str):
        self.name = check_name(name)
        self.root = Path(runs_root)
        self.path = inside(runs_root, self.name)

    @classmethod
    def open(cls, runs_root: str | os.PathLike, ref: str) -> "RunFolder":
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

    @classmethod
    def existing(cls, runs_root: str | os.PathLike, ref: str) -> "RunFolder":
        """`open`, refusing a name or path that holds no run folder (a command's first check of what it was given)."""
        run = cls.open(runs_root, ref)
        if not run.exists():
            raise ValueError(f"no run named {ref!r} in {run.root}")
        return run

    def pulled(self) -> dict | None:
        """Where a teammate's pulled run came from (member, store, version), None for a run of this machine."""
        try:
            origin = read_json(self.path / PULLED_FILE, PULLED_FILE, root=self.path)
        except (OSError, ValueError):
            return None
        return origin if isinstance(origin, dict) else None

    @property
    def local_dir(self) -> Path:
        """Where this machine writes its own files about the run (its tuned class biases, what uses it): the run
        folder, or beside a teammate's pulled run (read-only here), <runs root>/team/.local/MEMBER/RUN."""
        if self.pulled():
            return self.path.parent.parent / ".local" / self.path.parent.name / self.name
        return self.path

    def refuse_if_pulled(self, action: str) -> None:
        """Training, resuming and deleting belong to the run's owner: a pulled copy is read-only."""
        origin = self.pulled()
        if origin:
            raise ValueError(f"cannot {action} {origin.get('member')}/{origin.get('run')}: it is a teammate's run "
                             f"pulled from the team store (read-only here); evaluate, compare, review and ensemble it, "
                             f"or train a run of your own from its config")

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
        """One dict per epoch; a torn line (a killed writer) or a line of the wrong shape is left out."""
        rows = []
        try:
            text = read_text_file(self.metrics_path, "metrics.jsonl", LIMITS["metrics"], root=self.path,
                                  errors="replace")
        except (OSError, ValueError):
            return rows  # missing, a folder, a FIFO, too large, a link out of the run: no epochs to show
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(row, dict) and _numeric_epoch(row):
                rows.append(row)
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
        """The run's config.json as written: a JSON object (bounded, inside the run). Its schema is checked where a
        RunConfig is made: `maskcls.train.config.run_config(run)` for anything that uses its values."""
        try:
            cfg = read_json(self.config_path, "config.json", root=self.path)
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.config_path} is not valid JSON ({e.msg} at line {e.lineno})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{self.config_path} is not UTF-8 text (expected a JSON object)") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"{self.config_path} holds a JSON {json_kind(cfg)}, expected an object of config keys")
        return cfg

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

    def write_predictions(self, frame, epoch: int | None = None) -> None:
        """The best epoch's validation predictions; `epoch` is recorded in status.json as `predictions_epoch`."""
        write_csv(self.predictions_path, frame)
        if epoch is not None:
            self.write_status(predictions_epoch=epoch)

    history_path = property(lambda self: self.path / "val_history.csv")

    def write_history(self, frame, epoch: int, predicted) -> None:
        """Add (or replace) epoch `epoch`'s predicted classes in val_history.csv, dropping later epochs (a resume
        from an earlier checkpoint): what a selection-free figure needs, since the best epoch is chosen on the same
        people it is scored on."""
        from maskcls.common.predictions import EPOCH_PREFIX, epoch_columns
        history = self.read_history()
        if history is None or list(history["path"]) != list(frame["path"]):
            history = frame[["path", "person_id", "label"]].copy()
        history = history.drop(columns=[c for c in epoch_columns(history) if int(c[1:]) >= epoch])
        history[f"{EPOCH_PREFIX}{epoch}"] = predicted
        write_csv(self.history_path, history)

    def read_history(self):
        """val_history.csv (None for a run from before it was written, or one without validation)."""
        from maskcls.common.predictions import read_history_table
        return read_history_table(self.history_path, root=self.path) if os.path.lexists(self.history_path) \
            else None

    intervals_path = property(lambda self: self.path / "intervals.json")

    def write_intervals(self, intervals: dict) -> None:
        """The best epoch's macro F1 with its interval over people (maskcls.train.intervals.run_intervals), stored
        beside its predictions so no page draw recomputes it."""
        from maskcls.common.fileio import write_json
        write_json(self.intervals_path, intervals)

    def read_intervals(self) -> dict | None:
        """intervals.json as written at the best epoch (None for a run from before, or one without validation)."""
        try:
            out = read_json(self.intervals_path, "intervals.json", root=self.path)
        except (OSError, ValueError):
            return None
        return out if valid_intervals(out) else None

    fingerprints_path = property(lambda self: self.path / "fingerprints.json")

    def write_fingerprints(self, prints: dict) -> None:
        """The data and split fingerprints the run trained on, written once when it starts (a resume keeps them):
        what it learned from, whatever corrections are accepted later."""
        from maskcls.common.fileio import write_json
        if not self.fingerprints_path.exists():
            write_json(self.fingerprints_path, {"data": prints.get("data", ""), "split": prints.get("split", "")})

    def keep_corrections(self, source: str) -> None:
        """A copy of the corrections file the run trains with, taken when it starts: what a push sends, whatever
        is accepted into the file later (none for no file or the shipped community list)."""
        from maskcls.common.fileio import LIMITS, read_bounded, write_bytes
        target = self.path / "corrections.csv"
        if source in ("", "none", "community") or target.exists() or self.pulled():
            return
        write_bytes(target, read_bounded(source, "corrections file", LIMITS["table"]))

    def read_fingerprints(self) -> dict | None:
        """{"data", "split"} as fixed when the run trained; None for a run from before, or a damaged file."""
        try:
            out = read_json(self.fingerprints_path, "fingerprints.json", root=self.path)
        except (OSError, ValueError):
            return None
        return out if valid_fingerprints(out) else None

    def read_predictions(self):
        """The best epoch's validation predictions (a DataFrame), None before there are any; a damaged table raises
        TableError naming the file and what is wrong."""
        from maskcls.common.predictions import read_predictions_table
        if not os.path.lexists(self.predictions_path):
            return None  # a link, a FIFO or a folder in its place is read (and refused by name), never taken as none
        return read_predictions_table(self.predictions_path, f"validation predictions of run {self.name!r}",
                                      root=self.path)


METRIC_KEYS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr", "seconds", "images_per_s")


UNIT_KEYS = ("val_accuracy", "val_macro_f1")  # fractions: a value outside [0, 1] is no accuracy or F1


def _numeric_epoch(row: dict) -> bool:
    """A metrics row whose figures are finite numbers (or null), accuracy and F1 within [0, 1], so every table,
    curve and sort can use it (a NaN or a 7.5 macro F1 would sort as a real figure)."""
    for k in METRIC_KEYS:
        v = row.get(k)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            return False
        if k in UNIT_KEYS and not 0 <= v <= 1:
            return False
    return isinstance(row.get("epoch"), int) and not isinstance(row.get("epoch"), bool) and row["epoch"] >= 0


def valid_intervals(out) -> bool:
    """intervals.json of the right shape: a macro F1 interval of two numbers within [0, 1], low before high."""
    if not isinstance(out, dict):
        return False
    ci = out.get("macro_f1_ci")
    if not isinstance(ci, list) or len(ci) != 2:
        return False
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in ci):
        return False
    return ci[0] <= ci[1]


def valid_fingerprints(out) -> bool:
    """fingerprints.json's schema: a 16-hex data fingerprint and a 16-hex (or empty) split fingerprint."""
    hexed = lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{16}", v) is not None  # noqa: E731
    return isinstance(out, dict) and hexed(out.get("data")) and (out.get("split") == "" or hexed(out.get("split")))


def create_run(runs_root: str | os.PathLike, name: str, config) -> "RunFolder":
    """Create the run folder atomically with its config.json: one name, one run; an existing name is refused.

    Every way of starting a run (CLI train, jobs submit, the studio) comes through here.
    """
    from maskcls.common.settings import check_runs_root
    run = RunFolder(check_runs_root(str(runs_root)), name)
    Path(runs_root).mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(run.path)
    except FileExistsError:
        raise ValueError(f"a run named {name!r} already exists in {runs_root}: choose another name, or continue it "
                         f"with `maskcls train --resume {name}`") from None
    write_text(run.config_path, config.with_absolute_paths().to_json())
    return run


def predictions_frame(paths, person_ids, labels, probs):
    """path, person_id, label, p0..p17: the table every prediction file holds."""
    import numpy as np
    import pandas as pd
    frame = pd.DataFrame({"path": list(paths), "person_id": list(person_ids), "label": np.asarray(labels, int)})
    probs = np.asarray(probs, dtype=np.float32)
    return pd.concat([frame, pd.DataFrame(probs, columns=[f"p{i}" for i in range(probs.shape[1])])], axis=1)


def probs_of(frame):
    """The (N, 18) float32 probabilities of a predictions table."""
    import numpy as np
    return frame[[f"p{i}" for i in range(18)]].to_numpy(np.float32)


def is_run_folder(path: Path) -> bool:
    """A run folder holds the config.json and status.json every run writes as it is created; a folder that
    merely holds a config.json (someone's configs) is not one."""
    return path.is_dir() and (path / "config.json").is_file() and (path / "status.json").is_file()


def list_runs(runs_root: str | os.PathLike) -> list[RunFolder]:
    root = Path(runs_root)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if is_run_folder(p):
            try:
                out.append(RunFolder(root, p.name))
            except ValueError:
                continue
    return out


def damaged_folders(runs_root: str | os.PathLike) -> list[tuple[str, str]]:
    """(name, what is missing) of folders that hold one of a run's two first files but not the other: a run
    damaged by hand or by a full disk, shown by name rather than left out of every list."""
    root = Path(runs_root)
    out = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if p.name.startswith(".") or not NAME_RE.match(p.name) or not p.is_dir() or is_reserved(p.name):
            continue
        has = [(p / f).is_file() for f in ("config.json", "status.json")]
        if has == [True, False]:
            out.append((p.name, "no status.json"))
        elif has == [False, True]:
            out.append((p.name, "no config.json"))
    return out


def list_pulled(runs_root: str | os.PathLike) -> list[tuple[str, RunFolder]]:
    """(MEMBER/RUN, run folder) of every teammate's run pulled into <runs root>/team/."""
    team = Path(runs_root) / TEAM_DIR
    if not team.is_dir():
        return []
    return [(f"{m.name}/{r.name}", r) for m in sorted(team.iterdir()) if m.is_dir() and NAME_RE.match(m.name)
            for r in list_runs(m) if (r.path / PULLED_FILE).is_file()]
