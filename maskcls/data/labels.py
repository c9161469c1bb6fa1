"""The competition's label encoding: mask x gender x age band -> one of 18 classes.

class = mask * 6 + gender * 3 + age_band, with
mask: wear 0 / incorrect 1 / not wear 2, gender: male 0 / female 1,
age band: < lower 0, lower..upper-1 1, >= upper 2 (bounds default 30 and 60).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_CLASSES = 18
MASK_NAMES = ("Wear", "Incorrect", "Not wear")
GENDER_NAMES = ("Male", "Female")
GENDER_KEYS = ("male", "female")
# file stem -> mask code; five "mask" photos, one worn wrongly, one without
MASK_FILES = {
    "mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0,
    "incorrect_mask": 1,
    "normal": 2,
}
ATTRIBUTES = {"mask": 3, "gender": 2, "age": 3}


@dataclass(frozen=True)
class AgeBounds:
    """Upper-exclusive bounds of the three age bands; top teams trained with upper=58."""

    lower: int = 30
    upper: int = 60

    def __post_init__(self) -> None:
        if not (0 < self.lower < self.upper):
            raise ValueError(f"age bounds must satisfy 0 < lower < upper, got lower={self.lower}, upper={self.upper}")

    def names(self) -> tuple[str, str, str]:
        return (f"<{self.lower}", f"{self.lower}-{self.upper - 1}", f">={self.upper}")


DEFAULT_BOUNDS = AgeBounds()


def age_band(age, bounds: AgeBounds = DEFAULT_BOUNDS):
    """Age (scalar or array) -> band 0/1/2."""
    a = np.asarray(age)
    band = (a >= bounds.lower).astype(np.int64) + (a >= bounds.upper).astype(np.int64)
    return int(band) if band.ndim == 0 else band


def encode(mask, gender, band):
    """(mask, gender, age band) -> class 0..17; works on scalars and numpy arrays."""
    m, g, b = (np.asarray(x) for x in (mask, gender, band))
    for name, v, n in (("mask", m, 3), ("gender", g, 2), ("age band", b, 3)):
        if np.any((v < 0) | (v >= n)):
            raise ValueError(f"{name} must be in 0..{n - 1}, got {v.tolist()}")
    cls = m * 6 + g * 3 + b
    return int(cls) if cls.ndim == 0 else cls.astype(np.int64)


def decode(cls):
    """class 0..17 -> (mask, gender, age band)."""
    c = np.asarray(cls)
    if np.any((c < 0) | (c >= NUM_CLASSES)):
        raise ValueError(f"class must be in 0..17, got {c.tolist()}")
    out = (c // 6, (c // 3) % 2, c % 3)
    return tuple(int(x) for x in out) if c.ndim == 0 else out


def attribute_of(labels, name: str) -> np.ndarray:
    m, g, a = decode(np.asarray(labels))
    return {"mask": m, "gender": g, "age": a}[name]


def class_name(cls: int, bounds: AgeBounds = DEFAULT_BOUNDS) -> str:
    """Readable name, e.g. 'Wear / Female / <30'."""
    m, g, b = decode(cls)
    return f"{MASK_NAMES[m]} / {GENDER_NAMES[g]} / {bounds.names()[b]}"


def class_names(bounds: AgeBounds = DEFAULT_BOUNDS) -> list[str]:
    return [class_name(c, bounds) for c in range(NUM_CLASSES)]


def short_class_name(cls: int, bounds: AgeBounds = DEFAULT_BOUNDS) -> str:
    """Compact tick label, e.g. 'W/F/<30' (mask W/I/N, gender M/F, age band): fits an 18-class axis."""
    m, g, b = decode(cls)
    return f"{'WIN'[m]}/{'MF'[g]}/{bounds.names()[b]}"


def short_class_names(bounds: AgeBounds = DEFAULT_BOUNDS) -> list[str]:
    return [short_class_name(c, bounds) for c in range(NUM_CLASSES)]


def attribute_names(bounds: AgeBounds = DEFAULT_BOUNDS) -> dict[str, tuple[str, ...]]:
    return {"mask": MASK_NAMES, "gender": GENDER_NAMES, "age": bounds.names()}


def parse_gender(text: str) -> int:
    key = text.strip().lower()
    if key not in GENDER_KEYS:
        raise ValueError(f"gender must be 'male' or 'female', got {text!r}")
    return GENDER_KEYS.index(key)
