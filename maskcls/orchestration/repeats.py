"""Repeat groups: one config trained with N seeds (runs NAME-s1..N, the same split), so a figure comes with the
spread the seed alone causes beside the spread the people cause.

`maskcls train ... --seeds N --name NAME` trains them here one after another; `jobs submit --seeds N` (and the
Train page's "Repeat with N seeds") queues them as jobs.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from maskcls.common.fileio import check_name
from maskcls.common.runfolder import RunFolder
from maskcls.train.config import RunConfig

SEED_RE = re.compile(r"^(?P<name>.+)-s(?P<k>\d+)$")


def check_seeds(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= 50:
        raise ValueError(f"--seeds must be a whole number from 2 to 50, got {n!r}")
    return n


def seed_names(name: str, n: int) -> list[str]:
    check_name(name)
    return [check_name(f"{name}-s{i + 1}") for i in range(check_seeds(n))]


def seed_configs(cfg: RunConfig, n: int) -> list[RunConfig]:
    """The same config N times, seeds 1..N (the split, set by split_seed, stays the same)."""
    return [RunConfig.from_dict({**cfg.to_dict(), "seed": i + 1}) for i in range(check_seeds(n))]


def check_free(runs_root, names: list[str]) -> None:
    taken = [n for n in names if (Path(runs_root) / n).exists()]
    if taken:
        raise ValueError(f"{taken[0]!r} already exists in {runs_root}: choose another name for the repeat group")


def train_repeats(cfg: RunConfig, runs_root, name: str, n: int, *, progress=None, say=print) -> dict:
    """Train the N seeds one after another in this process; returns the group's summary."""
    from maskcls.orchestration.team.autopush import push_if_asked
    from maskcls.train.driver import check_startable, train_run
    names = seed_names(name, n)
    check_startable(cfg)
    check_free(runs_root, names)
    for run_name, seed_cfg in zip(names, seed_configs(cfg, n)):
        say(f"seed {seed_cfg.seed}/{n}: run {run_name}")
        train_run(seed_cfg, runs_root, run_name, progress=progress)
        push_if_asked(RunFolder(runs_root, run_name))
    return repeat_summary(runs_root, name)


def submit_repeats(cfg: RunConfig, runs_root, name: str, n: int) -> list[str]:
    """Queue the N seeds as background jobs (one after another per device slot)."""
    from maskcls.orchestration.jobs import submit
    from maskcls.train.startable import check_startable
    names = seed_names(name, n)
    check_startable(cfg)
    check_free(runs_root, names)
    return [submit(c, runs_root, run_name).name for run_name, c in zip(names, seed_configs(cfg, n))]


# keys that may differ between the seeds of one config: the seed itself, and where it is logged or cached
FREE_KEYS = ("seed", "track", "track_project", "track_uri", "track_artifacts", "track_group", "team", "cache_dir",
             "workers", "device", "gpus", "keep_epochs", "limit_batches")


def repeat_runs(runs_root, name: str) -> list[RunFolder]:
    """The seed runs of a repeat group, in seed order; a group whose runs are not one config's seeds (another
    split, another lr: runs named NAME-sK by hand) is refused, naming the run and the keys that differ."""
    root = Path(runs_root)
    runs = [RunFolder(root, p.name) for p in root.glob(f"{name}-s*")
            if (m := SEED_RE.match(p.name)) and m["name"] == name and (p / "config.json").is_file()]
    if not runs:
        raise ValueError(f"no repeat group {name!r} (runs {name}-s1, {name}-s2, ...) in {runs_root}")
    runs = sorted(runs, key=lambda r: int(SEED_RE.match(r.name)["k"]))
    check_one_config(name, runs)
    return runs


def check_one_config(name: str, runs: list[RunFolder]) -> None:
    """Every run of the group has the first one's config but for FREE_KEYS (the same split: the same people)."""
    configs = []
    for r in runs:
        try:
            configs.append({k: v for k, v in r.read_config().items() if k not in FREE_KEYS})
        except (OSError, ValueError) as e:
            raise ValueError(f"repeat group {name!r}: {r.name}'s config cannot be read ({e})") from None
    for r, cfg in zip(runs[1:], configs[1:]):
        differ = sorted(k for k in set(cfg) | set(configs[0]) if cfg.get(k) != configs[0].get(k))
        if differ:
            raise ValueError(f"{name!r} is not a repeat group: {r.name} differs from {runs[0].name} in "
                             f"{', '.join(differ[:6])} (a repeat group is one config's seeds on one split; rename "
                             f"the runs that do not belong)")


def list_repeat_groups(runs_root) -> list[str]:
    """NAMEs that have at least two seed runs NAME-s1, NAME-s2, ..."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    counts: dict[str, int] = {}
    for p in root.glob("*-s*"):
        m = SEED_RE.match(p.name)
        if m and (p / "config.json").is_file():
            counts[m["name"]] = counts.get(m["name"], 0) + 1
    return sorted(n for n, c in counts.items() if c >= 2)


def repeat_predictions(runs_root, name: str) -> list:
    """The validation predictions of every completed seed run (what a comparison of the group uses)."""
    out = [r.read_predictions() for r in repeat_runs(runs_root, name) if r.state()["state"] == "completed"]
    out = [f for f in out if f is not None]
    if not out:
        raise ValueError(f"repeat group {name!r} has no completed seed run yet")
    return out


def repeat_summary(runs_root, name: str, *, resamples: int = 1000) -> dict:
    """Mean and standard deviation of the seeds' best macro F1, and the interval over people of the mean."""
    from maskcls.train.comparison import keyed, set_scores, stacked_confusions
    from maskcls.train.intervals import percentile, resample_weights
    runs = repeat_runs(runs_root, name)
    states = {r.name: r.state()["state"] for r in runs}
    frames = repeat_predictions(runs_root, name)
    order = keyed(frames[0]).index.to_numpy()
    confs, _ = stacked_confusions(frames, order)
    everyone = np.ones((1, confs.shape[1]))
    per_seed = [float(set_scores(everyone, c[None])[1][0]) for c in confs]
    _, boot = set_scores(resample_weights(confs.shape[1], resamples, 0), confs)
    lo, hi = percentile(boot)
    return {"group": name, "seeds": len(runs), "completed": len(frames), "states": states,
            "macro_f1_mean": float(np.mean(per_seed)), "macro_f1_sd": float(np.std(per_seed, ddof=1))
            if len(per_seed) > 1 else 0.0, "per_seed": per_seed, "macro_f1_ci": [float(lo), float(hi)]}
