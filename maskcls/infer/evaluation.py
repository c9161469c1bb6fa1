"""Evaluating a run: its validation predictions, the errors of a confusion cell, likely label errors,
and per-class logit biases tuned for macro F1."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from maskcls.common.fileio import write_json
from maskcls.data.labels import GENDER_KEYS, AgeBounds, attribute_of
from maskcls.infer.review import marginals
from maskcls.train.config import RunConfig
from maskcls.train.metrics import evaluate_predictions, macro_f1
from maskcls.common.runfolder import RunFolder, predictions_frame, probs_of
from maskcls.common.checkpoints import load_checkpoint

BIAS_FILE = "class_bias.json"


def validation_predictions(runs_root, name: str, checkpoint: str = "best.pt", device: str = "cpu",
                    cache_dir=None) -> pd.DataFrame:
    """Validation predictions of a run's `checkpoint`; `frame.attrs["source"]` says where they come from.

    The named checkpoint is always loaded first (weights only), so a missing, damaged or refused file is an
    error, never figures from another file. For best.pt the predictions saved at its epoch are used; any
    other checkpoint (or saved predictions of another epoch) is predicted anew.
    """
    run = RunFolder.existing(runs_root, name)
    ckpt = load_checkpoint(run.checkpoint(checkpoint))
    epoch = ckpt.get("epoch")
    if checkpoint == "best.pt":
        saved = run.read_predictions()
        saved_epoch = run.read_status().get("predictions_epoch")
        if saved is not None and saved_epoch in (None, epoch):
            saved.attrs["source"] = f"validation predictions saved when best.pt was written (epoch {epoch})"
            return saved
    from maskcls.common.settings import default_cache_dir
    from maskcls.infer.members import EvalInputs, build_model, predict_paths
    from maskcls.data.splits import prepare_split
    cfg = RunConfig.from_dict(ckpt["config"])
    _, val_rows, _ = prepare_split(cfg.split_spec())
    if val_rows.empty:
        raise ValueError(f"run {name!r} has no validation images to evaluate")
    inputs = EvalInputs(val_rows["path"].tolist(), torch.device(device), cache_dir or default_cache_dir(cfg))
    probs = predict_paths(build_model(ckpt, cfg, f"{name}:{checkpoint}"), cfg, inputs)
    frame = predictions_frame(val_rows["path"], val_rows["person_id"], val_rows["label"], probs)
    frame.attrs["source"] = f"predicted now with {checkpoint} (epoch {epoch}) on the run's validation split"
    return frame


def report(preds: pd.DataFrame, bias: np.ndarray | None = None) -> dict:
    """All metrics (scikit-learn) for a predictions table, optionally with tuned class biases applied."""
    probs = apply_bias(probs_of(preds), bias) if bias is not None else probs_of(preds)
    return evaluate_predictions(preds["label"].to_numpy(), probs.argmax(1))


def cell_errors(preds: pd.DataFrame, true: int, pred: int, attribute: str = "class") -> pd.DataFrame:
    """Images whose true value is `true` and predicted value `pred`, most confident first.

    `attribute` is "class" (the 18-class matrix) or "mask" / "gender" / "age" (an attribute's matrix, whose
    probabilities are the 18-class ones summed per value). `predicted` is each image's predicted class.
    """
    probs = probs_of(preds)
    labels, predicted = preds["label"].to_numpy(), probs.argmax(1)
    if attribute == "class":
        t, q, p = labels, predicted, probs
    else:
        t, q, p = attribute_of(labels, attribute), attribute_of(predicted, attribute), marginals(probs)[attribute]
    hit = (t == true) & (q == pred)
    keep = ["path", "person_id", "label"] + (["fold"] if "fold" in preds.columns else [])  # out-of-fold: who scored it
    out = preds.loc[hit, keep].copy()
    out["predicted"] = predicted[hit]
    out["probability"] = p[hit, pred]
    out["p_true"] = p[hit, true]
    return out.sort_values("probability", ascending=False).reset_index(drop=True)


def largest_error_cell(confusion) -> tuple[int, int]:
    """(true, predicted) of the off-diagonal cell with the most images: where a look at the errors starts."""
    m = np.asarray(confusion, dtype=float).copy()
    np.fill_diagonal(m, -1)
    t, p = np.unravel_index(int(m.argmax()), m.shape)
    return int(t), int(p)


# -- likely label errors ---------------------------------------------------------------------------------------
def band_age(band: int, bounds: AgeBounds | None = None) -> int:
    """An age that sits well inside an age band, for a correction that moves a person to that band."""
    b = bounds or AgeBounds()
    return [max(1, b.lower - 5), (b.lower + b.upper) // 2, b.upper + 2][band]


def suggested_correction(suspect, bounds: AgeBounds | None = None) -> dict:
    """A review-queue row (maskcls.infer.review) as the corrections row that applies its suggestion."""
    row = {"id": str(suspect.person_id), "gender": "", "age": "", "swap_mask": 0,
           "note": f"relabelled in the studio: {suspect.suggestion}"}
    if suspect.attribute == "gender":
        row["gender"] = GENDER_KEYS[int(suspect.suggested)]
    elif suspect.attribute == "age":
        row["age"] = band_age(int(suspect.suggested), bounds)
    else:
        row["swap_mask"] = 1
    return row


# -- macro-F1 decision tuning ----------------------------------------------------------------------------------
def apply_bias(probs: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """softmax(log p + b): the class probabilities after per-class logit biases."""
    z = np.log(np.clip(probs, 1e-8, 1.0)) + np.asarray(bias)[None, :]
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def tune_biases(probs: np.ndarray, labels: np.ndarray, passes: int = 3,
                grid: np.ndarray = np.linspace(-2.0, 2.0, 41)) -> tuple[np.ndarray, float, float]:
    """Coordinate ascent on per-class logit biases to maximise macro F1; returns (bias, f1 before, f1 after)."""
    logp = np.log(np.clip(probs, 1e-8, 1.0))
    bias = np.zeros(probs.shape[1])
    before = best = macro_f1(labels, logp.argmax(1))
    for _ in range(passes):
        improved = False
        for c in range(probs.shape[1]):
            keep = bias[c]
            for v in grid:
                bias[c] = v
                f = macro_f1(labels, (logp + bias).argmax(1))
                if f > best + 1e-9:
                    best, keep, improved = f, v, True
            bias[c] = keep
        if not improved:
            break
    return bias, before, best


def save_bias(runs_root, name: str, bias: np.ndarray, *, before: float, after: float, checkpoint: str) -> None:
    """The run's macro-F1 class biases, with the F1 before and after, into class_bias.json."""
    run = RunFolder.open(runs_root, name)  # a pulled run's biases go beside it: the teammate's folder stays as sent
    write_json(run.local_dir / BIAS_FILE, {"bias": [float(b) for b in bias], "macro_f1_before": before,
                                           "macro_f1_after": after, "checkpoint": checkpoint})


def load_bias(runs_root, name: str) -> np.ndarray | None:
    run = RunFolder.open(runs_root, name)
    path = next((p for p in (run.local_dir / BIAS_FILE, run.path / BIAS_FILE) if os.path.lexists(p)), None)
    if path is None:
        return None
    from maskcls.common.fileio import read_json
    try:
        bias = np.asarray(read_json(path, BIAS_FILE, root=path.parent)["bias"], dtype=np.float64)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{name}'s {BIAS_FILE} is damaged ({e}); expected 18 class biases: run `maskcls evaluate "
                         f"{name} --tune` again") from None
    if bias.shape != (18,) or not np.isfinite(bias).all():
        raise ValueError(f"{name}'s {BIAS_FILE} is damaged: expected 18 finite class biases, found shape "
                         f"{bias.shape}; run `maskcls evaluate {name} --tune` again")
    return bias


def eval_people(data_root) -> int:
    """People in a data root's eval set (its listed images / 7), 0 when it has none."""
    from pathlib import Path

    from maskcls.data.index import scan_eval
    try:
        table = scan_eval(Path(data_root), [])
    except OSError:
        return 0
    return round(len(table) / 7) if table is not None else 0


def describes(stored: dict, preds: pd.DataFrame) -> bool:
    """Stored intervals are these predictions' own: the same people and the same macro F1 (a table edited or cut
    since they were written has others, and gets its figures computed again)."""
    from maskcls.common.runfolder import probs_of
    from maskcls.train.metrics import macro_f1
    return stored.get("people") == int(preds["person_id"].nunique()) and \
        abs(float(stored.get("macro_f1", -1)) - float(macro_f1(preds["label"].to_numpy(),
                                                             probs_of(preds).argmax(1)))) < 1e-9


def prediction_intervals(run: RunFolder, preds: pd.DataFrame) -> dict:
    """The interval figures of `preds`: those stored at the run's best epoch when `preds` are that epoch's, else
    computed now (a command's work, never a page draw's for a stored run)."""
    from maskcls.train.intervals import run_intervals
    stored = run.read_intervals()
    epoch = run.read_status().get("predictions_epoch")
    if stored and stored.get("epoch") == epoch and "saved when best.pt" in str(preds.attrs.get("source", "")) \
            and describes(stored, preds):
        return stored
    cfg = RunConfig.from_dict(run.read_config())
    return run_intervals(preds, eval_people=eval_people(cfg.data_root) if cfg.data_root else 0,
                         epoch=epoch if "saved" in str(preds.attrs.get("source", "")) else None)
