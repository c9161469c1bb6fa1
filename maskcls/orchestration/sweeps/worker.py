"""A sweep's workers: each asks the study for parameters, trains the trial as the run <NAME>-tNNN (queued for its
device like a training job) and reports validation macro F1 after every epoch, so the pruner can stop it early
(the run ends "pruned", its checkpoints loadable). Several workers, on one machine or several, share a study.

A worker killed mid-trial leaves its trial RUNNING in the storage: workers (and `maskcls sweep reap`) turn such
trials into failed ones, at once for this machine's dead workers, after the heartbeat's grace for other machines'.
Display paths never do: they only read.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time

from maskcls.common.jobfolder import Cancelled, error_text, now
from maskcls.common.procs import proc_start
from maskcls.orchestration.group_workers import GroupWorker
from maskcls.orchestration.sweeps.definition import (SWEEPS_DIR, Sweep, load_sweep, open_study, storage_url,
                                                     sweeps_root, trial_config, trial_run_name)
from maskcls.orchestration.sweeps.snapshot import LOST, TRIAL_STATES, worker_alive_here, worker_gone, write_snapshot
from maskcls.orchestration.sweeps.space import SweepError
from maskcls.orchestration.sweeps.storage import PASSWORD_ENV, open_storage, split_password



def reap_lost_trials(runs_root, sweep: Sweep, storage: str | None = None) -> list[int]:
    """Turn RUNNING trials whose worker is gone into failed ones (this machine's at once, other machines' after the
    heartbeat's grace), and their runs' statuses too; through Optuna's public storage API. Returns their numbers."""
    import optuna
    from optuna.trial import TrialState

    from maskcls.common.runfolder import RunFolder
    rdb = open_storage(storage_url(sweep, runs_root, storage))
    study = open_study(runs_root, sweep, rdb=rdb)
    study_id = rdb.get_study_id_from_name(sweep.name)
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if worker_alive_here(t.user_attrs):  # a busy worker whose heartbeat is late is still alive: beat for it
            rdb.record_heartbeat(rdb.get_trial_id_from_study_id_trial_number(study_id, t.number))
            continue
        if not t.user_attrs.get("run") or not worker_gone(t.user_attrs):
            continue
        trial_id = rdb.get_trial_id_from_study_id_trial_number(study_id, t.number)
        rdb.set_trial_user_attr(trial_id, "error", LOST)
        rdb.set_trial_state_values(trial_id, TrialState.FAIL)
        failed.append(t.number)
        run = RunFolder(runs_root, t.user_attrs["run"])
        if run.read_status().get("state") in ("queued", "running"):
            run.write_status(state="failed", ended=now(), pid=None, error="lost: the sweep worker ended without a "
                                                                         "final status")
    optuna.storages.fail_stale_trials(study)
    write_snapshot(sweeps_root(runs_root) / sweep.name, study)
    return failed


class TrialReaped(RuntimeError):
    """This worker's trial was marked failed by another worker's reap while it trained (the other judged it lost)."""

    def __init__(self, number: int):
        super().__init__(f"trial {number} was marked failed by another worker while this one trained it (judged "
                         f"lost); its run stopped, its checkpoints kept")


def _train_trial(runs_root, sweep: Sweep, trial, params: dict, progress) -> dict:
    """Train one trial as an ordinary run, queued for its device, reporting each epoch's F1 to the pruner."""
    import optuna
    from maskcls.common.runfolder import create_run
    from maskcls.train.config import RunConfig
    from maskcls.train.driver import run_training
    from maskcls.train.slots import trained_here
    run = create_run(runs_root, trial_run_name(sweep, trial.number), trial_config(sweep, params))
    cfg = RunConfig.from_dict(run.read_config())  # as stored: its paths absolute
    with trained_here(run, cfg, sweep=sweep.name, trial=trial.number) as cfg:
        def should_stop(epoch: int, row: dict) -> bool:
            try:
                trial.report(row["val_macro_f1"], epoch)
            except optuna.exceptions.UpdateFinishedTrialError:  # marked failed by another worker: nothing to train for
                raise TrialReaped(trial.number) from None
            write_snapshot(sweeps_root(runs_root) / sweep.name, trial.study)  # `sweep status` sees the epoch
            return trial.should_prune()
        try:
            return run_training(cfg, run, progress=progress, should_stop=should_stop)
        except TrialReaped as e:
            run.write_status(state="failed", ended=now(), pid=None, error=str(e))
            raise


def _objective(runs_root, sweep: Sweep, progress, log, flags: dict):
    import optuna
    space = sweep.params()

    def objective(trial) -> float:
        params = {k: p.suggest(trial) for k, p in space.items()}
        name = trial_run_name(sweep, trial.number)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "start": proc_start(os.getpid())}
        trial.set_user_attr("worker", me)  # first, in one write: a reap never sees half a worker
        for key, value in (("run", name), ("host", me["host"]), ("worker_pid", me["pid"]),
                           ("worker_start", me["start"])):
            trial.set_user_attr(key, value)
        write_snapshot(sweeps_root(runs_root) / sweep.name, trial.study)  # `sweep status` lists it from its start
        log(f"trial {trial.number} -> run {name}: " + ", ".join(f"{k}={v}" for k, v in params.items()))
        try:
            status = _train_trial(runs_root, sweep, trial, params, progress)
        except Cancelled:
            flags["cancelled"] = True
            trial.set_user_attr("error", "cancelled")
            raise
        except Exception as e:  # a refused combination, a failed run: the trial fails, the worker goes on
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # unless another worker reaped it
                trial.set_user_attr("error", error_text(e))
            raise
        if still_running(trial) is False:  # failed by another worker's reap while it trained: said, not told
            raise TrialReaped(trial.number)
        if status.get("state") == "pruned":
            raise optuna.TrialPruned(f"pruned after epoch {status.get('epoch')}")
        return float(status.get("best_f1", 0.0))
    return objective


def still_running(trial) -> bool | None:
    """Whether the trial is still RUNNING in the study (None when it cannot be found)."""
    from optuna.trial import TrialState
    found = [t.state for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number]
    return found[0] == TrialState.RUNNING if found else None


def count_done(study) -> int:
    """Trials that count towards the sweep's total: complete, pruned, or being run."""
    from optuna.trial import TrialState
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)))


def run_worker(runs_root, name: str, trials: int, storage: str | None = None, *, progress=None, log=print,
               quiet: bool = False) -> dict:
    """Run up to `trials` trials in this process, stopping early when the sweep's total is reached; several
    workers (processes, machines) may run at once against one storage. Returns what this worker did: the trials
    it ran and the state each ended in. `quiet`: Optuna's own failure tracebacks are not printed (the trial's
    error is kept with the trial and in `log`)."""
    import optuna
    from maskcls.common.jobfolder import raise_cancelled_on_sigterm
    if not isinstance(trials, int) or trials < 1:
        raise SweepError(f"--trials must be at least 1, got {trials!r}")
    sweep = load_sweep(runs_root, name)
    reap_lost_trials(runs_root, sweep, storage)
    study = open_study(runs_root, sweep, storage)
    if quiet:
        optuna.logging.set_verbosity(optuna.logging.ERROR)
    flags = {"cancelled": False}
    objective = _objective(runs_root, sweep, progress, log, flags)
    raise_cancelled_on_sigterm("sweep worker cancelled")
    mine, ended, t0 = [], {}, time.perf_counter()
    for _ in range(trials):
        if sweep.total and count_done(study) >= sweep.total:
            log(f"sweep {name}: {sweep.total} trials reached")
            break
        before = {t.number for t in study.get_trials(deepcopy=False)}
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        except Cancelled:
            flags["cancelled"] = True
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as e:  # reaped under us: said, not a crash
            if "Cannot tell a" not in str(e) and not isinstance(e, optuna.exceptions.UpdateFinishedTrialError):
                raise
            log(f"sweep {name}: this worker's trial was marked failed by another worker while it trained (judged "
                f"lost); it does not count, the worker goes on")
        write_snapshot(sweeps_root(runs_root) / name, study)
        new = [t for t in study.get_trials(deepcopy=False) if t.number not in before
               and t.user_attrs.get("worker_pid") == os.getpid()]
        for t in new:
            mine.append(t.number)
            ended[t.number] = TRIAL_STATES.get(t.state.name.lower(), t.state.name.lower())
            log(f"trial {t.number}: {ended[t.number]}" + (f", macro F1 {t.value:.4f}" if t.value is not None else "")
                + (f": {t.user_attrs['error']}" if t.user_attrs.get("error") else ""))
        if flags["cancelled"]:
            log("cancelled: the current trial's run keeps its checkpoints")
            break
    return {"sweep": name, "trials_run": mine, "states": ended, "seconds": round(time.perf_counter() - t0, 1)}


class WorkerFolder(GroupWorker):
    """One background worker of a sweep: <runs_root>/sweeps/<NAME>/workers/<wNN>/ with status.json and log.txt."""

    kind = "sweep worker"
    worker = "sweep-worker"
    area = SWEEPS_DIR
    group_word = "sweep"

    @property
    def sweep(self) -> str:
        return self.group

    def work(self) -> None:
        st = self.read_status()
        result = run_worker(self.root, self.sweep, int(st.get("trials", 1)), st.get("storage") or None, log=self.log,
                            quiet=True)
        states = list(result["states"].values())
        self.finish(bool(states) and all(s == "failed" for s in states),
                    f"every trial this worker ran failed ({len(states)}): see `maskcls sweep status {self.sweep}`",
                    trials_run=result["trials_run"])


def start_worker(runs_root, name: str, trials: int, storage: str | None = None) -> WorkerFolder:
    """A detached worker that outlives the studio; its trials queue for their device like training jobs. A password
    in `storage` reaches it by environment (argv and status.json are readable by others), never written down."""
    load_sweep(runs_root, name)
    if not isinstance(trials, int) or trials < 1:
        raise SweepError(f"a worker needs --trials of at least 1, got {trials!r}")
    worker = WorkerFolder.claim_next(runs_root, name)
    plain, password = split_password(storage) if storage else (None, None)
    env = dict(os.environ, **({PASSWORD_ENV: password} if password else {}))
    worker.start(env, trials=trials, storage=plain)
    return worker


def list_workers(runs_root, name: str) -> list[dict]:
    return WorkerFolder.states(runs_root, name)
