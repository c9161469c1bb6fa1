"""Train/validation splits. Photos are labelled per person, so a fair split keeps each person on one side.

The image-level random split exists only to show how it leaks: the same face lands on both sides.
"""
from __future__ import annotations

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
