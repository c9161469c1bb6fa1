"""Processes that outlive the page that started them: spawn detached, tell if alive, end a whole group.

Liveness is checked by pid *and* kernel start time, so a recycled pid never passes for a job.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from maskcls.common.settings import REPO  # detached jobs start in the checkout: `python -m maskcls` resolves there


def proc_start(pid: int) -> int | None:
    """Kernel start time of `pid` (clock ticks since boot), None if no such live process (zombies count as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_alive(pid: int | None, start: int | None = None) -> bool:
    """True if `pid` runs and (when `start` is known) is the same process, not a recycled pid."""
    if not pid:
        return False
    s = proc_start(int(pid))
    return s is not None and (start is None or s == start)


def spawn_detached(args: list[str], log_path: Path, env: dict | None = None) -> int:
    """Start `args` in its own session (so it outlives the studio) with output appended to `log_path`."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env if env is not None else dict(os.environ, PYTHONUNBUFFERED="1"),
                                start_new_session=True, cwd=str(REPO))
    threading.Thread(target=proc.wait, daemon=True).start()  # reap it when it ends, while we live
    return proc.pid


def terminate_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM a detached job's process group, SIGKILL what is left after `grace` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + grace
    while time.time() < deadline and _group_alive(pgid):
        time.sleep(0.1)
    if _group_alive(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while _group_alive(pgid) and time.time() < deadline + 5:
            time.sleep(0.1)


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
