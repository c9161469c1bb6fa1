"""A season of runs made from one real run, for the benchmarks of the run index, the Runs page and prune.

Each made run is an ordinary run folder: its own config (a model and learning rate drawn from a few, as a sweep
would) and status, the template's other files hard-linked (no disk used; a copy where links are not possible,
checkpoints then left out). Names follow the groups a season holds: sweep trials, ladder rungs, repeat seeds,
fold runs and lone runs.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from maskcls.common.fileio import read_json, write_json
from maskcls.common.runfolder import RunFolder

MODELS = ("resnet10t", "efficientnet_b0", "efficientnet_b3", "convnext_tiny", "resnet18")


def season_names(n: int) -> list[str]:
    """n run names: 40 % sweep trials, 20 % ladder rungs, 15 % repeat seeds, 15 % fold runs, 10 % lone runs."""
    names = []
    for i in range(n):
        k = i % 20
        if k < 8:
            names.append(f"sweep{i // 200}-t{i % 200:03d}")
        elif k < 12:
            names.append(f"ladder{i // 42}-r{(i // 3) % 7 + 1}-s{i % 3 + 1}")
        elif k < 15:
            names.append(f"repeat{i // 5}-s{i % 5 + 1}")
        elif k < 18:
            names.append(f"cv{i // 5}-fold{i % 5 + 1}")
        else:
            names.append(f"run-{i:05d}")
    return list(dict.fromkeys(names))


def make_runs(template: Path, runs_root, n: int, seed: int = 0) -> list[str]:
    """Make about n runs in `runs_root` from the run folder `template`; returns their names."""
    template, root = Path(template), Path(runs_root)
    cfg, status = read_json(template / "config.json"), read_json(template / "status.json")
    rng = np.random.default_rng(seed)
    names = season_names(n)
    for name in names:
        run = RunFolder(root, name)
        run.path.mkdir(parents=True, exist_ok=True)
        for f in template.iterdir():
            if f.name in ("config.json", "status.json") or f.name.startswith(".") or not f.is_file():
                continue
            try:
                os.link(f, run.path / f.name)
            except FileExistsError:
                pass
            except OSError:
                if f.suffix != ".pt":
                    shutil.copy2(f, run.path / f.name)
        write_json(run.config_path, {**cfg, "model": str(rng.choice(MODELS)),
                                     "lr": float(rng.choice([1e-4, 3e-4, 1e-3, 3e-3]))})
        write_json(run.status_path, {**status, "state": "completed", "pid": None})
    return names


def season_study(runs_root, name: str, trials: int, data_root: str, seed: int = 0) -> None:
    """A sweep `name` of `trials` finished trials (learning rate and loss drawn, 5 epochs of F1 each) in the runs
    root's own storage, with its snapshot: what the Sweeps page reads after a long sweep."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from maskcls.orchestration.sweeps import create_sweep
    from maskcls.orchestration.sweeps.definition import open_study, sweeps_root
    from maskcls.orchestration.sweeps.snapshot import write_snapshot
    from maskcls.train.config import RunConfig
    space = {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
             "loss": {"type": "categorical", "choices": ["ce", "focal"]}}
    sweep = create_sweep(runs_root, name, RunConfig(data_root=data_root), space)
    study = open_study(runs_root, sweep)
    rng = np.random.default_rng(seed)
    dists = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "loss": CategoricalDistribution(["ce", "focal"])}
    made = []
    for i in range(trials):
        f1 = {e: float(rng.uniform(0.3, 0.8)) for e in range(1, 6)}
        made.append(optuna.trial.create_trial(
            params={"lr": float(10 ** rng.uniform(-4, -2)), "loss": str(rng.choice(["ce", "focal"]))},
            distributions=dists, value=max(f1.values()), intermediate_values=f1,
            user_attrs={"run": f"{name}-t{i:03d}"}))
    study.add_trials(made)
    write_snapshot(sweeps_root(runs_root) / name, study)
