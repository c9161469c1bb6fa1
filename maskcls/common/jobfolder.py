"""The job-folder model shared by training runs and eval predictions.

A job is a folder with a status.json; its state is derived from that file *and* the liveness of the pid it
names, so a dead process reads as failed (lost), never as running forever. One state vocabulary, one
lost-process rule, one cancel, one log writer, one cancellation exception.
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from maskcls.common.fileio import read_json, write_json
from maskcls.common.procs import is_alive, terminate_group

STATES = ("queued", "running", "completed", "pruned", "failed", "cancelled")  # pruned: a sweep stopped it early
ACTIVE = ("queued", "running")
LEGACY_STATES = {"done": "completed"}  # eval predictions of earlier versions ended "done"


class Cancelled(Exception):
    """SIGTERM arrived (a cancel): stop after writing what is safe to write."""


def now() -> float:
    return round(time.time(), 3)


def error_text(e: BaseException) -> str:
    """A failure in words for status.json and the terminal: our own errors as they are, others with their type."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror + (f": {e.filename}" if e.filename else "")
    if isinstance(e, ValueError) or type(e).__name__ in ("TrainingError", "ConfigError"):
        return str(e)
    return f"{type(e).__name__}: {e}"


def raise_cancelled_on_sigterm(message: str = "cancelled (SIGTERM)") -> None:
    """Turn the cancel's SIGTERM into `Cancelled` in this process."""
    def handler(signum, frame):
        raise Cancelled(message)
    signal.signal(signal.SIGTERM, handler)


class JobFolder:
    """A folder with status.json and log.txt; subclasses set `path` and `name` and add their own files."""

    name: str
    path: Path
    kind = "job"

    status_path = property(lambda self: self.path / "status.json")
    log_path = property(lambda self: self.path / "log.txt")

    def exists(self) -> bool:
        return self.path.is_dir()

    def read_status(self) -> dict:
        try:
            status = read_json(self.status_path)
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        if status.get("state") in LEGACY_STATES:
            status["state"] = LEGACY_STATES[status["state"]]
        return status

    def write_status(self, **fields) -> dict:
        status = {**self.read_status(), **fields, "updated": now()}
        write_json(self.status_path, status)
        return status

    def state(self) -> dict:
        """The status, with a queued/running job whose process is gone shown as failed (lost)."""
        st = self.read_status()
        if not st:
            st = {"state": "failed", "error": "no status.json"}
        if st.get("state") in ACTIVE and not is_alive(st.get("pid"), st.get("pid_start")):
            st = {**st, "state": "failed",
                  "error": f"lost: the {self.kind} process ({st.get('pid')}) ended without a final status (killed?)"}
        return {"name": self.name, **st}

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n"
        with open(self.log_path, "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(line)

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 64_000))
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def cancel(self, grace: float = 5.0) -> dict:
        """SIGTERM the job's process group, SIGKILL after `grace` seconds; the state ends `cancelled`."""
        if not self.exists():
            raise ValueError(f"no {self.kind} named {self.name!r} in {self.path.parent}")
        st = self.read_status()
        if st.get("state") not in ACTIVE:
            raise ValueError(f"{self.kind} {self.name!r} is {st.get('state', 'unknown')}, not queued or running")
        if st.get("in_process"):
            raise ValueError(f"{self.kind} {self.name!r} runs inside the studio, not as a background job: it cannot "
                             f"be cancelled")
        if is_alive(st.get("pid"), st.get("pid_start")):
            terminate_group(st.get("pgid") or st["pid"], grace)
        if self.read_status().get("state") in ACTIVE:
            self.write_status(state="cancelled", ended=now(), pid=None)
        return self.state()
