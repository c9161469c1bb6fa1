"""Ladder workers: each claims the ladder's planned runs one by one and trains it, queued for its device like a
training job. The claim is an atomic mkdir in the runs root, or, for a ladder created with `--claims`, one row in
the claims database (maskcls.orchestration.team.claims), so workers on servers with no shared folder split one
ladder; none trains a run twice.
"""
from __future__ import annotations

from maskcls.common.devices import device_of
from maskcls.common.jobfolder import Cancelled, now, this_process
from maskcls.common.runfolder import create_run
from maskcls.orchestration.group_workers import GroupWorker
from maskcls.orchestration.ladder import LADDERS_DIR, LadderError, load_ladder


def _claim(runs_root, name: str, cfg):
    """The run folder, created for this worker; None when another worker has claimed it already."""
    try:
        return create_run(runs_root, name, cfg)
    except ValueError as e:
        if "already exists" in str(e):
            return None
        raise


def _train_claimed(run, ladder: str, progress) -> dict:
    from maskcls.train.config import RunConfig
    from maskcls.train.driver import run_training
    from maskcls.train.slots import wait_for_slot
    cfg = RunConfig.from_dict(run.read_config())
    job_lock = run.hold_lock()  # this worker works for the run: a cancel of the run can verify it
    device = device_of(cfg.device)
    run.write_status(state="queued", device=device, submitted=now(), progress=0.0, epoch=0, epochs=cfg.epochs,
                     **this_process(), ladder=ladder)
    held = []
    try:
        held = wait_for_slot(run, device)
        if device.startswith("cuda"):
            cfg.device = device
        status = run_training(cfg, run, progress=progress)
        if cfg.fold >= 0:
            from maskcls.orchestration.folds import collect_after
            collect_after(run)
        from maskcls.orchestration.team.autopush import push_if_asked
        push_if_asked(run)
        return status
    except Cancelled:
        if run.read_status().get("state") in ("queued", "running"):
            run.write_status(state="cancelled", ended=now(), pid=None)
        raise
    finally:
        for f in held + [job_lock]:
            f.close()


def run_ladder(runs_root, name: str, *, progress=None, log=print, claims: str = "") -> dict:
    """Claim and train the ladder's runs until none is left unclaimed; returns the runs this worker trained."""
    from maskcls.common.jobfolder import raise_cancelled_on_sigterm
    ladder = load_ladder(runs_root, name, claims)
    raise_cancelled_on_sigterm("ladder worker cancelled")
    db = None
    if ladder.claims or claims:
        from maskcls.orchestration.team.claims import Claims, worker_id
        db, me = Claims(claims or ladder.claims), worker_id()
    mine = {}
    try:
        for run_name, cfg in ladder.planned():
            if db is not None and not db.claim(name, run_name, me):
                continue
            run = _claim(runs_root, run_name, cfg)
            if run is None:
                continue
            log(f"ladder {name}: training {run_name}")
            try:
                mine[run_name] = _train_claimed(run, name, progress).get("state")
            except Cancelled:
                log("cancelled: the current run keeps its checkpoints")
                mine[run_name] = "cancelled"
                break
            except Exception as e:  # a failed run: the ladder shows it; the worker goes on with the next
                mine[run_name] = "failed"
                log(f"{run_name} failed: {e}")
            finally:
                if db is not None:
                    _report(db, name, run)
    finally:
        if db is not None:
            db.close()
    return {"ladder": name, "trained": mine}


def _report(db, ladder: str, run) -> None:
    """The run's end, with its validation predictions, where every worker's report can read it."""
    state = run.state()["state"]
    from maskcls.common.fileio import LIMITS, read_text_file
    text = read_text_file(run.predictions_path, "val_predictions.csv", LIMITS["table"], root=run.path) \
        if run.predictions_path.is_file() else None
    status = run.read_status()
    db.finish(ladder, run.name, state, text if state == "completed" else None,
              {k: status.get(k) for k in ("best_f1", "best_epoch", "epoch", "epochs", "error", "predictions_epoch")})


class LadderWorker(GroupWorker):
    """One background worker of a ladder: <runs_root>/ladders/<NAME>/workers/<wNN>/."""

    kind = "ladder worker"
    worker = "ladder-worker"
    area = LADDERS_DIR
    group_word = "ladder"

    @property
    def ladder(self) -> str:
        return self.group

    def work(self) -> None:
        result = run_ladder(self.root, self.ladder, log=self.log)
        failed = [n for n, s in result["trained"].items() if s == "failed"]
        self.finish(bool(failed) and len(failed) == len(result["trained"]),
                    f"every run this worker trained failed: {', '.join(failed)}", trained=result["trained"])


def start_worker(runs_root, name: str) -> LadderWorker:
    """A detached worker that outlives the studio."""
    load_ladder(runs_root, name)
    worker = LadderWorker.claim_next(runs_root, name)
    worker.start()
    return worker


def list_workers(runs_root, name: str) -> list[dict]:
    return LadderWorker.states(runs_root, name)


__all__ = ["LadderError", "LadderWorker", "list_workers", "run_ladder", "start_worker"]
