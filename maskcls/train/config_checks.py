"""What every run config key may hold: one rule per key, checked where a config enters (CLI, studio, jobs, sweeps,
ladders), so no value reaches torch, timm, numpy or a scheduler unchecked and every refusal names the key, the value
and what is allowed.

`RULES` covers every RunConfig field (a test keeps the two in step); `check_value` applies one rule.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_SIDE = 1024  # the competition's photos are 384x512: a larger side only upsamples (and a 20000x20000 cache is 1 TB)
MAX_SEED = 2**32 - 1  # numpy and scikit-learn take seeds in [0, 2**32)
MAX_AGE = 120
LOSS_NAMES = ("ce", "focal", "smooth", "f1")
TRACKERS = ("tensorboard", "mlflow", "wandb")  # maskcls.train.tracking implements them


class ConfigError(ValueError):
    """A config key with a wrong type or value; the message names the key."""


@dataclass(frozen=True)
class Number:
    """A number from `lo` to `hi`; `lo_open` / `hi_open` leave the bound itself out; `why` says where a bound comes
    from when it is not obvious."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    whole: bool = False
    why: str = ""

    def allowed(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        left = f"above {_fmt(self.lo)}" if self.lo_open else f"from {_fmt(self.lo)}"
        right = f"below {_fmt(self.hi)}" if self.hi_open else f"to {_fmt(self.hi)}"
        if self.lo_open and self.hi_open:
            return f"{kind} between {_fmt(self.lo)} and {_fmt(self.hi)} (both left out)"
        return f"{kind} {left} {right}" + (f" ({self.why})" if self.why else "")

    def check(self, key: str, value) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value}; expected {self.allowed()}")
        too_low = value <= self.lo if self.lo_open else value < self.lo
        too_high = value >= self.hi if self.hi_open else value > self.hi
        if too_low or too_high:
            raise ConfigError(f"{key} must be {self.allowed()}, got {value!r}")


def _fmt(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() and abs(v) >= 1e5 else f"{v:g}"


def whole(lo: int, hi: int, why: str = "") -> Number:
    return Number(lo, hi, whole=True, why=why)


# One rule per RunConfig field: a Number, a tuple of choices, or a function(key, value) raising ConfigError.
def text(max_len: int = 4096):
    def check(key: str, value: str) -> None:
        if "\x00" in value:
            raise ConfigError(f"{key} must not hold a NUL character, got {value!r}")
        if len(value) > max_len:
            raise ConfigError(f"{key} must be at most {max_len} characters, got {len(value)}")
    return check


def check_model_name(key: str, value: str) -> None:
    text(200)(key, value)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-/]*", value):
        raise ConfigError(f"{key} must be a timm model name such as resnet18 or efficientnet_b0, got {value!r}")


def check_image_size(key: str, value: list) -> None:
    if len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise ConfigError(f"{key} must be [height, width], two whole numbers, got {value!r}")
    for side in value:
        if not 16 <= side <= MAX_SIDE:
            raise ConfigError(f"{key} must be [height, width], each side from 16 to {MAX_SIDE} pixels (the "
                              f"competition's photos are 384x512; a larger side only upsamples), got {value!r}")


def check_combo(key: str, value: dict) -> None:
    bad = sorted(k for k in value if k not in LOSS_NAMES)
    if bad or not value:
        raise ConfigError(f"{key} must name losses among {', '.join(LOSS_NAMES)} with a weight each, e.g. "
                          f'{{"ce": 1, "f1": 1}}; got {value!r}')
    rule = Number(0, 1000, why="0 leaves a loss out")
    for name, w in value.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise ConfigError(f"{key}[{name!r}] must be a number (the weight of the {name} loss), got "
                              f"{type(w).__name__} {w!r}")
        rule.check(f"{key}[{name!r}]", w)
    if not any(w > 0 for w in value.values()):
        raise ConfigError(f"{key} needs at least one weight above 0, got {value!r}")


def check_device(key: str, value: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda|cuda:\d{1,2}", value):
        raise ConfigError(f"{key} must be auto, cpu, cuda or cuda:N (N a GPU index such as 0), got {value!r}")


def check_track(key: str, value: list) -> None:
    bad = [t for t in value if not isinstance(t, str) or t not in TRACKERS]
    if bad or len(set(value)) != len(value):
        raise ConfigError(f"{key} must list trackers among {', '.join(TRACKERS)} (each once), got {value!r}")


RULES = {
    "data_root": text(), "corrections": text(), "age_lower": whole(1, MAX_AGE), "age_upper": whole(2, MAX_AGE),
    "drop_borderline": whole(0, MAX_AGE), "val_ratio": Number(0, 1, lo_open=True, hi_open=True),
    "split_seed": whole(0, MAX_SEED), "fold": whole(-1, 99), "full_data": None,
    "n_folds": whole(2, 100, "fewer than 2 folds hold nobody out"), "image_size": check_image_size,
    "face_crop": None, "face_margin": Number(0, 1), "face_fallback": None, "face_borrow": None,
    "face_second_look": None, "remove_background": None, "augment": None,
    "model": check_model_name, "pretrained": None, "weights_file": text(), "head": None, "freeze": None,
    "unfreeze_after": whole(0, 10_000), "drop_rate": Number(0, 1, hi_open=True),
    "loss": None, "focal_gamma": Number(0, 10), "smoothing": Number(0, 1, hi_open=True), "combo": check_combo,
    "class_weights": None, "sampler": None,
    "optimizer": None, "lr": Number(0, 10, lo_open=True), "weight_decay": Number(0, 10),
    "momentum": Number(0, 1, hi_open=True), "scheduler": None, "warmup_epochs": Number(0, 10_000),
    "step_size": whole(1, 10_000, "epochs between decays"),
    "step_gamma": Number(0, 1, lo_open=True, why="the lr is multiplied by it: 0 would stop learning"),
    "grad_clip": Number(0, 1e6), "ema": Number(0, 1, hi_open=True), "epochs": whole(1, 10_000),
    "batch_size": whole(1, 65_536),
    "amp": None, "channels_last": None, "compile": None, "loader": None, "workers": whole(0, 256),
    "seed": whole(0, MAX_SEED), "device": check_device, "gpus": whole(1, 256), "cache_dir": text(),
    "limit_batches": whole(0, 10**9), "track": check_track, "track_project": text(128), "track_uri": text(),
    "track_artifacts": None, "track_group": text(128), "keep_epochs": whole(0, 100_000), "team": None,
}
# None: the key's type (bool) or its choices (CHOICES) or its own validator (augment) already say everything.


def check_value(key: str, value) -> None:
    """Apply `key`'s rule to a value of the right type (types are checked first, by the config's loader)."""
    rule = RULES[key]
    if isinstance(rule, Number):
        rule.check(key, value)
    elif callable(rule):
        rule(key, value)
