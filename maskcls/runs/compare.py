"""Comparing runs: one summary row per run, per-epoch curves, config differences, safe deletion."""
from __future__ import annotations

import shutil
import time

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from maskcls.runs.jobs import job_info
from maskcls.train.rundir import RunDir, is_run_folder, list_runs


def eta_seconds(info) -> float | None:
    """Remaining seconds from elapsed time and progress (None until there is progress to go by)."""
    if info.state != "running" or not info.started or info.progress <= 0:
        return None
    elapsed = time.time() - info.started
    return elapsed * (1 - info.progress) / info.progress


def run_row(run: RunDir) -> dict:
    info = job_info(run)
    try:
        cfg = run.read_config()
    except (OSError, ValueError):
        cfg = {}
    metrics = run.read_metrics()
    scored = [m for m in metrics if m.get("val_macro_f1") is not None]  # full-data runs have no validation
    best = max(scored, key=lambda m: m["val_macro_f1"]) if scored else {}
    aug = cfg.get("augment")
    end = info.ended or (time.time() if info.state == "running" else None)
    return {"name": run.name, "state": info.state, "model": cfg.get("model"), "head": cfg.get("head"),
            "loss": cfg.get("loss"), "sampler": cfg.get("sampler"),
            "augmentation": aug if isinstance(aug, str) else "custom spec",
            "best macro F1": best.get("val_macro_f1"), "best accuracy": max((m["val_accuracy"] for m in scored), default=None),
            "epochs": len(metrics), "of": cfg.get("epochs"), "device": info.device,
            "duration s": round(end - info.started, 1) if (end and info.started) else None,
            "started": pd.to_datetime(info.started, unit="s") if info.started else None, "error": info.error}


COLUMNS = ["name", "state", "model", "head", "loss", "sampler", "augmentation", "best macro F1", "best accuracy",
           "epochs", "of", "device", "duration s", "started", "error"]


def runs_table(runs_root) -> pd.DataFrame:
    return pd.DataFrame([run_row(r) for r in list_runs(runs_root)], columns=COLUMNS)


def curves_figure(runs_root, names: list[str]) -> go.Figure:
    """Loss, accuracy and macro F1 per epoch, one line per run (and train vs val for loss)."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", "validation accuracy", "validation macro F1"))
    for name in names:
        m = pd.DataFrame(RunDir(runs_root, name).read_metrics())
        if m.empty:
            continue
        fig.add_trace(go.Scatter(x=m["epoch"], y=m["train_loss"], name=f"{name} train", mode="lines+markers",
                                 line=dict(dash="dot")), 1, 1)
        fig.add_trace(go.Scatter(x=m["epoch"], y=m["val_loss"], name=f"{name} val", mode="lines+markers"), 1, 1)
        fig.add_trace(go.Scatter(x=m["epoch"], y=m["val_accuracy"], name=f"{name}", mode="lines+markers",
                                 showlegend=False), 1, 2)
        fig.add_trace(go.Scatter(x=m["epoch"], y=m["val_macro_f1"], name=f"{name}", mode="lines+markers",
                                 showlegend=False), 1, 3)
    fig.update_layout(height=340, margin=dict(t=40, b=10))
    fig.update_xaxes(title_text="epoch")
    return fig


def config_diff(runs_root, names: list[str]) -> pd.DataFrame:
    """Rows = config keys whose values differ between the runs, columns = runs."""
    cfgs = {n: RunDir(runs_root, n).read_config() for n in names}
    keys = sorted(set().union(*cfgs.values())) if cfgs else []
    rows = {k: [str(cfgs[n].get(k)) for n in names] for k in keys}
    diff = {k: v for k, v in rows.items() if len(set(v)) > 1}
    return pd.DataFrame.from_dict(diff, orient="index", columns=names)


def delete_run(runs_root, name: str) -> None:
    """Remove a run folder; a queued or running job must be cancelled first."""
    run = RunDir(runs_root, name)
    if not run.exists():
        raise ValueError(f"no run named {name!r}")
    if not is_run_folder(run.path):
        raise ValueError(f"{str(run.path)!r} is not a run folder (no config.json and status.json): not deleted")
    state = job_info(run).state
    if state in ("queued", "running"):
        raise ValueError(f"run {name!r} is {state}: cancel it before deleting")
    shutil.rmtree(run.path)
