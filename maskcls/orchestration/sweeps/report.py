"""What a sweep shows: its trials, the best trial's config, Optuna's figures. Everything here only reads: a trial
whose worker is gone shows as `lost` (derived, as a job's state is), and stays RUNNING in the storage until a
worker or `maskcls sweep reap` fails it.
"""
from __future__ import annotations

import time

from maskcls.common.runfolder import RunFolder
from maskcls.orchestration.sweeps.definition import load_sweep, open_study, sweeps_root, trial_config
from maskcls.orchestration.sweeps.snapshot import LOST, read_snapshot, trial_record, worker_gone
from maskcls.orchestration.sweeps.space import SweepError

COLUMNS = ["trial", "state", "best_f1", "f1_low", "f1_high", "note", "epochs_run", "run", "seconds", "params", "error"]


def trial_rows(runs_root, name: str, storage: str | None = None, study=None, live: bool = False) -> list[dict]:
    """One row per trial (trial, state, best F1 and its interval, run, seconds, parameters, error). From the
    workers' snapshot unless `live` or `study` is given (then from the storage): a poll needs no Optuna."""
    sweep = load_sweep(runs_root, name)
    records = None if (live or study is not None or storage) else read_snapshot(sweeps_root(runs_root) / name)
    if records is None:
        study = study or open_study(runs_root, sweep, storage)
        records = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    return mark_best([_row(runs_root, r) for r in records])


def _row(runs_root, r: dict) -> dict:
    state, error = r["state"], r["attrs"].get("error", "")
    if state == "running" and worker_gone(r["attrs"]):
        state, error = "lost", LOST
    run = r["attrs"].get("run", "")
    ci = (RunFolder(runs_root, run).read_intervals() or {}).get("macro_f1_ci") if run else None
    end = r["end"] or time.time()
    best = r["value"] if r["value"] is not None else max(r["intermediate"].values(), default=None)
    return {"trial": r["trial"], "state": state, "best_f1": best, "f1_low": ci[0] if ci else None,
            "f1_high": ci[1] if ci else None, "note": "", "epochs_run": len(r["intermediate"]), "run": run,
            "seconds": round(end - (r["start"] or end), 1), "params": r["params"], "error": error}


def trials_table(runs_root, name: str, storage: str | None = None, study=None, live: bool = False):
    """trial_rows as a DataFrame (the Sweeps page's table)."""
    import pandas as pd
    return pd.DataFrame(trial_rows(runs_root, name, storage, study, live), columns=COLUMNS)


def mark_best(rows: list[dict]) -> list[dict]:
    """Say when the best completed trial is not clearly best: its F1 lies inside other trials' intervals."""
    done = [r for r in rows if r["state"] == "completed" and r["best_f1"] is not None]
    if len(done) < 2:
        return rows
    best = max(done, key=lambda r: r["best_f1"])
    rivals = [r["trial"] for r in done if r is not best and (r["f1_high"] or -1) >= best["best_f1"]]
    best["note"] = ("best, but inside the interval of trial(s) " + ", ".join(map(str, rivals))
                    + ": no evidence it is better") if rivals else "best"
    return rows


def best_trial_config(runs_root, name: str, storage: str | None = None):
    """The best completed trial's number and its full run config."""
    sweep = load_sweep(runs_root, name)
    study = open_study(runs_root, sweep, storage)
    try:
        best = study.best_trial
    except ValueError:
        raise SweepError(f"sweep {name!r} has no completed trial yet") from None
    return best.number, trial_config(sweep, best.params)


def sweep_figures(runs_root, name: str, storage: str | None = None, study=None) -> dict:
    """Plotly figures optuna.visualization draws: best-so-far history, parallel coordinates, importances (each
    only when the finished trials can support it)."""
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
