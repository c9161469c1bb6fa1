"""The one reader of prediction tables (a run's val_predictions.csv, a fold group's out-of-fold table): every
command and page that scores, compares, reviews or exports reads them here, so a hand-edited or damaged table gets
one clear message naming the file and what is wrong, never a pandas KeyError.

Columns: path, person_id, label (0-17), p0..p17 (probabilities); other columns (e.g. fold) are kept.
"""
from __future__ import annotations

import os

N_CLASSES = 18
PROB_COLUMNS = [f"p{c}" for c in range(N_CLASSES)]
COLUMNS = ["path", "person_id", "label", *PROB_COLUMNS]


class TableError(ValueError):
    """A prediction table that cannot be used; the message names the file and the problem."""


SUM_TOLERANCE = 1e-3  # a row of probabilities sums to 1 within this (float32 softmax written as text)


def read_predictions_table(path: str | os.PathLike, what: str = "validation predictions", *, root=None):
    """The table at `path` (a bounded regular file; inside `root` when given), checked: the columns, a class 0-17
    in every label, probabilities that are numbers in [0, 1] summing to 1 in every row, one row per photo."""
    import numpy as np
    import pandas as pd
    from maskcls.common.fileio import read_user_csv
    source = f"{what} {os.fspath(path)!r}" if isinstance(path, (str, os.PathLike)) else what
    expected = "expected columns path, person_id, label, p0..p17, one row per validation photo"
    try:
        frame = read_user_csv(path, root=root, dtype={"person_id": str, "path": str})
    except (ValueError, OSError) as e:
        raise TableError(f"{source} cannot be read ({e}); {expected}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:6]) + (" …" if len(missing) > 6 else "")
        raise TableError(f"{source} is damaged: no column {shown} (found {', '.join(map(str, frame.columns[:8]))}); "
                         f"{expected}")
    if frame.empty:
        raise TableError(f"{source} holds no rows; {expected}")
    label = pd.to_numeric(frame["label"], errors="coerce")
    bad = label.isna() | (label % 1 != 0) | ~label.between(0, N_CLASSES - 1)
    if bad.any():
        raise TableError(f"{source} is damaged: line {int(np.argmax(bad.to_numpy())) + 2} has label "
                         f"{str(frame['label'][bad].iloc[0])!r}, expected a class 0-17")
    probs = frame[PROB_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad_rows = ~(np.isfinite(probs) & (probs >= 0) & (probs <= 1)).all(1)
    if bad_rows.any():
        i = int(np.argmax(bad_rows))
        raise TableError(f"{source} is damaged: line {i + 2} holds a probability that is not a number from 0 to 1")
    sums = probs.sum(1)
    off = np.abs(sums - 1) > SUM_TOLERANCE
    if off.any():
        i = int(np.argmax(off))
        raise TableError(f"{source} is damaged: the probabilities of line {i + 2} sum to {sums[i]:.4g}, expected 1 "
                         f"(each row is one photo's 18 class probabilities)")
    for col in ("path", "person_id"):
        empty = frame[col].isna() | (frame[col].astype(str).str.strip() == "")
        if empty.any():
            raise TableError(f"{source} is damaged: line {int(np.argmax(empty.to_numpy())) + 2} has no {col}")
    repeated = frame["path"].duplicated()
    if repeated.any():
        raise TableError(f"{source} is damaged: photo {frame['path'][repeated].iloc[0]!r} is listed twice")
    frame["label"] = label.astype(int)
    frame[PROB_COLUMNS] = probs
    return frame


EPOCH_PREFIX = "e"  # val_history.csv: one column of predicted classes per epoch, e1, e2, ...


def epoch_columns(frame) -> list[str]:
    """The history's epoch columns in epoch order."""
    cols = [c for c in frame.columns if c.startswith(EPOCH_PREFIX) and c[1:].isdigit()]
    return sorted(cols, key=lambda c: int(c[1:]))


def read_history_table(path: str | os.PathLike, *, root=None):
    """A run's val_history.csv (path, person_id, label, e1..eN: each epoch's predicted class of every validation
    photo), checked like the predictions tables."""
    import pandas as pd
    from maskcls.common.fileio import read_user_csv
    source = f"validation history {os.fspath(path)!r}"
    expected = "expected columns path, person_id, label, e1..eN (each epoch's predicted class 0-17)"
    try:
        frame = read_user_csv(path, root=root, dtype={"person_id": str, "path": str})
    except (ValueError, OSError) as e:
        raise TableError(f"{source} cannot be read ({e}); {expected}") from None
    epochs = epoch_columns(frame)
    missing = [c for c in ("path", "person_id", "label") if c not in frame.columns]
    if missing or not epochs or frame.empty:
        raise TableError(f"{source} is damaged ({'no column ' + ', '.join(missing) if missing else 'no epochs or rows'}"
                         f"); {expected}")
    for col in ["label", *epochs]:
        v = pd.to_numeric(frame[col], errors="coerce")
        if (v.isna() | (v % 1 != 0) | ~v.between(0, N_CLASSES - 1)).any():
            raise TableError(f"{source} is damaged: column {col} holds a value that is no class 0-17")
        frame[col] = v.astype(int)
    return frame
