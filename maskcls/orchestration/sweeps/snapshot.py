"""A sweep's trials as plain records, and the snapshot workers keep of them (<runs_root>/sweeps/<NAME>/trials.json):
`maskcls sweep status` reads the snapshot, so a poll answers without loading Optuna; `--live` reads the storage.
Workers rewrite it after every epoch and trial (a whole, atomic file: the last writer's view is complete)."""
from __future__ import annotations

import socket
import time

from maskcls.common.fileio import read_json, write_json
from maskcls.common.procs import is_alive

TRIAL_STATES = {"complete": "completed", "fail": "failed"}  # Optuna's names -> the run states' vocabulary
LOST = "lost: its worker ended mid-trial (killed?)"
SNAPSHOT = "trials.json"


def trial_record(t) -> dict:
    """An Optuna FrozenTrial as a JSON-ready record."""
    state = t.state.name.lower()
    return {"trial": t.number, "state": TRIAL_STATES.get(state, state), "value": t.value,
            "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
            "start": t.datetime_start.timestamp() if t.datetime_start else None,
            "end": t.datetime_complete.timestamp() if t.datetime_complete else None,
            "params": dict(t.params), "attrs": dict(t.user_attrs)}


def trial_worker(attrs: dict) -> dict | None:
    """The worker a trial names (host, pid, start), written in one attribute before anything else of it; None while
    a starting worker has not written it yet (or, for a trial of an earlier version, any of its three keys)."""
    w = attrs.get("worker")
    if isinstance(w, dict) and {"host", "pid", "start"} <= set(w):
        return w
    if all(k in attrs for k in ("host", "worker_pid", "worker_start")):
        return {"host": attrs["host"], "pid": attrs["worker_pid"], "start": attrs["worker_start"]}
    return None


def worker_gone(attrs: dict) -> bool:
    """A RUNNING trial of this machine whose worker process has ended, judged as jobs are: its pid no longer runs
    or is another process now (its start time differs). A trial whose worker is not named yet is starting, never
    gone; other machines' trials are the heartbeat's to judge."""
    w = trial_worker(attrs)
    return w is not None and w["host"] == socket.gethostname() and not is_alive(w["pid"], w["start"])


def worker_alive_here(attrs: dict) -> bool:
    """A trial of this machine whose worker verifiably runs (pid and start time)."""
    w = trial_worker(attrs)
    return w is not None and w["host"] == socket.gethostname() and is_alive(w["pid"], w["start"])


def write_snapshot(folder, study) -> None:
    """Every trial of `study` into <folder>/trials.json."""
    write_json(folder / SNAPSHOT, {"written": time.time(), "trials": [trial_record(t) for t in
                                                                       study.get_trials(deepcopy=False)]})


def read_snapshot(folder) -> list[dict] | None:
    try:
        data = read_json(folder / SNAPSHOT)
    except (FileNotFoundError, ValueError):
        return None
    return data.get("trials") if isinstance(data, dict) and isinstance(data.get("trials"), list) else None
