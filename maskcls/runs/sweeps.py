"""Sweeps: Optuna studies over run-config keys, whose trials are ordinary runs.

A sweep = a base RunConfig + a search space over its keys + a sampler and a pruner, saved as
<runs_root>/sweeps/<NAME>/sweep.json. The study lives in an Optuna storage: by default one SQLite file in the
runs root (<runs_root>/sweeps/optuna.db), or a database URL (postgresql://...) that the workers of several
servers share. A worker (`maskcls sweep run`) asks the study for parameters, trains the trial as the run
<NAME>-tNNN (same folder, curves, checkpoints as any run, queued for its device like a training job) and
reports the validation macro F1 after every epoch, so the pruner can stop it early: such a run ends
"pruned", its checkpoints loadable. A killed worker leaves its trial RUNNING in the storage; the storage's
heartbeat (any host) and the run's dead pid (this host) turn it into a failed trial.
"""
from __future__ import annotations

import difflib
import math
import os
import socket
import sys
import time
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from maskcls.common.devices import device_of
from maskcls.common.fileio import check_name, inside, read_json, write_json
from maskcls.common.jobfolder import Cancelled, JobFolder, error_text, now, raise_cancelled_on_sigterm
from maskcls.common.procs import is_alive, proc_start, spawn_detached
from maskcls.train.config import RunConfig

SWEEPS_DIR = "sweeps"
KINDS = ("categorical", "int", "float", "log_float")
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "none")
NOT_SWEPT = {"data_root": "the data is the sweep's, not a trial's", "device": "the worker picks the device",
             "gpus": "each trial trains in its worker's process, on one device", "cache_dir": "an execution detail",
             "workers": "an execution detail"}
HEARTBEAT_S, GRACE_S = 10, 30


class SweepError(ValueError):
    """A sweep or search space that cannot be used; the message names the key or the sweep."""


# -- the search space -----------------------------------------------------------------------------------
@dataclass
class Param:
    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: list = field(default_factory=list)

    def suggest(self, trial):
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1))
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "log_float", step=self.step)

    def grid(self) -> list:
        """The values a grid sampler walks: the choices, or every step of an int range."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step:
            n = int(math.floor((self.high - self.low) / self.step + 1e-9))
            return [round(self.low + i * self.step, 12) for i in range(n + 1)]
        raise SweepError(f"search space key {self.key!r}: a grid needs its values: give choices, an int range, or a "
                         f"float range with a step")


def _field_kind(key: str) -> str:
    """What a RunConfig key holds, as the space understands it: bool, int, float, str or other."""
    hint = typing.get_type_hints(RunConfig)[key]
    if key == "augment":
        return "str"  # a preset name in a sweep (full spec dicts stay in the base config)
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(hint, "other")


def _check_choice(key: str, kind: str, value):
    if kind == "bool" and not isinstance(value, bool):
        raise SweepError(f"search space key {key!r} holds true/false; choice {value!r} is not")
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise SweepError(f"search space key {key!r} holds whole numbers; choice {value!r} is not one")
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise SweepError(f"search space key {key!r} holds numbers; choice {value!r} is not one")
    if kind == "str" and not isinstance(value, str):
        raise SweepError(f"search space key {key!r} holds text; choice {value!r} is not text")


def _parse_range(key: str, kind: str, spec: dict, holds: str) -> Param:
    if holds not in ("int", "float") or (holds == "int" and kind != "int"):
        what = {"bool": "true/false", "str": "text", "int": "whole numbers", "float": "numbers"}.get(holds, holds)
        expected = {"bool": "categorical", "str": "categorical", "int": "int"}.get(holds, "int, float or log_float")
        raise SweepError(f"search space key {key!r} holds {what}: a {kind} range does not fit it; use {expected}")
    low, high, step = spec.get("low"), spec.get("high"), spec.get("step")
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SweepError(f"search space key {key!r}: {name} must be a finite number, got {v!r}")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise SweepError(f"search space key {key!r}: an int range needs whole-number low and high, got {low!r}..{high!r}")
    if not low < high:
        raise SweepError(f"search space key {key!r}: low must be below high, got {low!r}..{high!r}")
    if kind == "log_float" and low <= 0:
        raise SweepError(f"search space key {key!r}: a log_float range needs low > 0, got {low!r}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0
                             or kind == "log_float"):
        raise SweepError(f"search space key {key!r}: step must be a number above 0 (and not with log_float), got {step!r}")
    return Param(key, kind, float(low), float(high), step)


def parse_space(space) -> dict[str, Param]:
    """A search space from its JSON form: {"lr": {"type": "log_float", "low": 1e-4, "high": 1e-2},
    "loss": {"type": "categorical", "choices": ["ce", "focal"]}, "epochs": {"type": "int", "low": 2, "high": 6}}."""
    if not isinstance(space, dict):
        raise SweepError(f"a search space must be a JSON object of config keys, got {type(space).__name__}")
    if not space:
        raise SweepError("the search space is empty: name at least one config key to vary, e.g. "
                         '{"lr": {"type": "log_float", "low": 0.0001, "high": 0.01}}')
    names = [f.name for f in fields(RunConfig)]
    out = {}
    for key, spec in space.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, 3)
            raise SweepError(f"unknown key {key!r} in the search space" + (f"; did you mean {', '.join(close)}?" if close
                                                                              else "; expected run-config keys"))
        if key in NOT_SWEPT:
            raise SweepError(f"{key!r} cannot be swept: {NOT_SWEPT[key]}")
        if not isinstance(spec, dict) or spec.get("type") not in KINDS:
            raise SweepError(f"search space key {key!r}: expected {{\"type\": one of {', '.join(KINDS)}, ...}}, got "
                             f"{spec!r}")
        holds = _field_kind(key)
        if holds == "other":
            raise SweepError(f"{key!r} cannot be swept: only number, text and true/false keys can")
        if spec["type"] == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise SweepError(f"search space key {key!r}: categorical needs a non-empty list of choices")
            for c in choices:
                _check_choice(key, holds, c)
                try:
                    RunConfig.from_dict({key: c})
                except ValueError as e:
                    raise SweepError(f"search space key {key!r}: choice {c!r} is not a valid value ({e})") from None
            out[key] = Param(key, "categorical", choices=list(choices))
        else:
            out[key] = _parse_range(key, spec["type"], spec, holds)
    return out


# -- the sweep file ---------------------------------------------------------------------------------------
@dataclass
class Sweep:
    name: str
    base: dict
    space: dict
    sampler: str = "tpe"
    pruner: str = "median"
    storage: str = ""  # "" = the runs root's SQLite file
    total: int = 0  # trials in all (0 = until the workers' --trials run out); a grid's size caps it
    seed: int = 0
    created: float = 0.0

    def params(self) -> dict[str, Param]:
        return parse_space(self.space)

    def to_dict(self) -> dict:
        return asdict(self)


def sweeps_root(runs_root) -> Path:
    return Path(runs_root) / SWEEPS_DIR


def sweep_path(runs_root, name: str) -> Path:
    return inside(sweeps_root(runs_root), check_name(name, "sweep name"), "sweep.json")


def default_storage(runs_root) -> str:
    return f"sqlite:///{(sweeps_root(runs_root) / 'optuna.db').resolve()}"


PASSWORD_ENV = "MASKCLS_STORAGE_PASSWORD"  # the storage's password, never written to sweep.json or a command line


def _parsed(url: str):
    """The URL as SQLAlchemy reads it, None when it is not one (then _storage refuses it by name)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        return None


def split_password(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password or None): what a sweep may store and show to `ps`."""
    from sqlalchemy.engine import URL
    u = _parsed(url)
    if u is None or u.password is None:
        return url, None
    plain = URL.create(u.drivername, u.username, None, u.host, u.port, u.database, u.query)
    return plain.render_as_string(hide_password=False), str(u.password)


def with_password(url: str) -> str:
    """A stored URL with a user and no password, completed from MASKCLS_STORAGE_PASSWORD when it is set
    (PostgreSQL's driver also reads PGPASSWORD and ~/.pgpass by itself)."""
    password = os.environ.get(PASSWORD_ENV)
    u = _parsed(url) if password else None
    if u is None or not u.username or u.password is not None:
        return url
    return u.set(password=password).render_as_string(hide_password=False)


def storage_url(sweep: Sweep, runs_root, override: str | None = None) -> str:
    return with_password(override or sweep.storage or default_storage(runs_root))


def shown_url(url: str) -> str:
    """A storage URL fit to print: the password hidden."""
    u = _parsed(url)
    return url if u is None else u.render_as_string(hide_password=True)


def _quiet_optuna():
    """Optuna's INFO lines and its 'experimental feature' warnings (heartbeats) are not the user's business."""
    import warnings

    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _storage(url: str):
    import optuna
    _quiet_optuna()
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S,
                                          grace_period=GRACE_S)
    except Exception as e:  # a bad URL, a missing driver, a server that does not answer
        raise SweepError(f"cannot open the sweep storage {shown_url(url)}: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}") from None


def _sampler(sweep: Sweep):
    import optuna
    if sweep.sampler == "grid":
        return optuna.samplers.GridSampler({k: p.grid() for k, p in sweep.params().items()}, seed=sweep.seed)
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=None)
    return optuna.samplers.TPESampler(n_startup_trials=4)


def _pruner(sweep: Sweep):
    import optuna
    if sweep.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    if sweep.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def grid_size(sweep: Sweep) -> int:
    return math.prod(len(p.grid()) for p in sweep.params().values())


def create_sweep(runs_root, name: str, base: RunConfig, space: dict, sampler: str = "tpe", pruner: str = "median",
                 storage: str = "", total: int = 0, resume: bool = False) -> Sweep:
    """Check everything, then write sweep.json and create the study. An existing name is refused unless
    `resume` (the study and its trials are kept; the new space, sampler and pruner apply to new trials)."""
    import optuna
    check_name(name, "sweep name")
    if sampler not in SAMPLERS:
        raise SweepError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    if pruner not in PRUNERS:
        raise SweepError(f"unknown pruner {pruner!r}; valid: {', '.join(PRUNERS)}")
    if not isinstance(total, int) or total < 0:
        raise SweepError(f"--trials in all must be 0 (no limit) or more, got {total!r}")
    base.validate()
    if base.full_data:
        raise SweepError("a sweep compares trials by validation macro F1: full_data runs have none (set full_data "
                         "to false in the base)")
    if base.gpus != 1:
        raise SweepError(f"a sweep trains each trial in its worker's process on one device: base gpus must be 1, "
                         f"got {base.gpus}")
    parse_space(space)
    path = sweep_path(runs_root, name)
    if path.exists() and not resume:
        raise SweepError(f"a sweep named {name!r} already exists in {runs_root}: add trials with `maskcls sweep run "
                         f"{name}`, re-define it with --resume, or choose another name")
    old = load_sweep(runs_root, name) if path.exists() else None
    sweep = Sweep(name, base.to_dict(), space, sampler, pruner, split_password(storage)[0] if storage else
                  (old.storage if old else ""), total, created=old.created if old else now())
    if sampler == "grid":
        size = grid_size(sweep)
        sweep.total = min(total, size) if total else size
    url = storage_url(sweep, runs_root, storage or None)  # the password, if given, is used but not stored
    if url.startswith("sqlite"):
        sweeps_root(runs_root).mkdir(parents=True, exist_ok=True)
    optuna.create_study(study_name=name, storage=_storage(url), direction="maximize", load_if_exists=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, sweep.to_dict())
    return sweep


def load_sweep(runs_root, name: str) -> Sweep:
    path = sweep_path(runs_root, name)
    if not path.is_file():
        known = ", ".join(s["name"] for s in list_sweeps(runs_root)) or "none yet"
        raise SweepError(f"no sweep named {name!r} in {runs_root} (sweeps: {known})")
    try:
        data = read_json(path)
        sweep = Sweep(**data)
        sweep.params()
    except (ValueError, TypeError) as e:
        raise SweepError(f"sweep {name!r}: {path} is damaged ({e}); re-create it with `maskcls sweep create {name} "
                         f"... --resume`") from None
    return sweep


def open_study(runs_root, sweep: Sweep, storage: str | None = None):
    import optuna
    try:
        return optuna.load_study(study_name=sweep.name, storage=_storage(storage_url(sweep, runs_root, storage)),
                                 sampler=_sampler(sweep), pruner=_pruner(sweep))
    except KeyError:
        raise SweepError(f"sweep {sweep.name!r}: its study is not in {shown_url(storage_url(sweep, runs_root, storage))}"
                         f" (another storage? pass the one it was created with: --storage URL)") from None


def list_sweeps(runs_root) -> list[dict]:
    root = sweeps_root(runs_root)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if (p / "sweep.json").is_file():
            try:
                out.append(asdict(load_sweep(runs_root, p.name)))
            except ValueError:
                continue  # a damaged sweep file: `sweep status NAME` says what is wrong with it
    return out


def enqueue_trial(runs_root, name: str, params: dict, storage: str | None = None) -> None:
    """Ask for these parameters next (a known-good setting to compare against, or a reproduction)."""
    sweep = load_sweep(runs_root, name)
    space = sweep.params()
    unknown = sorted(set(params) - set(space))
    if unknown:
        raise SweepError(f"cannot enqueue {unknown[0]!r}: not in sweep {name!r}'s space ({', '.join(sorted(space))})")
    open_study(runs_root, sweep, storage).enqueue_trial(params)


# -- workers ----------------------------------------------------------------------------------------------
def trial_run_name(sweep: Sweep, number: int) -> str:
    return f"{sweep.name}-t{number:03d}"


def trial_config(sweep: Sweep, params: dict) -> RunConfig:
    return RunConfig.from_dict({**sweep.base, **params})


def reap_lost_trials(runs_root, study) -> list[int]:
    """RUNNING trials whose worker on this host is gone (its run's pid dead) become FAIL at once; trials of
    other hosts are left to the storage's heartbeat."""
    import optuna
    from optuna.trial import TrialState

    from maskcls.train.rundir import RunDir
    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        name, t_host = t.user_attrs.get("run"), t.user_attrs.get("host")
        if not name or t_host != host:
            continue
        st = RunDir(runs_root, name).read_status()
        worker = t.user_attrs.get("worker_pid"), t.user_attrs.get("worker_start")
        if not is_alive(*worker):
            study._storage.set_trial_user_attr(t._trial_id, "error", "lost: its worker ended mid-trial (killed?)")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            failed.append(t.number)
            if st.get("state") in ("queued", "running"):
                RunDir(runs_root, name).write_status(state="failed", ended=now(), pid=None,
                                                     error="lost: the sweep worker ended without a final status")
    optuna.storages.fail_stale_trials(study)
    return failed


def _objective(runs_root, sweep: Sweep, params_space: dict, progress, log, flags: dict):
    import optuna

    from maskcls.train.driver import run_training
    from maskcls.train.queue import wait_for_slot
    from maskcls.train.rundir import create_run

    def train_trial(trial, cfg: RunConfig, name: str) -> dict:
        run = create_run(runs_root, name, cfg)
        device = device_of(cfg.device)
        run.write_status(state="queued", device=device, submitted=now(), progress=0.0, epoch=0, epochs=cfg.epochs,
                         pid=os.getpid(), pid_start=proc_start(os.getpid()), sweep=sweep.name, trial=trial.number)
        try:
            held = wait_for_slot(run, device)
        except Cancelled:
            run.write_status(state="cancelled", ended=now(), pid=None)
            raise
        if device.startswith("cuda"):
            cfg.device = device

        def should_stop(epoch: int, row: dict) -> bool:
            trial.report(row["val_macro_f1"], epoch)
            return trial.should_prune()
        try:
            return run_training(cfg, run, False, progress, should_stop)
        finally:
            for f in held:
                f.close()

    def objective(trial) -> float:
        params = {k: p.suggest(trial) for k, p in params_space.items()}
        name = trial_run_name(sweep, trial.number)
        for key, value in (("run", name), ("host", socket.gethostname()), ("worker_pid", os.getpid()),
                           ("worker_start", proc_start(os.getpid()))):
            trial.set_user_attr(key, value)
        log(f"trial {trial.number} -> run {name}: " + ", ".join(f"{k}={v}" for k, v in params.items()))
        try:
            status = train_trial(trial, trial_config(sweep, params), name)
        except Cancelled:
            flags["cancelled"] = True
            trial.set_user_attr("error", "cancelled")
            raise
        except Exception as e:  # a refused combination, a failed run: the trial fails, the worker goes on
            trial.set_user_attr("error", error_text(e))
            raise
        if status.get("state") == "pruned":
            raise optuna.TrialPruned(f"pruned after epoch {status.get('epoch')}")
        return float(status.get("best_f1", 0.0))
    return objective


def count_done(study) -> int:
    """Trials that count towards the sweep's total: complete, pruned, or being run."""
    from optuna.trial import TrialState
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)))


def run_worker(runs_root, name: str, trials: int, storage: str | None = None, progress=None, log=print) -> dict:
    """Run up to `trials` trials in this process, stopping early when the sweep's total is reached; several
    workers (processes, machines) may run at once against one storage. Returns what this worker did."""
    if not isinstance(trials, int) or trials < 1:
        raise SweepError(f"--trials must be at least 1, got {trials!r}")
    sweep = load_sweep(runs_root, name)
    study = open_study(runs_root, sweep, storage)
    space = sweep.params()
    reap_lost_trials(runs_root, study)
    flags = {"cancelled": False}
    objective = _objective(runs_root, sweep, space, progress, log, flags)
    raise_cancelled_on_sigterm("sweep worker cancelled")
    mine, t0 = [], time.perf_counter()
    for _ in range(trials):
        if sweep.total and count_done(study) >= sweep.total:
            log(f"sweep {name}: {sweep.total} trials reached")
            break
        before = {t.number for t in study.get_trials(deepcopy=False)}
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        except Cancelled:
            log("cancelled: the current trial's run keeps its checkpoints")
            break
        new = [t for t in study.get_trials(deepcopy=False) if t.number not in before
               and t.user_attrs.get("worker_pid") == os.getpid()]
        mine += [t.number for t in new]
        for t in new:
            log(f"trial {t.number}: {t.state.name.lower()}" + (f", macro F1 {t.value:.4f}" if t.value is not None else ""))
        if flags["cancelled"]:
            log("cancelled: the current trial's run keeps its checkpoints")
            break
    return {"sweep": name, "trials_run": mine, "seconds": round(time.perf_counter() - t0, 1)}


# -- what the sweep shows ---------------------------------------------------------------------------------
def trials_table(runs_root, name: str, storage: str | None = None, study=None):
    """One row per trial: number, state, best validation macro F1, run name, seconds, and each parameter.
    `study`: an already opened one (a page refresh opens it once for the table and the figures)."""
    import pandas as pd
    study = study or open_study(runs_root, load_sweep(runs_root, name), storage)
    reap_lost_trials(runs_root, study)
    rows = []
    for t in study.get_trials(deepcopy=False):
        end = t.datetime_complete.timestamp() if t.datetime_complete else time.time()
        start = t.datetime_start.timestamp() if t.datetime_start else end
        state = t.state.name.lower()
        rows.append({"trial": t.number, "state": {"complete": "completed", "fail": "failed"}.get(state, state),
                     "best_f1": t.value if t.value is not None else (max(t.intermediate_values.values())
                                                                     if t.intermediate_values else None),
                     "epochs_run": len(t.intermediate_values), "run": t.user_attrs.get("run", ""),
                     "seconds": round(end - start, 1), "params": dict(t.params),
                     "error": t.user_attrs.get("error", "")})
    return pd.DataFrame(rows, columns=["trial", "state", "best_f1", "epochs_run", "run", "seconds", "params", "error"])


def best_trial_config(runs_root, name: str, storage: str | None = None) -> tuple[int, RunConfig]:
    """The best completed trial's number and its full run config."""
    sweep = load_sweep(runs_root, name)
    study = open_study(runs_root, sweep, storage)
    try:
        best = study.best_trial
    except ValueError:
        raise SweepError(f"sweep {name!r} has no completed trial yet") from None
    return best.number, trial_config(sweep, best.params)


def sweep_figures(runs_root, name: str, storage: str | None = None, study=None) -> dict:
    """Plotly figures optuna.visualization draws: best-so-far history, parallel coordinates, importances
    (each only when the finished trials can support it)."""
    import optuna.visualization as vis
    from optuna.trial import TrialState
    study = study or open_study(runs_root, load_sweep(runs_root, name), storage)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    figs = {}
    if done:
        figs["history"] = vis.plot_optimization_history(study, target_name="validation macro F1")
        figs["parallel"] = vis.plot_parallel_coordinate(study, target_name="validation macro F1")
        figs["intermediate"] = vis.plot_intermediate_values(study)
    if len(done) >= 2 and len({str(t.params) for t in done}) >= 2:
        try:
            figs["importances"] = vis.plot_param_importances(study, target_name="validation macro F1")
        except (RuntimeError, ValueError, ZeroDivisionError):
            pass  # the importance evaluator needs variation it cannot find yet
    return figs


# -- background workers (the studio's "start workers", `sweep run --background`) --------------------------
class WorkerFolder(JobFolder):
    """One background worker of a sweep: <runs_root>/sweeps/<NAME>/workers/<wNN>/ with status.json and log.txt."""

    kind = "sweep worker"

    def __init__(self, runs_root, sweep: str, name: str):
        self.name = check_name(name, "worker name")
        self.path = inside(sweeps_root(runs_root), check_name(sweep, "sweep name"), "workers", self.name)


def start_worker(runs_root, name: str, trials: int, storage: str | None = None) -> WorkerFolder:
    """A detached `maskcls sweep run NAME --trials N` process that outlives the studio; its trials queue for
    their device like training jobs."""
    load_sweep(runs_root, name)
    if not isinstance(trials, int) or trials < 1:
        raise SweepError(f"a worker needs --trials of at least 1, got {trials!r}")
    folder = sweeps_root(runs_root) / name / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    n = 1 + max([int(p.name[1:]) for p in folder.iterdir() if p.name[1:].isdigit()] or [0])
    while True:
        worker = WorkerFolder(runs_root, name, f"w{n:02d}")
        try:
            os.mkdir(worker.path)
            break
        except FileExistsError:
            n += 1
    worker.write_status(state="queued", submitted=now(), trials=trials)
    plain, password = split_password(storage) if storage else (None, None)
    args = [sys.executable, "-m", "maskcls", "sweep", "run", name, "--trials", str(trials), "--job", worker.name,
            "--runs-root", str(Path(runs_root).resolve()), "--quiet"] + (["--storage", plain] if plain else [])
    env = dict(os.environ, PYTHONUNBUFFERED="1", **({PASSWORD_ENV: password} if password else {}))
    pid = spawn_detached(args, worker.log_path, env)  # the password by environment: argv is visible to `ps`
    worker.write_status(pid=pid, pid_start=proc_start(pid), pgid=pid)
    return worker


def list_workers(runs_root, name: str) -> list[dict]:
    folder = sweeps_root(runs_root) / check_name(name, "sweep name") / "workers"
    if not folder.is_dir():
        return []
    return [WorkerFolder(runs_root, name, p.name).state() for p in sorted(folder.iterdir()) if p.is_dir()]


def run_worker_job(runs_root, name: str, worker: str, trials: int, storage: str | None = None) -> dict:
    """The background worker process itself: the worker folder's status around `run_worker`."""
    job = WorkerFolder(runs_root, name, worker)
    job.write_status(state="running", pid=os.getpid(), pid_start=proc_start(os.getpid()), pgid=os.getpgid(0),
                     started=now())
    try:
        result = run_worker(runs_root, name, trials, storage, log=job.log)
    except Cancelled:
        return job.write_status(state="cancelled", ended=now(), pid=None)
    except BaseException as e:
        job.log("failed: " + error_text(e))
        job.write_status(state="failed", ended=now(), pid=None, error=error_text(e))
        raise
    return job.write_status(state="completed", ended=now(), pid=None, trials_run=result["trials_run"])
