"""A sweep's definition: the sweep.json beside its workers (base config, space, sampler, pruner, storage, total),
and the Optuna study it opens.

<runs_root>/sweeps/<NAME>/sweep.json, workers/<wNN>/ (background workers' job folders)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from maskcls.common.fileio import check_name, inside, locked, read_json, write_json
from maskcls.common.jobfolder import now
from maskcls.orchestration.sweeps.snapshot import write_snapshot
from maskcls.orchestration.sweeps.space import PRUNERS, SAMPLERS, Param, SweepError, parse_space
from maskcls.orchestration.sweeps.storage import open_storage, shown_url, split_password, with_password

SWEEPS_DIR = "sweeps"


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



def storage_url(sweep: Sweep, runs_root, override: str | None = None) -> str:
    return with_password(override or sweep.storage or default_storage(runs_root))



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


def create_sweep(runs_root, name: str, base, space: dict, *, sampler: str = "tpe", pruner: str = "median",
                 storage: str = "", total: int = 0, resume: bool = False) -> Sweep:
    """Check everything, then write sweep.json and create the study. An existing name is refused unless
    `resume` (the study and its trials are kept; the new space, sampler and pruner apply to new trials)."""
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
    with locked(sweeps_root(runs_root) / "create", timeout=300):  # two creates at once: one makes the storage,
        return _create(runs_root, name, base, space, sampler=sampler, pruner=pruner, storage=storage, total=total,
                       resume=resume)  # the other is told the sweep exists


def _create(runs_root, name: str, base, space: dict, *, sampler: str, pruner: str, storage: str, total: int,
            resume: bool) -> Sweep:
    import optuna
    path = sweep_path(runs_root, name)
    if path.exists() and not resume:
        raise SweepError(f"a sweep named {name!r} already exists in {runs_root}: add trials with `maskcls sweep run "
                         f"{name}`, re-define it with --resume, or choose another name")
    old = load_sweep(runs_root, name) if path.exists() else None
    kept = split_password(storage)[0] if storage else (old.storage if old else "")  # never the password
    sweep = Sweep(name, base.with_absolute_paths().to_dict(), space, sampler, pruner, kept, total,
                  created=old.created if old else now())
    if sampler == "grid":
        size = grid_size(sweep)
        sweep.total = min(total, size) if total else size
    url = storage_url(sweep, runs_root, storage or None)  # the password, if given, is used but not stored
    if url.startswith("sqlite"):
        sweeps_root(runs_root).mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=name, storage=open_storage(url, create=True), direction="maximize",
                                load_if_exists=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_snapshot(path.parent, study)
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


def open_study(runs_root, sweep: Sweep, storage: str | None = None, *, rdb=None):
    """The sweep's Optuna study (`rdb`: an already opened storage of it)."""
    import optuna
    try:
        return optuna.load_study(study_name=sweep.name, storage=rdb or open_storage(storage_url(sweep, runs_root, storage)),
                                 sampler=_sampler(sweep), pruner=_pruner(sweep))
    except KeyError:
        where = getattr(rdb, "url", None) or storage_url(sweep, runs_root, storage)  # the storage that was asked
        raise SweepError(f"sweep {sweep.name!r}: its study is not in {shown_url(where)}"
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




def trial_run_name(sweep: Sweep, number: int) -> str:
    return f"{sweep.name}-t{number:03d}"


def trial_config(sweep: Sweep, params: dict):
    from maskcls.train.config import RunConfig
    return RunConfig.from_dict({**sweep.base, **params})
