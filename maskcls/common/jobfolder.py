"""One lifecycle for everything that runs detached: training jobs, submissions, sweep workers, demo generation.

A job is a folder with a status.json and a log.txt; its state is derived from that file *and* the liveness of
the process it names (verified: maskcls.common.procs), so a dead process reads as failed (lost), never as
running forever. The lifecycle, written once here:
- `start()` (in the caller): status `queued`, then `python -m maskcls.orchestration.worker KIND FOLDER` spawned detached;
- `run()` (in that process, through maskcls.orchestration.worker): `working()` holds the folder's lock, names the process in
  the status, turns a cancel's SIGTERM into `Cancelled`, and leaves a final state whatever happens, around the
  one method each kind writes: `work()`;
- `cancel()` (anywhere): SIGTERM to the verified process, SIGKILL after a grace period.
One state vocabulary, one lost-process rule, one cancel, one log writer, one cancellation exception.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from maskcls.common.fileio import json_kind, read_json, write_json
from maskcls.common.procs import NotOurs, live_group, proc_start, spawn_detached, terminate, verify_job_process

STATES = ("queued", "running", "completed", "pruned", "failed", "cancelled")  # pruned: a sweep stopped it early
ACTIVE = ("queued", "running")
DAMAGED = "damaged"  # never written: what a status.json of the wrong shape reads as
LEGACY_STATES = {"done": "completed"}  # eval predictions of earlier versions ended "done"
SPAWN_GRACE_S = 10.0  # a queued job whose process is being started has no pid in its status yet
NUMBER_FIELDS = ("progress", "epoch", "epochs", "step", "best_f1", "best_epoch", "submitted", "started", "ended",
                 "updated", "images_per_s", "eta_s")
UNIT_FIELDS = ("progress", "best_f1")  # fractions
WHOLE_FIELDS = ("epoch", "epochs", "step", "best_epoch")


class Cancelled(Exception):
    """SIGTERM arrived (a cancel): stop after writing what is safe to write."""


def now() -> float:
    return round(time.time(), 3)


def error_text(e: BaseException) -> str:
    """A failure in words for status.json and the terminal: our own errors as they are, others with their type."""
    if isinstance(e, FileExistsError) and e.filename and os.path.isfile(e.filename):  # mkdir met a file
        return f"{e.filename} is a file; expected a folder there"
    if isinstance(e, NotADirectoryError) and e.filename:
        return f"{e.filename}: part of this path is a file; expected a folder there"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror + (f": {e.filename}" if e.filename else "")
    if isinstance(e, ValueError) or type(e).__name__ in ("TrainingError", "ConfigError"):
        return str(e)
    return f"{type(e).__name__}: {e}"


def status_problem(status) -> str | None:
    """What is wrong with a parsed status.json's shape (None when it is usable)."""
    if not isinstance(status, dict):
        return f"expected a JSON object, found a JSON {json_kind(status)}"
    state = status.get("state")
    if state is not None and (not isinstance(state, str) or (state not in STATES and state not in LEGACY_STATES)):
        return f"state {str(state)[:40]!r} is not one of {', '.join(STATES)}"
    for key in NUMBER_FIELDS:
        v = status.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"{key} must be a number, found a JSON {json_kind(v)} ({str(v)[:40]!r})"
        if v is not None and not math.isfinite(v):
            return f"{key} must be a finite number, found {v!r}"
        if v is not None and key in UNIT_FIELDS and not 0 <= v <= 1:
            return f"{key} must be from 0 to 1, found {v!r}"
        if v is not None and v < 0:
            return f"{key} must be 0 or more, found {v!r}"
        if v is not None and key in WHOLE_FIELDS and v != int(v):
            return f"{key} must be a whole number, found {v!r}"
    for key in ("pid", "pid_start"):
        v = status.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            return f"{key} must be a whole number, found a JSON {json_kind(v)} ({v!r})"
    return None


def raise_cancelled_on_sigterm(message: str = "cancelled (SIGTERM)") -> None:
    """Turn the cancel's SIGTERM into `Cancelled` in this process."""
    def handler(signum, frame):
        raise Cancelled(message)
    signal.signal(signal.SIGTERM, handler)


def this_process() -> dict:
    """The status fields that name the calling process: pid and kernel start time (what a cancel verifies)."""
    return {"pid": os.getpid(), "pid_start": proc_start(os.getpid())}


class JobFolder:
    """A folder with status.json and log.txt; subclasses set `path` and `name`, add their own files, and (when
    they run detached) name their `worker` kind and write `work()`."""

    name: str
    path: Path
    kind = "job"  # the word messages use
    worker: str | None = None  # maskcls.orchestration.worker's name for this kind (detached jobs only)

    status_path = property(lambda self: self.path / "status.json")
    log_path = property(lambda self: self.path / "log.txt")

    def exists(self) -> bool:
        return self.path.is_dir()

    lock_names: tuple[str, ...] = (".job.lock",)  # held by the folder's own process while it works

    @property
    def lock_paths(self) -> list[Path]:
        return [self.path / n for n in self.lock_names]

    def hold_lock(self):
        """An open file holding this folder's job lock until it is closed or the process ends (the kernel releases
        it): a cancel's proof that this process works for this folder."""
        self.path.mkdir(parents=True, exist_ok=True)
        f = open(self.lock_paths[0], "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise ValueError(f"{self.kind} {self.name!r} is held by another process right now") from None
        return f

    def read_status(self) -> dict:
        """status.json as a dict ({} when missing or unreadable); one of the wrong shape reads as damaged."""
        try:
            status = read_json(self.status_path, "status.json", root=self.path)
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return {"state": DAMAGED, "error": f"damaged status.json: not valid JSON ({e})"}
        except (ValueError, OSError) as e:
            return {"state": DAMAGED, "error": f"damaged status.json: {e}"}
        problem = status_problem(status)
        if problem:
            return {"state": DAMAGED, "error": f"damaged status.json: {problem}"}
        if status.get("state") in LEGACY_STATES:
            status["state"] = LEGACY_STATES[status["state"]]
        return status

    def write_status(self, **fields) -> dict:
        old = self.read_status()
        if old.get("state") == DAMAGED:
            old = {}  # a fresh, whole status replaces one of the wrong shape
        status = {**old, **fields, "updated": now()}
        write_json(self.status_path, status)
        return status

    def state(self) -> dict:
        """The status, with a queued/running job whose process is gone (or is not this job's) shown as failed."""
        st = self.read_status()
        if not st:
            st = {"state": "failed", "error": "no status.json"}
        if st.get("state") in ACTIVE:
            why = self._not_running(st)
            if why:
                st = {**st, "state": "failed", "error": why}
        return {"name": self.name, **st}

    def _not_running(self, st: dict) -> str | None:
        """Why an active status has no process behind it (None when its verified process runs)."""
        if st.get("pid") is None and st.get("state") == "queued" and time.time() - (st.get("submitted") or 0) < \
                SPAWN_GRACE_S:
            return None  # just submitted: the job process is being started
        try:
            proc = verify_job_process(st, self.path, self.lock_paths)
        except NotOurs as e:
            return f"lost: {e}"
        if proc is None:
            return f"lost: the {self.kind} process ({st.get('pid')}) ended without a final status (killed?)"
        return None

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n"
        with open(self.log_path, "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(line)

    def log_tail(self, lines: int = 40) -> str:
        """The log's last `lines` lines (its last 64 kB read: a log of any size, never a FIFO or a device)."""
        from maskcls.common.fileio import open_bounded
        try:
            fd = open_bounded(self.log_path, "log.txt", 2 ** 62, root=self.path)
        except FileNotFoundError:
            return ""
        except (OSError, ValueError) as e:
            return f"(the log cannot be shown: {e})"
        with os.fdopen(fd, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 64_000))
            return "\n".join(f.read(64_000).decode("utf-8", "replace").splitlines()[-lines:])

    def cancel(self, grace: float = 5.0) -> dict:
        """SIGTERM the job's verified process (its group when it leads one), SIGKILL after `grace` seconds; the
        state ends `cancelled`. `notes` in the result say what was not signalled and why."""
        if not self.exists():
            raise ValueError(f"no {self.kind} named {self.name!r} in {self.path.parent}")
        st = self.read_status()
        if st.get("state") not in ACTIVE:
            raise ValueError(f"{self.kind} {self.name!r} is {st.get('state', 'unknown')}, not queued or running"
                             + (f" ({st['error']})" if st.get("state") == DAMAGED else ""))
        if st.get("in_process"):
            raise ValueError(f"{self.kind} {self.name!r} runs inside the studio, not as a background job: it cannot "
                             f"be cancelled")
        notes = []
        try:
            proc = verify_job_process(st, self.path, self.lock_paths)
        except NotOurs as e:
            proc, notes = None, [str(e)]
        if proc is not None:
            written = st.get("pgid")
            if written is not None and written != (proc.pid if proc.leads_group else live_group(proc.pid)):
                notes.append(f"status.json's pgid {written!r} was ignored: the signal went to the job's own process "
                             f"{proc.pid}" + (" and the group it leads" if proc.leads_group else " alone"))
            if proc.itself:
                raise ValueError(f"{self.kind} {self.name!r} runs in this very process: it cannot be cancelled from "
                                 f"here")
            terminate(proc, grace)
        if self.read_status().get("state") in ACTIVE:
            self.write_status(state="cancelled", ended=now(), pid=None)
        return {**self.state(), "notes": notes}

    # -- the lifecycle -----------------------------------------------------------------------------------
    def start(self, env: dict | None = None, **fields) -> int:
        """Spawn this job's process (`python -m maskcls.orchestration.worker KIND FOLDER`) detached; the status says `queued`
        (with `fields`), then names the process. Returns its pid."""
        if not self.worker:
            raise TypeError(f"a {self.kind} has no worker to start")
        self.write_status(state="queued", submitted=now(), **fields)
        pid = spawn_detached([sys.executable, "-m", "maskcls.orchestration.worker", self.worker, str(self.path.resolve())],
                             self.log_path, env)
        self.write_status(pid=pid, pid_start=proc_start(pid))
        return pid

    waits = False  # a kind that waits its turn (a training job's device slot) stays `queued` until it starts

    @contextmanager
    def working(self, signals: bool = True):
        """In the job's own process: hold the folder's lock, name this process in the status and, with `signals`
        (the main thread of a worker), turn a cancel's SIGTERM into `Cancelled`. On the way out the state is final:
        `completed`, `cancelled` or `failed` with the reason, unless the work already wrote a final state."""
        if signals:
            raise_cancelled_on_sigterm(f"{self.kind} {self.name!r} cancelled")
        lock = self.hold_lock()
        self.write_status(**this_process(), **({} if self.waits else {"state": "running", "started": now()}),
                          error=None)
        try:
            yield
        except Cancelled:
            self.log("cancelled")
            self._finish(state="cancelled")
        except BaseException as e:
            if self.read_status().get("state") in ACTIVE:  # the work may have written its failure already
                why = error_text(e) if isinstance(e, Exception) else f"interrupted ({type(e).__name__})"
                self.log(f"failed: {why}\n" + "".join(traceback.format_exception(e)[-6:]))
                self._finish(state="failed", error=why)
            raise
        else:
            self._finish(state="completed")
        finally:
            lock.close()

    def _finish(self, **fields) -> None:
        if self.read_status().get("state") in ACTIVE:
            self.write_status(**fields, ended=now(), pid=None)

    def run(self) -> dict:
        """The job process's whole life (maskcls.orchestration.worker calls it): `work()` inside `working()`."""
        with self.working():
            self.work()
        return self.read_status()

    def work(self) -> None:
        """What this kind of job does in its process; it may write its own final state."""
        raise NotImplementedError
