"""K-fold training: K person-level stratified folds as runs NAME-fold1..NAME-foldK, and their out-of-fold table.

The out-of-fold table (<runs_root>/NAME-oof.csv: path, person_id, label, fold, p0..p17) holds one row per
training image, each predicted by the fold run that held its person out (the best epoch's validation
predictions of that run). It is what the winners' label-error hunt and class-bias tuning want: every image
scored by a model that never trained on it. The bias gain is shown cross-fitted (fit on K-1 folds, scored on
the held-out one), so the figure a user sees is not optimistic.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls.common.fileio import check_name, inside, write_csv
from maskcls.infer.evaluation import apply_bias, tune_biases
from maskcls.train.config import RunConfig
from maskcls.train.metrics import macro_f1
from maskcls.common.runfolder import RunFolder, probs_of

FOLD_RE = re.compile(r"^(?P<name>.+)-fold(?P<k>\d+)$")
PROBS = [f"p{i}" for i in range(18)]


def check_folds(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 20:
        raise ValueError(f"--folds must be a whole number from 2 to 20, got {k!r}")
    return k


def fold_names(name: str, k: int) -> list[str]:
    check_name(name)
    return [check_name(f"{name}-fold{i + 1}") for i in range(check_folds(k))]


def fold_configs(cfg: RunConfig, k: int) -> list[RunConfig]:
    """The same config K times, each holding out one fold of the people (fold i of k)."""
    check_folds(k)
    return [RunConfig.from_dict({**cfg.to_dict(), "fold": i, "n_folds": k}) for i in range(k)]


def oof_path(runs_root, name: str) -> Path:
    return inside(runs_root, f"{check_name(name)}-oof.csv")


def train_folds(cfg: RunConfig, runs_root, name: str, k: int, *, progress=None, say=print) -> dict:
    """Train the K folds one after another in this process, then write the out-of-fold table."""
    from maskcls.orchestration.team.autopush import push_if_asked
    from maskcls.train.driver import check_startable, train_run
    names = fold_names(name, k)
    check_startable(cfg)
    check_free(runs_root, names + [f"{name}-oof.csv"])
    check_enough_people(cfg, k)
    for run_name, fold_cfg in zip(names, fold_configs(cfg, k)):
        say(f"fold {fold_cfg.fold + 1}/{k}: run {run_name}")
        train_run(fold_cfg, runs_root, run_name, progress=progress)
        push_if_asked(RunFolder(runs_root, run_name))
    return write_oof(runs_root, name)


def check_enough_people(cfg: RunConfig, k: int) -> None:
    """K folds need at least K people in each fold's stratification: refuse before fold 1's folder exists."""
    from maskcls.data.index import index_data
    people = index_data(cfg.data_root, verify=False).train["person_id"].nunique()
    if people < k:
        raise ValueError(f"--folds {k} needs at least {k} people to hold one out per fold; {cfg.data_root} has "
                         f"{people}")


def check_free(runs_root, names: list[str]) -> None:
    """Refuse fold names that are taken, before any fold starts."""
    taken = [n for n in names if os.path.exists(os.path.join(runs_root, n))]
    if taken:
        raise ValueError(f"{taken[0]!r} already exists in {runs_root}: choose another name for the folds")


def save_fold_bias(runs_root, name: str, fit: dict) -> None:
    """The out-of-fold class biases into every fold run, so `predict --folds NAME --tuned` applies them."""
    from maskcls.infer.evaluation import save_bias
    for run in fold_runs(runs_root, name):
        save_bias(runs_root, run.name, fit["bias"], before=fit["macro_f1"], after=fit["in_sample_f1"],
                  checkpoint="best.pt")


def fold_runs(runs_root, name: str, complete: bool = True) -> list[RunFolder]:
    """The fold runs of NAME, in fold order; their configs must agree on K. With `complete` (what every use of the
    group as a whole needs: the out-of-fold table, its F1, the fold ensemble) each fold must have completed."""
    runs = []
    for p in sorted(Path(runs_root).glob(f"{name}-fold*")):
        m = FOLD_RE.match(p.name)
        if m and m["name"] == name and (p / "config.json").is_file():
            runs.append(RunFolder(runs_root, p.name))
    runs.sort(key=lambda r: int(FOLD_RE.match(r.name)["k"]))
    if not runs:
        raise ValueError(f"no fold runs named {name}-fold1, {name}-fold2, ... in {runs_root}")
    k = RunConfig.from_dict(runs[0].read_config()).n_folds
    if len(runs) != k:
        raise ValueError(f"{name}: {len(runs)} fold run(s) found, its config says {k} folds")
    if complete:
        check_complete(name, runs)
    return runs


def check_complete(name: str, runs: list[RunFolder]) -> None:
    """Refuse a fold group whose folds have not all completed, naming each such fold, its state and the way on."""
    unfinished = [(r.name, r.state()) for r in runs]
    unfinished = [(n, st) for n, st in unfinished if st["state"] != "completed"]
    if not unfinished:
        return
    what = "; ".join(f"{n} is {st['state']}" + (f" (epoch {st.get('epoch', 0)} of {st.get('epochs', '?')})"
                                                  if st["state"] != "queued" else "") for n, st in unfinished)
    active = [n for n, st in unfinished if st["state"] in ("queued", "running")]
    stopped = [n for n, st in unfinished if st["state"] not in ("queued", "running")]
    how = []
    if stopped:
        how.append("finish " + ", ".join(f"`maskcls train --resume {n}`" for n in stopped))
    if active:
        how.append("wait for " + ", ".join(active))
    raise ValueError(f"fold group {name!r} is not complete: {what}. Its out-of-fold table, F1 and fold ensemble need "
                     f"every fold completed: {'; '.join(how)}")


def write_oof(runs_root, name: str) -> dict:
    """Assemble NAME-oof.csv from the fold runs' held-out predictions; refuses gaps and overlaps."""
    runs = fold_runs(runs_root, name)
    parts = []
    for run in runs:
        cfg = RunConfig.from_dict(run.read_config())
        frame = run.read_predictions()
        if frame is None:
            raise ValueError(f"{run.name} has no validation predictions yet (state {run.state()['state']}): the "
                             f"out-of-fold table needs every fold finished")
        parts.append((cfg.fold, frame))
    return write_oof_parts(runs_root, name, parts)


def write_oof_parts(runs_root, name: str, parts: list) -> dict:
    """NAME-oof.csv from (fold, held-out predictions) pairs, wherever each fold trained: no photo or person in
    two folds."""
    oof = pd.concat([frame.assign(fold=fold) for fold, frame in parts],
                    ignore_index=True)[["path", "person_id", "label", "fold"] + PROBS]
    dup = oof["path"].duplicated()
    if dup.any():
        raise ValueError(f"{name}: {int(dup.sum())} image(s) predicted by two folds, e.g. {oof.loc[dup, 'path'].iloc[0]}")
    people = oof.groupby("person_id")["fold"].nunique()
    if (people > 1).any():
        raise ValueError(f"{name}: person {people[people > 1].index[0]} is in two folds")
    path = oof_path(runs_root, name)
    write_csv(path, oof)
    return {"oof": str(path), "rows": len(oof), "folds": len(parts), "macro_f1": macro_f1(oof["label"].to_numpy(),
                                                                                          probs_of(oof).argmax(1))}


def read_oof(runs_root, name: str) -> pd.DataFrame:
    """The out-of-fold table, while every fold of the group is still completed (a fold resumed or re-run since
    it was written would make it stale)."""
    path = oof_path(runs_root, name)
    if not path.is_file():
        raise ValueError(f"no out-of-fold table {path.name} in {runs_root}: train the folds first "
                         f"(`maskcls train ... --folds K --name {name}`)")
    local = [RunFolder(runs_root, p.name) for p in Path(runs_root).glob(f"{name}-fold*")
             if (m := FOLD_RE.match(p.name)) and m["name"] == name and (p / "config.json").is_file()]
    check_complete(name, local)  # the folds here (a group split over servers holds only some): none resumed since
    from maskcls.common.predictions import read_predictions_table
    return read_predictions_table(path, f"out-of-fold table of fold group {name!r}")


def list_fold_groups(runs_root) -> list[str]:
    """NAMEs that have fold runs (NAME-fold1 ...)."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    return sorted({m["name"] for p in root.glob("*-fold1") if (m := FOLD_RE.match(p.name)) and p.is_dir()})


def list_oof(runs_root) -> list[str]:
    root = Path(runs_root)
    return sorted(p.name[:-len("-oof.csv")] for p in root.glob("*-oof.csv")) if root.is_dir() else []


def collect_after(run: RunFolder) -> str | None:
    """After a fold run ends: write the out-of-fold table once every fold of its group has predictions."""
    m = FOLD_RE.match(run.name)
    if not m:
        return None
    try:
        return write_oof(run.root, m["name"])["oof"]
    except ValueError:
        return None  # other folds still running (or not folds of one group)


def crossfit_bias(oof: pd.DataFrame) -> dict:
    """Per-class logit biases tuned for macro F1 on the whole out-of-fold table, with the gain reported two
    ways: in-sample (fit and score on the same rows: optimistic) and cross-fitted (for each fold, fit on the
    other folds and score on it)."""
    y, probs, folds = oof["label"].to_numpy(), probs_of(oof), oof["fold"].to_numpy()
    base = macro_f1(y, probs.argmax(1))
    bias, _, in_sample = tune_biases(probs, y)
    crossed = np.zeros(len(y), dtype=np.int64)
    for f in np.unique(folds):
        held = folds == f
        b, _, _ = tune_biases(probs[~held], y[~held])
        crossed[held] = apply_bias(probs[held], b).argmax(1)
    cross = macro_f1(y, crossed)
    return {"macro_f1": base, "in_sample_f1": in_sample, "crossfit_f1": cross, "in_sample_gain": in_sample - base,
            "crossfit_gain": cross - base, "bias": [float(b) for b in bias]}
