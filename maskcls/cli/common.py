"""What every command group shares: the parent options, output, and reading the files a user names.

Nothing heavy is imported here (or at the top of any cli module): `maskcls --help`, `jobs list` and `sweep status`
answer without loading torch; a command imports what it needs when it runs.
"""
from __future__ import annotations

import argparse
import json
import os
import time

from maskcls.common.fileio import dumps, json_kind
from maskcls.common.settings import check_runs_root, default_runs_root


class Parents:
    """Parent parsers: each shared option is defined once."""

    def __init__(self):
        self.runs_root = argparse.ArgumentParser(add_help=False)
        self.runs_root.add_argument("--runs-root", default=None, help="runs root (default: $MASKCLS_RUNS, else the "
                                    "checkout's checkpoints/)")
        self.json = argparse.ArgumentParser(add_help=False)
        self.json.add_argument("--json", action="store_true", help="print one JSON value")
        self.quiet = argparse.ArgumentParser(add_help=False)
        self.quiet.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
        self.config = argparse.ArgumentParser(add_help=False)
        self.config.add_argument("--preset", help="config preset: demo-cpu, gpu-effnet, winners-2022")
        self.config.add_argument("--data", help="data root (overrides data_root)")
        self.config.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                                 help="override one config key (repeatable)")
        self.config.add_argument("--track", type=tracker_list, default=None, metavar="LIST",
                                 help="trackers fed as it trains, comma-separated: tensorboard,mlflow,wandb "
                                      "(they come with the README's install)")

    def of(self, *names: str) -> list[argparse.ArgumentParser]:
        return [getattr(self, n) for n in names]


def add(sub, name: str, fn, help: str, parents: list, **kw) -> argparse.ArgumentParser:
    """A subcommand calling `fn(args)`."""
    p = sub.add_parser(name, help=help, description=help, parents=parents, **kw)
    p.set_defaults(func=fn)
    return p


def runs_root_of(args) -> str:
    """--runs-root, else $MASKCLS_RUNS or the checkout's checkpoints/; a file there is refused by name."""
    return check_runs_root(args.runs_root or default_runs_root())


def emit(obj, as_json: bool, text: str) -> None:
    print(dumps(obj, indent=2) if as_json else text)


def when(t) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def read_json_file(path: str, what: str):
    """Parse a JSON file the user named; every way it can be wrong gets a message naming the file."""
    from maskcls.common.fileio import read_json
    if os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is a folder, expected a JSON file")
    try:
        return read_json(path)
    except FileNotFoundError:
        raise ValueError(f"{what} {path!r} does not exist") from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path!r} is not a text file (expected JSON)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path!r} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


def read_config_file(path: str, base: dict | None = None):
    """A run config from a JSON file (an object of config keys), over `base` when given."""
    from maskcls.train.config import RunConfig
    loaded = read_json_file(path, "config")
    if not isinstance(loaded, dict):
        raise ValueError(f"config {path!r} must hold a JSON object of config keys, found a JSON {json_kind(loaded)}")
    return RunConfig.from_dict({**(base or {}), **loaded})


def config_from_args(args, config_path: str | None = None):
    """--preset, then the config file, then --data and --set, in that order of precedence (last wins)."""
    from maskcls.train.config import RunConfig, create_config
    cfg = create_config(args.preset) if getattr(args, "preset", None) else RunConfig()
    if config_path:
        cfg = read_config_file(config_path, cfg.to_dict())
    if args.data:
        cfg = cfg.with_overrides([f"data_root={args.data}"])
    cfg = cfg.with_overrides([saved_spec_override(pair, args) for pair in args.set])
    if getattr(args, "track", None) is not None:
        cfg = cfg.with_overrides([f"track={json.dumps(args.track)}"])
    return cfg


def saved_spec_override(pair: str, args) -> str:
    """`augment=NAME` for a spec saved with `maskcls augment save NAME` (or on the Augment page) becomes that spec;
    a name that is neither a preset nor a saved spec is refused with both lists and the close matches."""
    key, sep, value = pair.partition("=")
    if key.strip() != "augment" or not sep or value.strip().startswith("{"):
        return pair
    from maskcls.augment.spec import list_presets, list_saved_specs, load_saved_spec
    name = value.strip()
    if name in list_presets():
        return pair
    root = check_runs_root(getattr(args, "runs_root", None) or default_runs_root())
    saved = list_saved_specs(root)
    if name in saved:
        return f"augment={load_saved_spec(root, name).to_json()}"
    from maskcls.train.config import did_you_mean
    raise ValueError(f"augment {name!r} is no preset ({', '.join(list_presets())}) and no spec saved in {root} "
                     f"({', '.join(saved) or 'none saved yet: maskcls augment save NAME spec.json'})"
                     f"{did_you_mean(name, list_presets() + saved)}")


def tracker_list(text: str) -> list[str]:
    """--track tensorboard,mlflow: the names, each checked by the config (and installed, before training)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def default_run_name(model: str) -> str:
    return f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def estimate_line(configs: list, runs_root: str, *, probe: bool = False, what: str = "runs") -> str:
    """"estimated time: about 3 min 10 s (...)" for one config or several run one after another, from the speed
    runs like them measured here (or a probe); a line saying why there is none, never an error."""
    from maskcls.orchestration.estimate import estimate_many, estimate_run
    try:
        e = estimate_run(configs[0], runs_root, probe=probe) if len(configs) == 1 else \
            estimate_many(configs, runs_root, probe=probe, what=what)
    except (OSError, ValueError) as err:
        return f"estimated time: none ({err})"
    if e is None:
        return ("estimated time: none yet (no run of this model at this size has trained on this device here; "
                "`--estimate` measures its speed in seconds)")
    return f"estimated time: {e.text()}"
