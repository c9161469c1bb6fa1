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


def check_output(out: str | os.PathLike, data_root: str | os.PathLike | None = None, runs_root=None) -> Path:
    """The submission's place, through the one output guard (maskcls.common.outputs): the CSV and its
    probabilities beside it, never a run's file, the runs root's own, the data's tables or a link."""
    from maskcls.common.outputs import guard_output
    return guard_output(out, companions=("{stem}.probs.csv",), data_root=data_root, runs_root=runs_root).path


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
