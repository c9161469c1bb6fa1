"""The ablation ladder: which step of a recipe pays? Rungs of config changes, each an ordinary run (or a repeat
group of seeds, or a fold group), and the paired gain of every rung over the one before, with its interval,
p-value and verdict (pays / no evidence / hurts).

<runs_root>/ladders/<NAME>/ladder.json, workers/<wNN>/; the rungs' runs are NAME-r<i>-s<k> (or NAME-r<i>-fold<k>).

- cumulative: rung 0 is the base, rung i adds step i on top of rungs 1..i-1; the gain of rung i is over rung i-1.
- leave-one-out: rung 0 is the full recipe (every step), rung i leaves step i out; the gain of step i is the full
  recipe over rung i (what the step adds where all the others are).
Workers (`maskcls ablate run`, the Ladders page) claim the planned runs one by one by creating their folders (an
atomic mkdir), so several may run at once, here or on machines that share the runs root, and none trains a run twice.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from maskcls.common.fileio import LIMITS, check_name, inside, loads, read_json, read_text_file, write_json
from maskcls.common.jobfolder import now
from maskcls.train.config import SPLIT_KEYS, RunConfig

LADDERS_DIR = "ladders"
MODES = ("cumulative", "leave-one-out")
PRESET_DIR = Path(__file__).with_name("ladders")  # shipped ladders, e.g. winners-2022.json


class LadderError(ValueError):
    """A ladder or steps file that cannot be used; the message names the step or the key."""


@dataclass
class Ladder:
    name: str
    base: dict
    mode: str
    steps: list  # [{"name": ..., "set": {config key: value}}]
    seeds: int = 1
    folds: int = 0
    created: float = 0.0
    claims: str = ""  # a PostgreSQL URL (no password) where workers on other servers claim runs; "" = this runs root

    def rungs(self) -> list[tuple[str, RunConfig]]:
        """(rung label, config) of every rung, in order."""
        if self.mode == "cumulative":
            out, d = [("base", RunConfig.from_dict(self.base))], dict(self.base)
            for step in self.steps:
                d = {**d, **step["set"]}
                out.append((step["name"], RunConfig.from_dict(d)))
            return out
        full = {**self.base, **{k: v for step in self.steps for k, v in step["set"].items()}}
        out = [("full recipe", RunConfig.from_dict(full))]
        for step in self.steps:
            without = {**full, **{k: self.base.get(k, RunConfig().to_dict()[k]) for k in step["set"]}}
            out.append((f"without {step['name']}", RunConfig.from_dict(without)))
        return out

    def run_names(self, rung: int) -> list[str]:
        """The runs of one rung: seeds NAME-r<i>-s<k>, or folds NAME-r<i>-fold<k>."""
        if self.folds:
            return [f"{self.name}-r{rung}-fold{k + 1}" for k in range(self.folds)]
        return [f"{self.name}-r{rung}-s{k + 1}" for k in range(self.seeds)]

    def planned(self) -> list[tuple[str, RunConfig]]:
        """Every run of the ladder with its config, rung by rung."""
        out = []
        for i, (_, cfg) in enumerate(self.rungs()):
            for k, run_name in enumerate(self.run_names(i)):
                d = cfg.to_dict()
                d.update({"fold": k, "n_folds": self.folds} if self.folds else {"seed": k + 1})
                out.append((run_name, RunConfig.from_dict(d)))
        return out


def ladders_root(runs_root) -> Path:
    return Path(runs_root) / LADDERS_DIR


def ladder_path(runs_root, name: str) -> Path:
    return inside(ladders_root(runs_root), check_name(name, "ladder name"), "ladder.json")


def read_steps(spec) -> tuple[str, list]:
    """(mode, steps) from a steps JSON value, a file path, or a shipped ladder's name (e.g. winners-2022)."""
    if isinstance(spec, (str, os.PathLike)) and not isinstance(spec, dict):
        preset = PRESET_DIR / f"{spec}.json"
        path = preset if preset.is_file() else Path(spec)
        if not path.is_file():
            shipped = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.json")))
            raise LadderError(f"steps {str(spec)!r}: no such file and no shipped ladder of that name ({shipped})")
        try:
            spec = loads(read_text_file(path, "steps", LIMITS["json"]))
        except json.JSONDecodeError as e:
            raise LadderError(f"steps {str(path)!r} is not valid JSON ({e.msg} at line {e.lineno})") from None
        except UnicodeDecodeError:
            raise LadderError(f"steps {str(path)!r} is not UTF-8 text (expected a JSON object of steps)") from None
        except (OSError, ValueError) as e:
            raise LadderError(f"steps {str(path)!r} cannot be read ({getattr(e, 'strerror', None) or e})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list) or not spec["steps"]:
        raise LadderError('steps must be a JSON object {"mode": "cumulative" | "leave-one-out", "steps": [{"name": '
                          '..., "set": {config key: value}}, ...]} with at least one step')
    mode = spec.get("mode", "cumulative")
    if mode not in MODES:
        raise LadderError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode, spec["steps"]


OWNED = {"seed": "the ladder sets each run's seed (--seeds N trains seeds 1..N on every rung)",
         "full_data": "a ladder scores every rung on validation people",
         **{k: "every rung must be scored on the same validation people with the same labels" for k in SPLIT_KEYS}}


def check_steps(base: RunConfig, steps: list) -> list:
    """Each step a name and config changes that make a valid config on the base; named by position otherwise.
    Keys the ladder owns (the seed, the split) are refused: a step that set them would be overridden or would
    compare rungs on other people."""
    names = set()
    for i, step in enumerate(steps, 1):
        if not isinstance(step, dict) or not isinstance(step.get("name"), str) or not step["name"].strip() \
                or not isinstance(step.get("set"), dict) or not step["set"]:
            raise LadderError(f"step {i}: expected {{\"name\": text, \"set\": {{config key: value, ...}}}}, "
                              f"got {step!r}")
        if step["name"] in names:
            raise LadderError(f"step {i}: the name {step['name']!r} is used twice")
        names.add(step["name"])
        owned = [k for k in step["set"] if k in OWNED]
        if owned:
            raise LadderError(f"step {i} ({step['name']}): {owned[0]!r} cannot be a step: {OWNED[owned[0]]}; to "
                              f"compare it, make it the base of two ladders or compare two runs")
        try:
            RunConfig.from_dict({**base.to_dict(), **step["set"]})
        except ValueError as e:
            raise LadderError(f"step {i} ({step['name']}): {e}") from None
    return steps


def create_ladder(runs_root, name: str, base: RunConfig, steps_spec, *, seeds: int = 1, folds: int = 0,
                  claims: str = "") -> Ladder:
    """Check the steps on the base, then write ladder.json (its runs are trained by workers). With `claims` (a
    PostgreSQL URL) the ladder is published there too, and workers on any server claim its runs there."""
    check_name(name, "ladder name")
    if not isinstance(seeds, int) or not 1 <= seeds <= 20:
        raise LadderError(f"--seeds must be a whole number from 1 to 20, got {seeds!r}")
    if folds and (not isinstance(folds, int) or not 2 <= folds <= 20 or seeds != 1):
        raise LadderError(f"--folds must be 2 to 20 and goes without --seeds, got folds {folds!r}, seeds {seeds!r}")
    base = base.with_absolute_paths()
    from maskcls.train.startable import check_startable
    check_startable(base)
    if base.full_data:
        raise LadderError("a ladder compares rungs on validation people: the base cannot be full_data")
    mode, steps = read_steps(steps_spec)
    from maskcls.orchestration.sweeps.storage import split_password
    stored_claims = split_password(claims)[0] if claims else ""
    ladder = Ladder(name, base.to_dict(), mode, check_steps(base, steps), seeds, folds or 0, now(), stored_claims)
    ladder.rungs()  # every rung a valid config
    path = ladder_path(runs_root, name)
    if path.exists():
        raise LadderError(f"a ladder named {name!r} already exists in {runs_root}: choose another name")
    taken = [n for n, _ in ladder.planned() if (Path(runs_root) / n).exists()]
    if taken:
        raise LadderError(f"{taken[0]!r} already exists in {runs_root}: choose another ladder name")
    if claims:
        if folds:
            raise LadderError("a ladder of fold groups collects each rung's out-of-fold table in one runs root: "
                              "--claims goes with --seeds, not --folds")
        from maskcls.orchestration.team.claims import Claims
        with Claims(claims) as db:
            db.publish(name, "ladder", asdict(ladder))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, asdict(ladder))
    return ladder


def fetch_ladder(runs_root, name: str, claims: str) -> Ladder:
    """A ladder another server created, from the claims database, written here as its ladder.json."""
    from maskcls.orchestration.team.claims import Claims
    with Claims(claims) as db:
        found = db.definition(check_name(name, "ladder name"))
    if found is None:
        raise LadderError(f"the claims database holds no ladder named {name!r}")
    ladder = Ladder(**found)
    ladder.rungs()
    path = ladder_path(runs_root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, asdict(ladder))
    return ladder


def load_ladder(runs_root, name: str, claims: str = "") -> Ladder:
    """The ladder's definition: its ladder.json here, else (with `claims`) the one published in that database."""
    path = ladder_path(runs_root, name)
    if not path.is_file() and claims:
        return fetch_ladder(runs_root, name, claims)
    if not path.is_file():
        known = ", ".join(list_ladders(runs_root)) or "none yet"
        raise LadderError(f"no ladder named {name!r} in {runs_root} (ladders: {known})")
    try:
        ladder = Ladder(**read_json(path, "ladder.json", root=path.parent))
        ladder.rungs()
    except (ValueError, TypeError) as e:
        raise LadderError(f"ladder {name!r}: {path} is damaged ({e})") from None
    return ladder


def list_ladders(runs_root) -> list[str]:
    root = ladders_root(runs_root)
    return sorted(p.name for p in root.iterdir() if (p / "ladder.json").is_file()) if root.is_dir() else []


@dataclass
class Rung:
    """One rung's state: its runs and, when they are all done, its score."""

    index: int
    label: str
    runs: dict = field(default_factory=dict)  # run name -> state
    frames: list = field(default_factory=list)
    prints: set = field(default_factory=set)  # the data fingerprints its runs trained on (one, when all is well)

    @property
    def done(self) -> bool:
        return bool(self.runs) and all(s == "completed" for s in self.runs.values())
