"""Training jobs: a run folder trained by a detached process, coordinated through the file system (no daemon,
nothing lost on a restart).

`submit` creates the run and starts its job (maskcls.common.jobfolder's lifecycle: `python -m maskcls.orchestration.worker
train FOLDER`). That process waits for a slot of its device (maskcls.train.slots), then trains. A job's state is
read from its status.json *and* the liveness of its verified process: a queued/running job whose process is gone
is shown as failed (lost), never as running forever.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from maskcls.common.devices import device_of
from maskcls.common.jobfolder import Cancelled, now
from maskcls.common.runfolder import RunFolder, create_run, list_runs
from maskcls.train.config import RunConfig
from maskcls.train.slots import slot_held


@dataclass
class JobInfo:
    name: str
    state: str
    device: str
    progress: float
    epoch: int
    epochs: int
    best_f1: float | None
    started: float | None
    ended: float | None
    submitted: float | None
    error: str | None
    pid: int | None
    notes: list = field(default_factory=list)  # a cancel's word on what it did not signal, and why
    eta_s: float | None = None  # the job's own steady ETA when it last wrote (maskcls.train.pace)
    updated: float | None = None
    images_per_s: float | None = None
    stage: str | None = None  # what it prepares before its first epoch (the image cache, face boxes)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class TrainingJob(RunFolder):
    """A run folder trained by its own detached process: waits for its device's slot, then trains."""

    worker = "train"
    waits = True  # `queued` until the device is free

    @classmethod
    def at(cls, path) -> "TrainingJob":
        path = Path(path)
        return cls(path.parent, path.name)

    def work(self) -> None:
        from maskcls.train.driver import run_training
        cfg = RunConfig.from_dict(self.read_config())
        status = self.read_status()
        device = status.get("device") or device_of(cfg.device)
        with contextlib.ExitStack() as stack:
            try:  # 0 slots would never open
                stack.enter_context(slot_held(self, device, max(1, int(status.get("slots", 1)))))
            except Cancelled:
                self.log("cancelled while queued")
                raise
            self.log(f"device {device} free: starting")
            if cfg.gpus > 1:
                self._torchrun(cfg)
                return
            if device.startswith("cuda"):
                cfg.device = "cuda"  # CUDA_VISIBLE_DEVICES maps the chosen GPU to cuda:0
            run_training(cfg, self, resume=True)  # picks up the newest good checkpoint, if any
            after_training(self, cfg)

    def _torchrun(self, cfg: RunConfig) -> None:
        """Multi-GPU: this process supervises `torchrun --nproc_per_node N`, whose ranks train the folder."""
        args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.gpus}",
                "-m", "maskcls.orchestration.worker", "train-rank", str(self.path.resolve())]
        self.write_status(state="running", started=now(), launcher="torchrun")
        proc = subprocess.Popen(args)
        try:
            code = proc.wait()
        except BaseException:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            raise
        if code != 0 and self.read_status().get("state") == "running":
            self.write_status(state="failed", ended=now(), error=f"torchrun exited with code {code}", pid=None)


class TrainingRank(RunFolder):
    """One torchrun rank of a multi-GPU job: it trains; the job process around torchrun owns the lifecycle."""

    @classmethod
    def at(cls, path) -> "TrainingRank":
        path = Path(path)
        return cls(path.parent, path.name)

    def run(self) -> dict:
        from maskcls.train.driver import run_training
        return run_training(RunConfig.from_dict(self.read_config()), self, resume=True) or {"state": "completed"}


def job_threads(slots: int) -> int:
    """A CPU job's threads: its share of the cores, never more than the submitter's own share ($MASKCLS_THREADS,
    when it was given one: a job started from a job, or beside other work, must not oversubscribe the cores)."""
    threads = max(1, (os.cpu_count() or 1) // max(1, slots))
    cap = os.environ.get("MASKCLS_THREADS", "")
    return min(threads, int(cap)) if cap.isdigit() and int(cap) > 0 else threads


MAX_SLOTS = 64


def check_slots(slots) -> None:
    """Jobs per device at once: 0 would wait for a slot that never opens (and hold the device's queue)."""
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= MAX_SLOTS:
        raise ValueError(f"--slots (jobs per device at once) must be a whole number from 1 to {MAX_SLOTS}, got "
                         f"{slots!r}")


def submit(cfg: RunConfig, runs_root: str | os.PathLike, name: str, slots: int = 1) -> TrainingJob:
    """Create the run and start its job; returns at once (the job may be queued)."""
    from maskcls.train.driver import check_startable, warn_if_no_room
    check_slots(slots)
    check_startable(cfg)
    warn_if_no_room(cfg, runs_root)
    device = device_of(cfg.device)
    job = TrainingJob(create_run(runs_root, name, cfg).root, name)
    env = dict(os.environ)
    if device.startswith("cuda:"):
        first = int(device.split(":")[1])
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(first + i) for i in range(cfg.gpus))
    else:  # CPU jobs share the cores: oversubscribed OpenMP threads slow every job down many times over
        env["OMP_NUM_THREADS"] = env["MASKCLS_THREADS"] = str(job_threads(slots))
    job.start(env, device=device, progress=0.0, epoch=0, epochs=cfg.epochs, slots=slots)
    return job


def submit_folds(cfg: RunConfig, runs_root: str | os.PathLike, name: str, k: int) -> list[str]:
    """Queue K fold runs NAME-fold1..K as background jobs (one after another per device slot); the last one to
    end writes NAME-oof.csv."""
    from maskcls.orchestration.folds import check_enough_people, check_free, fold_configs, fold_names
    from maskcls.train.startable import check_startable
    names = fold_names(name, k)
    check_startable(cfg)
    check_free(runs_root, names)
    check_enough_people(cfg, k)
    return [submit(c, runs_root, n).name for n, c in zip(names, fold_configs(cfg, k))]


def job_info(run: RunFolder) -> JobInfo:
    """The run's state as the job-folder model derives it (a dead process reads as failed, lost)."""
    st = run.state()
    return JobInfo(name=run.name, state=st["state"], device=st.get("device", "?"),
                   progress=float(st.get("progress", 0.0)), epoch=int(st.get("epoch", 0)),
                   epochs=int(st.get("epochs", 0)), best_f1=st.get("best_f1"), started=st.get("started"),
                   ended=st.get("ended"), submitted=st.get("submitted"), error=st.get("error"), pid=st.get("pid"),
                   eta_s=st.get("eta_s"), updated=st.get("updated"), images_per_s=st.get("images_per_s"),
                   stage=st.get("stage"))


def list_jobs(runs_root: str | os.PathLike) -> list[JobInfo]:
    """Every run's job, then each damaged folder (one of config.json and status.json missing) as `damaged`."""
    from maskcls.common.jobfolder import DAMAGED
    from maskcls.common.runfolder import damaged_folders
    return [job_info(r) for r in list_runs(runs_root) if r.status_path.exists()] + [
        JobInfo(name, DAMAGED, "?", 0.0, 0, 0, None, None, None, None, f"damaged run folder: {why}", None)
        for name, why in damaged_folders(runs_root)]


def cancel(runs_root: str | os.PathLike, name: str, grace: float = 5.0) -> JobInfo:
    """SIGTERM the job's verified process (its group when it leads one), SIGKILL after `grace` seconds; the state
    ends `cancelled`. The result's `notes` say what was not signalled and why."""
    run = RunFolder(runs_root, name)
    notes = run.cancel(grace)["notes"]
    info = job_info(run)
    info.notes = notes
    return info


def after_training(run: RunFolder, cfg: RunConfig) -> None:
    """What follows a finished run wherever it trained (a job, a claimed group run): a fold's out-of-fold table once
    its group is whole, and the push a `--push` asked for."""
    from maskcls.orchestration.folds import collect_after
    from maskcls.orchestration.team.autopush import push_if_asked
    if cfg.fold >= 0:
        oof = collect_after(run)
        if oof:
            run.log(f"all folds done: out-of-fold table {oof}")
    push_if_asked(run)
