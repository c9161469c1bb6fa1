"""A sweep's search space: run-config keys and the ranges or choices each may take, checked by name.

{"lr": {"type": "log_float", "low": 1e-4, "high": 1e-2}, "loss": {"type": "categorical", "choices": ["ce", "focal"]},
 "epochs": {"type": "int", "low": 2, "high": 6}}
"""
from __future__ import annotations

import difflib
import math
import typing
from dataclasses import dataclass, field, fields

KINDS = ("categorical", "int", "float", "log_float")
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "none")
NOT_SWEPT = {"data_root": "the data is the sweep's, not a trial's", "device": "the worker picks the device",
             "gpus": "each trial trains in its worker's process, on one device", "cache_dir": "an execution detail",
             "workers": "an execution detail"}


class SweepError(ValueError):
    """A sweep or search space that cannot be used; the message names the key or the sweep."""


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
    from maskcls.train.config import RunConfig
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
    if kind == "int" and step is not None and not (float(step).is_integer() and step >= 1):
        raise SweepError(f"search space key {key!r}: an int range steps by whole numbers of at least 1, got step "
                         f"{step!r}")
    if step is not None and step > high - low:
        raise SweepError(f"search space key {key!r}: step {step!r} is larger than the range {low!r}..{high!r}")
    from maskcls.train.config_checks import check_value
    for name, v in (("low", low), ("high", high)):  # a trial must never be handed a value its config refuses
        try:
            check_value(key, int(v) if holds == "int" else float(v))
        except ValueError as e:
            raise SweepError(f"search space key {key!r}: {name} {v!r} is outside what the key allows ({e})") from None
    return Param(key, kind, float(low), float(high), step)


def parse_space(space) -> dict[str, Param]:
    """A search space from its JSON form: {"lr": {"type": "log_float", "low": 1e-4, "high": 1e-2},
    "loss": {"type": "categorical", "choices": ["ce", "focal"]}, "epochs": {"type": "int", "low": 2, "high": 6}}."""
    if not isinstance(space, dict):
        raise SweepError(f"a search space must be a JSON object of config keys, got {type(space).__name__}")
    if not space:
        raise SweepError("the search space is empty: name at least one config key to vary, e.g. "
                         '{"lr": {"type": "log_float", "low": 0.0001, "high": 0.01}}')
    from maskcls.train.config import RunConfig
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
