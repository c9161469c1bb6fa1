"""Comparing runs: one summary row per run (with its interval over people) and per repeat group, per-epoch curves,
config differences, a paired comparison of two runs or groups, safe deletion."""
from __future__ import annotations

import shutil
import time

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from maskcls.common.runfolder import RunFolder, is_run_folder
from maskcls.orchestration.jobs import job_info
from maskcls.orchestration.run_index import COLUMNS, index_tables


def eta_seconds(info) -> float | None:
    """Remaining seconds: the job's own measured ETA (steps at their measured pace, plus the validation passes)
    less the time since it wrote it; before the job measures one, elapsed time over progress; None before that."""
    if info.state != "running" or not info.started:
        return None
    if getattr(info, "eta_s", None) is not None:
        return max(0.0, info.eta_s - max(0.0, time.time() - (info.updated or time.time())))
    if info.progress <= 0:
        return None
    elapsed = time.time() - info.started
    return elapsed * (1 - info.progress) / info.progress


def runs_table(runs_root, groups: bool = True, rows: list[dict] | None = None,
               group_rows: list[dict] | None = None) -> pd.DataFrame:
    """Every run (from the run index, or the index `rows` a filter kept), then (with `groups`) each repeat group as
    one row; a caller that already read the index passes both and nothing is read again."""
    if rows is None or (groups and group_rows is None):
        runs, found = index_tables(runs_root, groups=groups)
        rows = runs if rows is None else rows
        group_rows = found if group_rows is None else group_rows
    table = pd.DataFrame(list(rows) + (list(group_rows) if groups else []), columns=COLUMNS)
    table["started"] = pd.to_datetime(table["started"], unit="s")
    return table


TEXT_COLUMNS = ("member", "model", "head", "loss", "sampler", "augmentation", "device", "kind", "group", "error")


def runs_display(table: pd.DataFrame) -> pd.DataFrame:
    """The Runs table as a person reads it: durations as "3 min 10 s", empty text cells blank (not "None")."""
    from maskcls.orchestration.estimate import duration_text
    shown = table.copy()
    shown.insert(shown.columns.get_loc("duration s"), "duration",
                 [duration_text(v) if v == v and v is not None else "" for v in shown["duration s"]])
    shown = shown.drop(columns=["duration s"])
    for col in TEXT_COLUMNS:
        if col in shown:
            shown[col] = shown[col].astype(object).where(shown[col].notna(), "")
    return shown


def prediction_set(runs_root, ref: str) -> tuple[list, str]:
    """The validation predictions a comparison uses for `ref` and what they are: a fold group's out-of-fold table,
    a repeat group's seeds, or a run's best epoch."""
    from maskcls.orchestration.folds import list_oof, read_oof
    from maskcls.orchestration.groups import group_root
    from maskcls.orchestration.repeats import list_repeat_groups, repeat_predictions
    root, name = group_root(runs_root, ref)
    whose = f" (pulled from {ref.split('/')[0]}'s server)" if name != ref else ""
    if name in list_oof(root):
        return [read_oof(root, name)], f"fold group {ref} (out of fold){whose}"
    if name in list_repeat_groups(root):
        frames = repeat_predictions(root, name)
        return frames, f"repeat group {ref} ({len(frames)} seeds){whose}"
    run = RunFolder.open(runs_root, ref)
    if not run.exists():
        raise ValueError(f"no run, fold group or repeat group named {ref!r} in {runs_root}")
    frame = run.read_predictions()
    if frame is None:
        raise ValueError(f"run {run.name!r} has no validation predictions yet (state {run.state()['state']})")
    origin = run.pulled()
    return [frame], (f"run {ref} (pulled from {origin['member']}'s server)" if origin else f"run {run.name}")


def compare_refs(runs_root, a: str, b: str, **kw) -> dict:
    """B against A (runs, fold groups or repeat groups): maskcls.train.comparison.compare_sets, with what each
    side is."""
    from maskcls.orchestration.groups import check_same_data
    from maskcls.train.comparison import compare_sets
    check_same_data(runs_root, a, b)
    set_a, what_a = prediction_set(runs_root, a)
    set_b, what_b = prediction_set(runs_root, b)
    out = {**compare_sets(set_a, set_b, names=(a, b), **kw), "a_is": what_a, "b_is": what_b}
    if out["claim"] == "models":
        out["training_noise"] = measured_seed_spread(runs_root)
    return out


def measured_seed_spread(runs_root) -> str | None:
    """What this runs root's repeat groups measured of training noise (None when it holds none): the yardstick a
    difference between two single runs has to be read against."""
    from maskcls.orchestration.repeats import list_repeat_groups, repeat_summary
    found = []
    for g in list_repeat_groups(runs_root):
        try:
            s = repeat_summary(runs_root, g, resamples=100)
        except ValueError:  # no completed seed yet, or a damaged table: nothing measured
            continue
        if s["completed"] > 1:
            found.append(f"{g}: sd {s['macro_f1_sd']:.3f} over {s['completed']} seeds")
    return ("the repeat groups here measured a seed-to-seed spread of " + "; ".join(found)) if found else None


def curves_figure(runs_root, names: list[str]) -> go.Figure:
    """Loss, accuracy and macro F1 per epoch, one line per run (and train vs val for loss)."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", "validation accuracy", "validation macro F1"))
    for name in names:
        m = pd.DataFrame(RunFolder.open(runs_root, name).read_metrics())
        if m.empty:
            continue
        m = m.reindex(columns=sorted(set(m.columns) | {"train_loss", "val_loss", "val_accuracy", "val_macro_f1"}))
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
    cfgs = {}
    from maskcls.train.config import run_config
    for n in names:  # a damaged config shows as one row saying so, never as a page that fails or as its values
        try:
            run = RunFolder.open(runs_root, n)
            run_config(run)
            cfgs[n] = run.read_config()
        except (OSError, ValueError) as e:
            cfgs[n] = {"(config.json)": f"damaged: {e}"[:300]}
    keys = sorted(set().union(*cfgs.values())) if cfgs else []
    rows = {k: [str(cfgs[n].get(k)) for n in names] for k in keys}
    diff = {k: v for k, v in rows.items() if len(set(v)) > 1}
    return pd.DataFrame.from_dict(diff, orient="index", columns=names)


def delete_run(runs_root, name: str) -> None:
    """Remove a run folder; a queued or running job must be cancelled first."""
    run = RunFolder.open(runs_root, name)
    if not run.exists():
        raise ValueError(f"no run named {name!r}")
    if not is_run_folder(run.path):
        raise ValueError(f"{str(run.path)!r} is not a run folder (no config.json and status.json): not deleted")
    run.refuse_if_pulled("delete")
    state = job_info(run).state
    if state in ("queued", "running"):
        raise ValueError(f"run {name!r} is {state}: cancel it before deleting")
    shutil.rmtree(run.path)
