"""Processes that outlive the page that started them: spawn detached, tell if alive, and signal only our own.

Liveness is checked by pid *and* kernel start time, so a recycled pid never passes for a job. A status.json is
a file anyone with the runs root can write (runs roots are shared between teammates), so nothing read from one
alone chooses what gets signalled: the process must also carry the job's marker in its environment (set when
the project spawned it) or hold the job folder's lock, and its group is signalled only when it leads that group.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from maskcls.common.settings import REPO  # detached jobs start in the checkout: `python -m maskcls` resolves there

JOB_ENV = "MASKCLS_JOB"  # the job folder a spawned process works for, in its environment from its first instruction


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, session, ... (None if there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        return None
    return stat[stat.rfind(")") + 2:].split()


def proc_start(pid: int) -> int | None:
    """Kernel start time of `pid` (clock ticks since boot), None if no such live process (zombies count as dead)."""
    fields = _stat_fields(int(pid))
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def live_group(pid: int) -> int | None:
    """The process group `pid` is in now, read from the kernel (never from a file)."""
    fields = _stat_fields(int(pid))
    return int(fields[2]) if fields is not None else None


def is_alive(pid: int | None, start: int | None = None) -> bool:
    """True if `pid` runs and (when `start` is known) is the same process, not a recycled pid."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    s = proc_start(pid)
    return s is not None and (start is None or s == start)


def spawn_detached(args: list[str], log_path: Path, env: dict | None = None) -> int:
    """Start `args` in its own session (so it outlives the studio, and leads its own process group) with output
    appended to `log_path`; its environment names the job folder (JOB_ENV) so a cancel can verify it."""
    env = dict(env if env is not None else os.environ, PYTHONUNBUFFERED="1")
    env[JOB_ENV] = str(Path(log_path).parent.resolve())
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, cwd=str(REPO))
    threading.Thread(target=proc.wait, daemon=True).start()  # reap it when it ends, while we live
    return proc.pid


class NotOurs(ValueError):
    """The process a status names cannot be verified as the job's own: nothing is signalled."""


@dataclass(frozen=True)
class JobProcess:
    """A verified job process: signal `pid`, and its whole group only when `leads_group`."""

    pid: int
    start: int
    leads_group: bool
    itself: bool = False  # the caller's own process: never signalled

    def alive(self) -> bool:
        return is_alive(self.pid, self.start)


def _environ_names(pid: int, folder: Path) -> bool:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{JOB_ENV}={folder.resolve()}".encode() in raw.split(b"\0")


def _lock_holders(lock_paths) -> set[int]:
    """Pids holding a flock on any of `lock_paths`, as the kernel lists them in /proc/locks."""
    keys = set()
    for p in lock_paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        keys.add(f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}")
    if not keys:
        return set()
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return set()
    holders = set()
    for line in lines:
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] in keys:
            holders.add(int(parts[4]))
    return holders


def verify_job_process(status: dict, folder: Path, lock_paths=()) -> JobProcess | None:
    """The job's live process as `status` names it, verified; None when it has ended; NotOurs when the pid is a
    live process that is not verifiably this job's (a stranger's status, or a recycled pid)."""
    pid, start = status.get("pid"), status.get("pid_start")
    if pid is None:
        return None
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        raise NotOurs(f"status.json names pid {pid!r}, which is no job process: nothing was signalled")
    if not isinstance(start, int) or isinstance(start, bool):
        if proc_start(pid) is None:
            return None
        raise NotOurs(f"status.json names pid {pid} without its start time, so it cannot be told from another "
                      f"process that reused the pid: nothing was signalled")
    now_start = proc_start(pid)
    if now_start is None or now_start != start:
        return None  # ended (a pid reused since is someone else's)
    if pid == os.getpid():
        return JobProcess(pid, start, False, itself=True)  # works in this process (the studio's own prediction)
    if not (_environ_names(pid, folder) or pid in _lock_holders(lock_paths)):
        raise NotOurs(f"process {pid} is not this job's: it was not started for {folder} and holds none of its "
                      f"locks; nothing was signalled")
    group = live_group(pid)
    leads = group == pid and group > 1 and group != os.getpgrp()
    return JobProcess(pid, start, leads)


def terminate(proc: JobProcess, grace: float = 5.0) -> None:
    """SIGTERM the verified job (its group when it leads one), SIGKILL what is left after `grace` seconds."""
    if proc.itself:
        raise NotOurs(f"the job runs in this very process ({proc.pid}): it is not signalled")
    _send(proc, signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline and _left(proc):
        time.sleep(0.1)
    if _left(proc):
        _send(proc, signal.SIGKILL)
        while _left(proc) and time.time() < deadline + 5:
            time.sleep(0.1)


def _send(proc: JobProcess, sig: int) -> None:
    try:
        if proc.leads_group:
            os.killpg(proc.pid, sig)  # the group the job leads: its data-loader workers, torchrun ranks
        elif proc.alive():  # checked again right before the signal: never a pid that was reused meanwhile
            os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass


def _left(proc: JobProcess) -> bool:
    return _group_alive(proc.pid) if proc.leads_group else proc.alive()


def _group_alive(pgid: int) -> bool:
    """Is any live (non-zombie) process left in process group `pgid`?"""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False
