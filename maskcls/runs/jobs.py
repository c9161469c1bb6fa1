"""Background training jobs coordinated through the file system: no daemon, nothing lost on a restart.

A job is a run folder plus a detached `python -m maskcls train --job NAME --queue` process in its own
process group. That process waits for a slot of its device (maskcls.train.queue). A job's state is read
from its status.json *and* the liveness of its pid (maskcls.common.jobfolder): a queued/running job whose
process is gone is shown as failed (lost), never as running forever.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from maskcls.common.devices import device_of
from maskcls.common.jobfolder import Cancelled, now, raise_cancelled_on_sigterm
from maskcls.common.procs import proc_start, spawn_detached
from maskcls.train.config import RunConfig
from maskcls.train.queue import wait_for_slot
from maskcls.train.rundir import RunDir, create_run, list_runs


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

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def submit(cfg: RunConfig, runs_root: str | os.PathLike, name: str, slots: int = 1) -> RunDir:
    """Create the run and start its detached job process; returns at once (the job may be queued)."""
    cfg.validate()
    from maskcls.models.backbones import check_model
    check_model(cfg.model, cfg.image_size)
    if not cfg.data_root or not os.path.isdir(cfg.data_root):
        raise ValueError(f"data root {cfg.data_root!r} is not a folder: expected a data root in the competition layout "
                         f"(train/images/, eval/)")
    device = device_of(cfg.device)
    run = create_run(runs_root, name, cfg)
    run.write_status(state="queued", device=device, submitted=now(), progress=0.0, epoch=0, epochs=cfg.epochs,
                     slots=slots)
    env = dict(os.environ)
    if device.startswith("cuda:"):
        first = int(device.split(":")[1])
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(first + i) for i in range(cfg.gpus))
    else:  # CPU jobs share the cores: oversubscribed OpenMP threads slow every job down many times over
        threads = str(max(1, (os.cpu_count() or 1) // slots))
        env["OMP_NUM_THREADS"] = env["MASKCLS_THREADS"] = threads
    env["PYTHONUNBUFFERED"] = "1"
    args = [sys.executable, "-m", "maskcls", "train", "--job", run.name, "--runs-root", str(Path(runs_root).resolve()),
            "--queue", "--slots", str(slots)]
    pid = spawn_detached(args, run.log_path, env)
    run.write_status(pid=pid, pid_start=proc_start(pid), pgid=pid)
    return run


def submit_folds(cfg: RunConfig, runs_root: str | os.PathLike, name: str, k: int) -> list[str]:
    """Queue K fold runs NAME-fold1..K as background jobs (one after another per device slot); the last one to
    end writes NAME-oof.csv."""
    from maskcls.runs.kfold import check_free, fold_configs, fold_names
    names = fold_names(name, k)
    check_free(runs_root, names)
    return [submit(c, runs_root, n).name for n, c in zip(names, fold_configs(cfg, k))]


def job_info(run: RunDir) -> JobInfo:
    """The run's state as the job-folder model derives it (a dead process reads as failed, lost)."""
    st = run.state()
    return JobInfo(name=run.name, state=st["state"], device=st.get("device", "?"),
                   progress=float(st.get("progress", 0.0)), epoch=int(st.get("epoch", 0)),
                   epochs=int(st.get("epochs", 0)), best_f1=st.get("best_f1"), started=st.get("started"),
                   ended=st.get("ended"), submitted=st.get("submitted"), error=st.get("error"), pid=st.get("pid"))


def list_jobs(runs_root: str | os.PathLike) -> list[JobInfo]:
    return [job_info(r) for r in list_runs(runs_root) if r.status_path.exists()]


def cancel(runs_root: str | os.PathLike, name: str, grace: float = 5.0) -> JobInfo:
    """SIGTERM the job's process group, SIGKILL after `grace` seconds; the state ends `cancelled`."""
    run = RunDir(runs_root, name)
    run.cancel(grace)
    return job_info(run)


def run_job(runs_root: str | os.PathLike, name: str, slots: int = 1) -> dict:
    """The job process: wait in the queue for the device, then train (under torchrun when gpus > 1)."""
    from maskcls.train.driver import run_training
    run = RunDir(runs_root, name)
    cfg = RunConfig.from_dict(run.read_config())
    device = run.read_status().get("device") or device_of(cfg.device)
    run.write_status(pid=os.getpid(), pid_start=proc_start(os.getpid()), pgid=os.getpgid(0))
    raise_cancelled_on_sigterm("cancelled while queued")
    try:
        held = wait_for_slot(run, device, slots)
    except Cancelled:
        run.write_status(state="cancelled", ended=now(), pid=None)
        run.log("cancelled while queued")
        return run.read_status()
    run.log(f"device {device} free: starting")
    try:
        if cfg.gpus > 1:
            return _run_torchrun(run, cfg)
        if device.startswith("cuda"):
            cfg.device = "cuda"  # CUDA_VISIBLE_DEVICES maps the chosen GPU to cuda:0
        status = run_training(cfg, run, resume=True)  # picks up the newest good checkpoint, if any
        if cfg.fold >= 0:
            from maskcls.runs.kfold import collect_after
            oof = collect_after(run)
            if oof:
                run.log(f"all folds done: out-of-fold table {oof}")
        return status
    except Cancelled:
        return run.read_status()
    finally:
        for f in held:
            f.close()


def _run_torchrun(run: RunDir, cfg: RunConfig) -> dict:
    """Multi-GPU: the job process supervises `torchrun --nproc_per_node N` in its own process group."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.gpus}",
            "-m", "maskcls", "train", "--job", run.name, "--runs-root", str(run.root.resolve())]
    run.write_status(state="running", started=now(), launcher="torchrun")
    proc = subprocess.Popen(args)
    try:
        code = proc.wait()
    except BaseException:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        raise
    st = run.read_status()
    if code != 0 and st.get("state") == "running":
        run.write_status(state="failed", ended=now(), error=f"torchrun exited with code {code}", pid=None)
    return run.read_status()
