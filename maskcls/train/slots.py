"""Device slots: one queue per device, through `flock` files the kernel releases when a holder dies.

A job waits for a slot of its device: an exclusive lock on <runs_root>/.locks/<device>.<slot>, taken in
submission order (FIFO) among the live queued jobs of that device. No daemon: a crashed job never blocks.
"""
from __future__ import annotations

import fcntl
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from maskcls.common.devices import device_of
from maskcls.common.jobfolder import Cancelled, now, this_process
from maskcls.common.procs import is_alive
from maskcls.common.runfolder import RunFolder, list_runs

LOCK_DIR = ".locks"


def _slot_files(runs_root: Path, device: str, slots: int) -> list[Path]:
    folder = runs_root / LOCK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return [folder / f"{device.replace(':', '-')}.{i}.lock" for i in range(slots)]


def try_acquire(runs_root: Path, device: str, slots: int = 1):
    """A held slot (an open file with an exclusive flock), or None when all `slots` are busy."""
    for path in _slot_files(runs_root, device, slots):
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            f.close()
    return None


def _first_in_line(run: RunFolder, device: str) -> bool:
    """FIFO: no live queued job on this device was submitted before this one."""
    mine = run.read_status().get("submitted", 0)
    for other in list_runs(run.root):
        if other.name == run.name:
            continue
        st = other.read_status()
        if (st.get("state") == "queued" and st.get("device") == device and st.get("submitted", 0) < mine
                and is_alive(st.get("pid"), st.get("pid_start"))):
            return False
    return True


def wait_for_slot(run: RunFolder, device: str, slots: int = 1, poll: float = 0.5):
    """Block until this job may use `device`; returns the held lock files (keep them open while training)."""
    while True:
        if _first_in_line(run, device):
            held = try_acquire(run.root, device, slots)
            if held is not None:
                return [held]
        time.sleep(poll)


@contextmanager
def slot_held(run: RunFolder, device: str, slots: int = 1) -> Iterator[None]:
    """Hold `device`'s slot for the block (waiting for it first), released whatever happens."""
    held = wait_for_slot(run, device, slots)
    try:
        yield
    finally:
        for f in held:
            f.close()


@contextmanager
def trained_here(run: RunFolder, cfg, **fields) -> Iterator[object]:
    """The lifecycle of a run a worker trains in its own process (a claimed group run, a sweep trial), written once:
    the run's job lock (a cancel can verify this process), `queued` naming this process and `fields`, its device's
    slot; yields `cfg` with the GPU it got. A cancel (SIGTERM) leaves the run `cancelled`; locks are released
    whatever happens."""
    job_lock = run.hold_lock()
    device = device_of(cfg.device)
    run.write_status(state="queued", device=device, submitted=now(), progress=0.0, epoch=0, epochs=cfg.epochs,
                     **this_process(), **fields)
    try:
        with slot_held(run, device):
            if device.startswith("cuda"):
                cfg.device = device
            yield cfg
    except Cancelled:
        if run.read_status().get("state") in ("queued", "running"):
            run.write_status(state="cancelled", ended=now(), pid=None)
        raise
    finally:
        job_lock.close()
