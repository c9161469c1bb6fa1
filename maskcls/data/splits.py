"""Train/validation splits. Photos are labelled per person, so a fair split keeps each person on one side.

The image-level random split exists only to show how it leaks: the same face lands on both sides.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split


def _people(train: pd.DataFrame) -> pd.DataFrame:
    """One row per person id, with the stratum gender x age band of that person."""
    people = train.groupby("person_id", sort=True).agg(gender=("gender", "first"), age_band=("age_band", "first"))
    people["stratum"] = people["gender"] * 3 + people["age_band"]
    return people


def split_by_person(train: pd.DataFrame, val_ratio: float = 0.2, seed: int = 42,
                    fold: int | None = None, n_folds: int = 5) -> np.ndarray:
    """Boolean array over `train` rows, True = validation. Stratified on the person's gender x age band.

    With `fold` set, the validation set is that fold of a stratified `n_folds`-fold split of the people.
    """
    if not 0.0 < val_ratio < 1.0:
        raise ValueError(f"val_ratio must be between 0 and 1 (exclusive), got {val_ratio}")
    people = _people(train)
    ids = np.asarray(people.index, dtype=object)
    strata = people["stratum"].to_numpy()
    # strata with a single person cannot be stratified; fold them into the most common one
    counts = pd.Series(strata).value_counts()
    rare = counts[counts < (n_folds if fold is not None else 2)].index
    strata = np.where(np.isin(strata, rare), counts.idxmax(), strata)
    if fold is not None:
        if not 0 <= fold < n_folds:
            raise ValueError(f"fold must be in 0..{n_folds - 1}, got {fold}")
        skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        _, val_idx = list(skf.split(np.zeros(len(people)), strata))[fold]
        val_people = ids[val_idx]
    else:
        _, val_people = train_test_split(ids, test_size=val_ratio, random_state=seed, stratify=strata)
    return train["person_id"].isin(set(val_people)).to_numpy()


def split_random_images(train: pd.DataFrame, val_ratio: float = 0.2, seed: int = 42) -> np.ndarray:
    """Image-level random split (leaky, for comparison): True = validation."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(train), dtype=bool)
    is_val[rng.permutation(len(train))[: int(round(val_ratio * len(train)))]] = True
    return is_val


def leaked_people(train: pd.DataFrame, is_val: np.ndarray) -> int:
    """How many people have photos on both sides of a split."""
    sides = pd.DataFrame({"p": train["person_id"].to_numpy(), "v": is_val}).groupby("p")["v"].nunique()
    return int((sides > 1).sum())


def class_shares(train: pd.DataFrame, is_val: np.ndarray) -> pd.DataFrame:
    """Per-class share (%) of images on each side: rows = class, columns train / validation."""
    out = {}
    for name, part in (("train", train[~is_val]), ("validation", train[is_val])):
        counts = np.bincount(part["label"].to_numpy(), minlength=18)
        out[name] = 100.0 * counts / max(counts.sum(), 1)
    return pd.DataFrame(out)


def borderline(train: pd.DataFrame, bounds, window: int) -> np.ndarray:
    """Images of people whose age lies within `window` years below an age-band bound (window 3 with bounds
    30 / 60: ages 27-29 and 57-59). Their band is the least certain label: the winning team left them out of
    training (never out of validation, whose score must stay comparable)."""
    if window <= 0:
        return np.zeros(len(train), bool)
    age = train["age"].to_numpy()
    near = np.zeros(len(train), bool)
    for bound in (bounds.lower, bounds.upper):
        near |= (age >= bound - window) & (age < bound)
    return near


def borderline_table(train: pd.DataFrame, bounds, window: int) -> pd.DataFrame:
    """Per class: images, how many a borderline drop removes from training, and what is left."""
    from maskcls.data.labels import NUM_CLASSES, class_names
    drop = borderline(train, bounds, window)
    labels = train["label"].to_numpy()
    images = np.bincount(labels, minlength=NUM_CLASSES)
    dropped = np.bincount(labels[drop], minlength=NUM_CLASSES)
    return pd.DataFrame({"class": range(NUM_CLASSES), "name": class_names(bounds), "images": images,
                         "dropped": dropped, "kept": images - dropped})


@dataclass(frozen=True)
class SplitSpec:
    """Which people train and which validate a run (RunConfig.split_spec() builds it)."""

    data_root: str
    lower: int = 30  # age band bounds
    upper: int = 60
    corrections: str = "none"  # preset name or CSV path
    val_ratio: float = 0.2
    split_seed: int = 42
    fold: int = -1  # -1: one split by val_ratio; k: fold k of n_folds
    n_folds: int = 5
    full_data: bool = False  # every person trains, nobody validates
    drop_borderline: int = 0  # training leaves out people this many years below a bound


def prepare_split(spec: SplitSpec):
    """Index the data and split it by person; returns (train rows, validation rows, index). Training rows carry
    attrs: `borderline_dropped` (images the borderline drop left out) and `emptied_classes` (classes it emptied)."""
    from maskcls.data.corrections import load_corrections
    from maskcls.data.index import index_data
    from maskcls.data.labels import AgeBounds
    bounds = AgeBounds(spec.lower, spec.upper)
    corr = load_corrections(spec.corrections) if spec.corrections != "none" else None
    index = index_data(spec.data_root, bounds, corr)
    if spec.full_data:  # training + validation people: no held-out split
        is_val = np.zeros(len(index.train), dtype=bool)
    else:
        is_val = split_by_person(index.train, spec.val_ratio, spec.split_seed, None if spec.fold < 0 else spec.fold,
                                 spec.n_folds)
        if not is_val.any():
            raise ValueError(f"the split of {index.root} holds no validation people (val_ratio {spec.val_ratio}, "
                             f"{index.train['person_id'].nunique()} people): raise val_ratio, or set full_data")
    drop = borderline(index.train, bounds, spec.drop_borderline) & ~is_val  # validation keeps everyone
    train = index.train[~is_val & ~drop].reset_index(drop=True)
    train.attrs["borderline_dropped"] = int(drop.sum())
    had = set(index.train.loc[~is_val, "label"])
    train.attrs["emptied_classes"] = sorted(had - set(train["label"]))
    return train, index.train[is_val].reset_index(drop=True), index
