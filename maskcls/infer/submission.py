"""The eval set's submission: the image list in info.csv order, the output check, the CSV pair."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls.common.fileio import atomic_path


def eval_paths(data_root) -> tuple[pd.DataFrame, list[str]]:
    """eval/info.csv in its order with image paths; a missing image is an error that names it."""
    from maskcls.data.index import scan_eval
    problems: list = []
    table = scan_eval(Path(data_root), problems)
    if table is None:
        why = problems[0][2] if problems else "eval/info.csv not found"
        raise ValueError(f"cannot predict the eval set of {data_root}: {why}")
    if table.empty:
        raise ValueError(f"cannot predict the eval set of {data_root}: eval/info.csv lists no images (only a header); "
                         f"expected one ImageID per row")
    missing = table.loc[~table["exists"], "image_id"].tolist()
    if missing:
        why = {Path(p).name: r.removeprefix("named in eval/info.csv but ") for p, k, r in problems if k == "missing"}
        named = [i if why.get(i, "").startswith("not found") else f"{i} ({why.get(i, 'not found')})" for i in missing]
        raise ValueError(f"{len(missing)} eval image(s) named in eval/info.csv are missing from eval/images or "
                         f"unusable: {', '.join(named[:10])}{' …' if len(missing) > 10 else ''}")
    return table, table["path"].tolist()


DATA_FILES = ("eval/info.csv", "eval/labels.csv", "train/train.csv")  # the data's own tables, never an output
DATA_FOLDERS = ("eval/images", "train/images")


def check_output(out: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Path:
    """Refuse, before any work, an output path that is a folder, sits in a folder that cannot be written, or would
    overwrite the data itself (the submission and info.csv share their columns: one typo replaces the eval list)."""
    if str(out).strip() in ("", "-"):
        raise ValueError(f"--out {str(out)!r}: expected a file name such as submission.csv (the submission and its "
                         f"probabilities are two files, so they cannot go to standard output)")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; expected a file name such as {str(out / 'submission.csv')!r}")
    if data_root is not None:
        root, target = Path(data_root).resolve(), out.resolve()
        for rel in DATA_FILES:
            if target == root / rel:
                raise ValueError(f"--out {str(out)!r} would overwrite the data's own {rel}; expected a new file name "
                                 f"such as {str(root / 'eval' / 'submission.csv')!r}")
        for rel in DATA_FOLDERS:
            if (root / rel) in target.parents:
                raise ValueError(f"--out {str(out)!r} is inside the data's {rel} folder, which holds only images; "
                                 f"expected a file name such as {str(root / 'eval' / 'submission.csv')!r}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--out {str(out)!r}: the folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {str(out)!r}: the folder {str(parent)!r} is not writable")
    return out


def write_submission(out: str | os.PathLike, image_ids: list[str], probs: np.ndarray) -> Path:
    """`ImageID,ans` in info.csv order; the probabilities go beside it as <out>.probs.csv for blending.

    The two files are a pair: both are written to temp files first and replaced only when both are whole, so
    a failure (a full disk) leaves the previous pair, never a new CSV beside old probabilities.
    """
    if probs.size == 0 and len(image_ids):
        raise ValueError("the ensemble produced no probabilities")
    if not np.isfinite(probs).all():
        raise ValueError(f"the ensemble's probabilities are not finite for {int((~np.isfinite(probs)).any(1).sum())} "
                         f"image(s): nothing was written (check the members' weights and checkpoints)")
    out = Path(out)
    probs_path = out.with_suffix(".probs.csv")
    frame = pd.DataFrame(probs, columns=[f"p{i}" for i in range(18)])
    frame.insert(0, "ImageID", image_ids)
    answers = pd.DataFrame({"ImageID": image_ids, "ans": probs.argmax(1).astype(int)})
    with atomic_path(probs_path) as tmp_probs, atomic_path(out) as tmp_csv:
        frame.to_csv(tmp_probs, index=False)
        answers.to_csv(tmp_csv, index=False)
    return probs_path
