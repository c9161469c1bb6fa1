"""A group's runs trained by whichever worker claims each: a ladder's rungs, a repeat group's seeds, a fold group's
folds. Workers on one runs root claim a run by creating its folder (an atomic mkdir); workers on servers with no
shared folder claim it in a claims database (maskcls.orchestration.team.claims: a lease kept alive by a heartbeat,
taken over when its worker dies), and leave each finished run's predictions there, so every side reads the whole
group. A worker keeps going until every run of the group has ended, wherever it trained: it waits for runs others
still train and takes over any whose lease lapses.
"""
from __future__ import annotations

import contextlib
import time

from maskcls.common.jobfolder import Cancelled
from maskcls.common.runfolder import RunFolder, create_run

FINAL = ("completed", "failed", "cancelled", "pruned")


def _folder(runs_root, name: str, cfg, *, taken_over: bool) -> tuple[RunFolder | None, bool]:
    """(the run folder this worker trains, whether it resumes one): a new folder; or, for a claim taken over from a
    dead worker whose folder is here (the same server, or a shared root), that folder when no process holds it."""
    try:
        return create_run(runs_root, name, cfg), False
    except ValueError as e:
        if "already exists" not in str(e):
            raise
    if not taken_over:
        return None, False  # another worker of this runs root has it
    run = RunFolder(runs_root, name)
    from maskcls.orchestration.jobs import job_info
    if job_info(run).state in ("queued", "running") or run.is_locked():
        return None, False
    return run, run.last_path.is_file()


def train_claimed(run: RunFolder, group: str, *, resume: bool = False, progress=None) -> dict:
    """Train one claimed run like a training job: its job lock, its device's slot, then the driver."""
    from maskcls.train.config import RunConfig
    from maskcls.train.driver import run_training
    from maskcls.orchestration.jobs import after_training
    from maskcls.train.slots import trained_here
    with trained_here(run, RunConfig.from_dict(run.read_config()), group=group) as cfg:
        status = run_training(cfg, run, resume, progress)
        after_training(run, cfg)
        return status


def run_group(runs_root, group: str, planned: list, *, claims: str = "", progress=None, log=print,
              poll: float = 5.0) -> dict:
    """Claim and train the group's planned (run name, config) pairs until every run has ended, here or elsewhere;
    returns {run: state} of the runs this worker trained."""
    from maskcls.common.jobfolder import raise_cancelled_on_sigterm
    raise_cancelled_on_sigterm(f"{group} worker cancelled")
    db = me = None
    if claims:
        from maskcls.orchestration.team.claims import Claims, worker_id
        db, me = Claims(claims), worker_id()
        for run in db.free_own_dead(group):
            log(f"{group}: {run} was claimed by a worker of this host that is gone: free to train again")
    mine: dict[str, str] = {}
    try:
        while True:
            trained = _one_pass(runs_root, group, planned, db=db, me=me, mine=mine, progress=progress, log=log)
            if db is None or "cancelled" in mine.values():
                break
            rows = db.rows(group)
            left = [n for n, _ in planned if rows.get(n, {}).get("state") not in FINAL]
            if not left:
                break
            if not trained:  # others still train these: wait, and take over any whose worker dies
                time.sleep(poll)
    finally:
        if db is not None:
            db.close()
    return mine


def _one_pass(runs_root, group: str, planned: list, *, db, me, mine: dict, progress, log) -> int:
    """One look over the plan: every run this worker can claim now, trained in turn; returns how many."""
    trained = 0
    for run_name, cfg in planned:
        if run_name in mine and mine[run_name] != "failed":
            continue
        taken_over = False
        if db is not None:
            before = db.rows(group).get(run_name)
            if not db.claim(group, run_name, me):
                continue
            taken_over = before is not None
        run, resume = _folder(runs_root, run_name, cfg, taken_over=taken_over)
        if run is None:
            continue
        log(f"{group}: training {run_name}" + (" (taken over from a worker that stopped)" if taken_over else "")
            + (", resumed from its last.pt" if resume else ""))
        trained += 1
        try:
            with _heartbeat(db, group, run_name, me):
                mine[run_name] = train_claimed(run, group, resume=resume, progress=progress).get("state")
        except Cancelled:
            log("cancelled: the current run keeps its checkpoints")
            mine[run_name] = "cancelled"
            return trained
        except Exception as e:  # a failed run: the group shows it; the worker goes on with the next
            mine[run_name] = "failed"
            log(f"{run_name} failed: {e}")
        finally:
            if db is not None:
                report(db, group, run)
    return trained


def _heartbeat(db, group: str, run: str, me):
    if db is None:
        return contextlib.nullcontext()
    from maskcls.orchestration.team.claims import Heartbeat
    return Heartbeat(db.raw_url, group, run, me)


def report(db, group: str, run: RunFolder) -> None:
    """The run's end, with its validation predictions, where every worker's report can read it."""
    from maskcls.common.fileio import LIMITS, read_text_file
    state = run.state()["state"]
    text = read_text_file(run.predictions_path, "val_predictions.csv", LIMITS["table"], root=run.path) \
        if run.predictions_path.is_file() else None
    status = run.read_status()
    fixed = run.read_fingerprints() or {}
    db.finish(group, run.name, state, text if state == "completed" else None,
              {**{k: status.get(k) for k in ("best_f1", "best_epoch", "epoch", "epochs", "error", "predictions_epoch")},
               "data_fp": fixed.get("data")})


PATH_KEYS = ("data_root", "corrections", "cache_dir")  # where each server keeps its copy: may differ between them


def group_definition(cfg, kind: str, n: int) -> dict:
    """What every worker of a repeat or fold group must agree on: the config but for its seed, its paths and where
    it logs, the count, and the data fingerprint (the same people with the same labels on every server)."""
    from maskcls.data.fingerprints import data_fingerprint
    from maskcls.orchestration.repeats import FREE_KEYS
    shared = {k: v for k, v in cfg.to_dict().items() if k not in (*FREE_KEYS, *PATH_KEYS, "fold", "n_folds")}
    return {"kind": kind, "n": n, "config": shared, "data": data_fingerprint(cfg)}


def train_group_claimed(cfg, runs_root, name: str, *, kind: str, n: int, claims: str, progress=None,
                        log=print) -> dict:
    """`train --seeds N` / `--folds K` with `--claims URL`: every server that runs the same command (its own data
    path) trains the runs it claims; each ends when the whole group has; a fold group's out-of-fold table is then
    written on every server from every fold's predictions, wherever it trained."""
    from maskcls.orchestration.folds import check_enough_people, fold_configs, fold_names
    from maskcls.orchestration.repeats import seed_configs, seed_names
    from maskcls.orchestration.team.claims import Claims
    from maskcls.train.startable import check_startable
    check_startable(cfg)
    if kind == "folds":
        check_enough_people(cfg, n)
        planned = list(zip(fold_names(name, n), fold_configs(cfg, n)))
    else:
        planned = list(zip(seed_names(name, n), seed_configs(cfg, n)))
    with Claims(claims) as db:
        db.publish(name, kind, group_definition(cfg, kind, n))
    mine = run_group(runs_root, name, planned, claims=claims, progress=progress, log=log)
    out = {"group": name, "kind": kind, "trained_here": mine, "runs": group_listing(claims, name, runs_root)}
    if kind == "folds" and all(r["state"] == "completed" for r in out["runs"]):
        out["oof"] = write_claimed_oof(claims, runs_root, name)
    return out


def group_listing(claims: str, name: str, runs_root) -> list[dict]:
    """Every run of a claimed group, wherever it trained: run, state (lapsed: its worker stopped; it will be
    trained again), host, here or not, best macro F1."""
    from maskcls.orchestration.team.claims import Claims
    with Claims(claims) as db:
        definition = db.definition(name)
        rows = db.rows(name)
    if definition is None:
        raise ValueError(f"the claims database holds no group {name!r}")
    names = sorted(rows)
    return [{"run": n, "state": rows[n]["state"], "host": rows[n]["host"],
             "here": RunFolder(runs_root, n).exists(), "best_f1": (rows[n].get("status") or {}).get("best_f1")}
            for n in names]


def write_claimed_oof(claims: str, runs_root, name: str) -> dict:
    """NAME-oof.csv from every fold's predictions: the folds here from their folders, the others from the claims
    database, where their workers left them."""
    import io

    from maskcls.common.predictions import read_predictions_table
    from maskcls.orchestration.folds import FOLD_RE, write_oof_parts
    from maskcls.orchestration.team.claims import Claims
    with Claims(claims) as db:
        rows = db.rows(name)
    parts = []
    for n in sorted(rows):
        run = RunFolder(runs_root, n)
        frame = run.read_predictions() if run.exists() else (
            read_predictions_table(io.StringIO(rows[n]["predictions"]), f"validation predictions of {n} (trained on "
                                   f"{rows[n]['host']})") if rows[n].get("predictions") else None)
        if frame is None:
            raise ValueError(f"{n} has no validation predictions: the out-of-fold table needs every fold's")
        parts.append((int(FOLD_RE.match(n)["k"]) - 1, frame))
    return write_oof_parts(runs_root, name, parts)
