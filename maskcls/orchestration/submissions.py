"""Submissions: the eval set predicted by an ensemble, as a job in its own folder under <runs_root>/submissions/.

submissions/<name>/ request.json status.json log.txt submission.csv submission.probs.csv

A long one (many members, a large eval set, a CPU) outlives the studio page that started it, like a training
job (maskcls.common.jobfolder's lifecycle: `python -m maskcls.orchestration.worker submission FOLDER`); a short one runs in
the page's process and leaves the same folder. It does not queue behind training: it is short, and on one GPU
it shares the device.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from maskcls.common.fileio import check_name, inside, read_json, write_text
from maskcls.common.jobfolder import JobFolder, now, this_process
from maskcls.infer.methods import METHODS

FOLDER = "submissions"


@dataclass
class SubmissionRequest:
    """Everything a submission needs; the CLI, the studio and the job process share it."""

    data_root: str
    members: list[str] = field(default_factory=list)  # RUN[:CHECKPOINT[:WEIGHT]]
    method: str = "soft"
    tta: bool = False
    tuned: bool = False
    device: str = "auto"
    cache_dir: str | None = None

    def validate(self) -> "SubmissionRequest":
        from maskcls.infer.members import Member
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
    def from_dict(cls, d: dict) -> "SubmissionRequest":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown submission request key(s): {', '.join(sorted(unknown))}")
        return cls(**d).validate()


class SubmissionFolder(JobFolder):
    """One submission's folder: the request, the CSV pair, and the job that writes them."""

    kind = "submission"
    worker = "submission"

    def __init__(self, runs_root: str | os.PathLike, name: str):
        self.name = check_name(name, "submission name")
        self.root = Path(runs_root)
        self.path = inside(runs_root, FOLDER, self.name)

    @classmethod
    def at(cls, path) -> "SubmissionFolder":
        path = Path(path)
        return cls(path.parent.parent, path.name)

    request_path = property(lambda self: self.path / "request.json")
    csv_path = property(lambda self: self.path / "submission.csv")

    def read_request(self) -> SubmissionRequest:
        return SubmissionRequest.from_dict(read_json(self.request_path))

    def work(self, progress=None) -> None:
        """Predict the eval set and write the CSV pair into the folder."""
        from maskcls.common.devices import resolve_device
        from maskcls.infer.ensemble import predict_submission
        from maskcls.infer.members import Member
        req = self.read_request()
        last = [0.0]

        def report(fraction: float, text: str) -> None:
            if progress:
                progress(fraction, text)
            if time.monotonic() - last[0] > 0.5 or fraction >= 1.0:  # status writes are cheap, not free
                last[0] = time.monotonic()
                self.write_status(progress=round(float(fraction), 4), stage=text)
        self.log(f"predicting {req.data_root} with {req.method} over {', '.join(req.members)}"
                 f"{' + flip TTA' if req.tta else ''}")
        r = predict_submission(req.data_root, self.root, [Member.parse(m) for m in req.members], req.method,
                               self.csv_path, device=resolve_device(req.device), tta=req.tta, tuned=req.tuned,
                               cache_dir=req.cache_dir, progress=report, own_place=True)
        summary = {"rows": r["rows"], "score": r["score"], "seconds": r["seconds"], "chosen": r.get("chosen"),
                   "greedy_val_f1": r.get("greedy_val_f1"), "notes": r.get("notes", []),
                   "greedy_steps": r["greedy_steps"].to_dict("records") if "greedy_steps" in r else None}
        self.log(f"wrote {r['csv']} ({r['rows']} rows) in {r['seconds']['total']} s")
        self.write_status(state="completed", ended=now(), progress=1.0, stage="done", pid=None, **summary)

    def run_here(self, progress=None) -> dict:
        """Predict in this process (a short submission from a page), leaving what a background job leaves; a
        failure ends in the status, not as an exception (a page's rerun or stop too: never left "running")."""
        self.write_status(**this_process(), in_process=True)
        try:
            with self.working(signals=False):
                self.work(progress)
        except Exception:
            pass  # written into the status by working()
        return self.read_status()


def create_submission(request: SubmissionRequest, runs_root: str | os.PathLike, name: str) -> SubmissionFolder:
    """The submission's folder with its request, made atomically: one name, one submission."""
    request.validate()
    job = SubmissionFolder(runs_root, name)
    job.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(job.path)
    except FileExistsError:
        raise ValueError(f"a submission named {name!r} already exists in {job.path.parent}; choose another "
                         f"name") from None
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


def start_submission(request: SubmissionRequest, runs_root: str | os.PathLike, name: str) -> SubmissionFolder:
    """Create the submission's folder and start its detached job; returns at once."""
    job = create_submission(request, runs_root, name)
    job.start(stage="starting")
    return job


def submit_here(request: SubmissionRequest, runs_root: str | os.PathLike, name: str, progress=None) -> dict:
    """Create the submission's folder and predict in this process (short jobs)."""
    return create_submission(request, runs_root, name).run_here(progress)


def list_submissions(runs_root: str | os.PathLike) -> list[dict]:
    """Every submission's state, newest first."""
    folder = Path(runs_root) / FOLDER
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        if p.is_dir() and os.path.lexists(p / "status.json"):
            try:
                job = SubmissionFolder(runs_root, p.name)
            except ValueError:
                continue  # a folder whose name no submission could have
            state = job.state()
            try:
                req = job.read_request()
                row = {**state, "members": req.members, "method": req.method, "tta": req.tta}
            except (ValueError, OSError, TypeError) as e:  # damaged: named in the listing, never breaks it
                row = {"name": p.name, "state": "damaged", "error": f"request.json: {e}"[:300]}
            if "score" in row and not valid_score(row["score"]):
                row = {**row, "score": None, "error": "status.json holds a demo score of the wrong shape: not shown"}
            out.append(row)
    return sorted(out, key=lambda s: -(s.get("submitted") or 0) if isinstance(s.get("submitted"), (int, float))
                  else 0)


def valid_score(score) -> bool:
    """A demo score as a submission writes it: macro F1 (and its interval) within [0, 1], or none."""
    if score is None:
        return True
    if not isinstance(score, dict):
        return False
    unit = [score.get("macro_f1"), *(score.get("macro_f1_ci") or [])]
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in unit) and \
        (score.get("macro_f1_ci") is None or len(score["macro_f1_ci"]) == 2)


def cancel_submission(runs_root: str | os.PathLike, name: str, grace: float = 5.0) -> dict:
    return SubmissionFolder(runs_root, name).cancel(grace)


# image passes (images x members x TTA views) above which the studio suggests a background job
LONG_WORK = {"cpu": 10_000, "cuda": 250_000}


def suggest_background(n_images: int, n_members: int, tta: bool, device_type: str) -> bool:
    """Would this submission keep the page busy for long (roughly half a minute or more)?"""
    work = n_images * max(n_members, 1) * (2 if tta else 1)
    return work > LONG_WORK.get(device_type, LONG_WORK["cpu"])


def read_submission(job: SubmissionFolder):
    """The written submission as a frame (ImageID, ans); a clear error while there is none."""
    if not job.csv_path.exists():
        raise ValueError(f"submission {job.name!r} has no submission.csv yet (state: {job.state().get('state')})")
    from maskcls.common.fileio import read_user_csv
    return read_user_csv(job.csv_path, root=job.path, dtype={"ImageID": str})
