"""Eval-set predictions as background jobs: one folder each under <runs_root>/submissions/.

submissions/<name>/ request.json status.json log.txt submission.csv submission.probs.csv

A long prediction (many members, a large eval set, a CPU) outlives the studio page that started it,
like a training job: a detached `python -m maskcls predict --job NAME` process whose state is read
from status.json and the liveness of its pid. It does not queue behind training: it is short, and
on one GPU it shares the device.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from maskcls.common.fileio import check_name, inside, read_json, write_text
from maskcls.common.jobfolder import Cancelled, JobFolder, now, raise_cancelled_on_sigterm
from maskcls.common.procs import proc_start, spawn_detached

FOLDER = "submissions"


@dataclass
class PredictRequest:
    """Everything a prediction needs; the CLI, the studio and the job process share it."""

    data_root: str
    members: list[str] = field(default_factory=list)  # RUN[:CHECKPOINT[:WEIGHT]]
    method: str = "soft"
    tta: bool = False
    tuned: bool = False
    device: str = "auto"
    cache_dir: str | None = None

    def validate(self) -> "PredictRequest":
        from maskcls.infer.ensemble import METHODS
        from maskcls.infer.predict import Member
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {self.method!r}")
        if not self.members:
            raise ValueError("members: expected at least one RUN[:CHECKPOINT], got none")
        for m in self.members:
            Member.parse(m)
        if not str(self.data_root).strip():
            raise ValueError("data_root: expected a data root holding eval/info.csv, got an empty path")
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "PredictRequest":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown prediction request key(s): {', '.join(sorted(unknown))}")
        return cls(**d).validate()


class PredictionDir(JobFolder):
    """One eval prediction's folder; state, log and cancel come from JobFolder."""

    kind = "prediction"

    def __init__(self, runs_root: str | os.PathLike, name: str):
        self.name = check_name(name, "prediction name")
        self.root = Path(runs_root)
        self.path = inside(runs_root, FOLDER, self.name)

    request_path = property(lambda self: self.path / "request.json")
    csv_path = property(lambda self: self.path / "submission.csv")

    def read_request(self) -> PredictRequest:
        return PredictRequest.from_dict(read_json(self.request_path))


def create_prediction(request: PredictRequest, runs_root: str | os.PathLike, name: str) -> PredictionDir:
    """The prediction's folder with its request, made atomically: one name, one prediction."""
    request.validate()
    job = PredictionDir(runs_root, name)
    job.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(job.path)
    except FileExistsError:
        raise ValueError(f"a prediction named {name!r} already exists in {job.path.parent}; choose another name") from None
    write_text(job.request_path, request.to_json())
    job.write_status(state="queued", submitted=now(), progress=0.0, stage="starting")
    return job


def new_name(runs_root: str | os.PathLike) -> str:
    """pred-<date>-<time>, with a counter if that folder exists already."""
    base = f"pred-{time.strftime('%Y%m%d-%H%M%S')}"
    name, i = base, 1
    while (Path(runs_root) / FOLDER / name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def submit_prediction(request: PredictRequest, runs_root: str | os.PathLike, name: str) -> PredictionDir:
    """Create the prediction folder and start its detached process; returns at once."""
    job = create_prediction(request, runs_root, name)
    args = [sys.executable, "-m", "maskcls", "predict", "--job", job.name,
            "--runs-root", str(Path(runs_root).resolve())]
    pid = spawn_detached(args, job.log_path)
    job.write_status(pid=pid, pid_start=proc_start(pid), pgid=pid)
    return job


def predict_now(request: PredictRequest, runs_root: str | os.PathLike, name: str, progress=None) -> dict:
    """Predict in this process (short jobs), leaving the same folder a background job leaves."""
    job = create_prediction(request, runs_root, name)
    job.write_status(pid=os.getpid(), pid_start=proc_start(os.getpid()), in_process=True)
    return execute(job, progress)


def list_predictions(runs_root: str | os.PathLike) -> list[dict]:
    """Every prediction's state, newest first."""
    folder = Path(runs_root) / FOLDER
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        if p.is_dir() and (p / "status.json").exists():
            try:
                job = PredictionDir(runs_root, p.name)
                req = job.read_request()
                out.append({**job.state(), "members": req.members, "method": req.method, "tta": req.tta})
            except (ValueError, OSError, TypeError):
                continue  # not a prediction folder (or a damaged one): never breaks the listing
    return sorted(out, key=lambda s: -(s.get("submitted") or 0))


def cancel_prediction(runs_root: str | os.PathLike, name: str, grace: float = 5.0) -> dict:
    return PredictionDir(runs_root, name).cancel(grace)


def run_prediction(runs_root: str | os.PathLike, name: str) -> dict:
    """The background job process: a SIGTERM (cancel) ends it with state `cancelled`."""
    job = PredictionDir(runs_root, name)

    raise_cancelled_on_sigterm()
    job.write_status(pid=os.getpid(), pid_start=proc_start(os.getpid()), pgid=os.getpgid(0))
    return execute(job)


def execute(job: PredictionDir, progress=None) -> dict:
    """Predict, write the CSV into the folder, and leave a final status either way."""
    from maskcls.common.devices import resolve_device
    from maskcls.infer.ensemble import predict_submission
    from maskcls.infer.predict import Member
    from maskcls.train.rundir import CheckpointError
    req = job.read_request()
    job.write_status(state="running", started=now())
    last = [0.0]

    def report(fraction: float, text: str) -> None:
        if progress:
            progress(fraction, text)
        if time.monotonic() - last[0] > 0.5 or fraction >= 1.0:  # status writes are cheap, not free
            last[0] = time.monotonic()
            job.write_status(state="running", progress=round(float(fraction), 4), stage=text)
    job.log(f"predicting {req.data_root} with {req.method} over {', '.join(req.members)}"
            f"{' + flip TTA' if req.tta else ''}")
    try:
        r = predict_submission(req.data_root, job.root, [Member.parse(m) for m in req.members], req.method,
                               job.csv_path, resolve_device(req.device), req.tta, req.tuned, req.cache_dir, report)
    except Cancelled:
        job.log("cancelled")
        return job.write_status(state="cancelled", ended=now(), pid=None)
    except (ValueError, CheckpointError, OSError, RuntimeError) as e:
        job.log(f"failed: {e}")
        return job.write_status(state="failed", ended=now(), error=str(e), pid=None)
    except BaseException as e:  # a Streamlit rerun or stop, Ctrl-C: never leave it "running"
        job.write_status(state="failed", ended=now(), error=f"interrupted ({type(e).__name__})", pid=None)
        raise
    summary = {"rows": r["rows"], "score": r["score"], "seconds": r["seconds"], "chosen": r.get("chosen"),
               "greedy_val_f1": r.get("greedy_val_f1"), "notes": r.get("notes", []),
               "greedy_steps": r["greedy_steps"].to_dict("records") if "greedy_steps" in r else None}
    job.log(f"wrote {r['csv']} ({r['rows']} rows) in {r['seconds']['total']} s")
    return job.write_status(state="completed", ended=now(), progress=1.0, stage="done", pid=None, **summary)


# image passes (images x members x TTA views) above which the studio suggests a background job
LONG_WORK = {"cpu": 10_000, "cuda": 250_000}


def suggest_background(n_images: int, n_members: int, tta: bool, device_type: str) -> bool:
    """Would this prediction keep the page busy for long (roughly half a minute or more)?"""
    work = n_images * max(n_members, 1) * (2 if tta else 1)
    return work > LONG_WORK.get(device_type, LONG_WORK["cpu"])


def read_submission(job: PredictionDir):
    """The written submission as a frame (ImageID, ans); a clear error while there is none."""
    import pandas as pd
    if not job.csv_path.exists():
        raise ValueError(f"prediction {job.name!r} has no submission.csv yet (state: {job.state().get('state')})")
    return pd.read_csv(job.csv_path, dtype={"ImageID": str})
