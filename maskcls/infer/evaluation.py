"""Evaluating a run: its validation predictions, the errors of a confusion cell, likely label errors,
and per-class logit biases tuned for macro F1."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import torch

from maskcls.common.fileio import write_json
from maskcls.data.labels import GENDER_KEYS, AgeBounds, attribute_names, attribute_of, decode
from maskcls.train.config import RunConfig
from maskcls.train.metrics import evaluate_predictions, macro_f1
from maskcls.train.rundir import RunDir, load_checkpoint, predictions_frame, probs_of

BIAS_FILE = "class_bias.json"


def run_predictions(runs_root, name: str, checkpoint: str = "best.pt", device: str = "cpu",
                    cache_dir=None) -> pd.DataFrame:
    """Validation predictions of a run's `checkpoint`; `frame.attrs["source"]` says where they come from.

    The named checkpoint is always loaded first (weights only), so a missing, damaged or refused file is an
    error, never figures from another file. For best.pt the predictions saved at its epoch are used; any
    other checkpoint (or saved predictions of another epoch) is predicted anew.
    """
    run = RunDir.open(runs_root, name)
    if not run.exists():
        raise ValueError(f"no run named {name!r} in {runs_root}")
    ckpt = load_checkpoint(run.checkpoint(checkpoint))
    epoch = ckpt.get("epoch")
    if checkpoint == "best.pt":
        saved = run.read_predictions()
        saved_epoch = run.read_status().get("predictions_epoch")
        if saved is not None and saved_epoch in (None, epoch):
            saved.attrs["source"] = f"validation predictions saved when best.pt was written (epoch {epoch})"
            return saved
    from maskcls.common.settings import default_cache_dir
    from maskcls.infer.predict import EvalInputs, build_model, predict_paths
    from maskcls.train.driver import prepare_split
    cfg = RunConfig.from_dict(ckpt["config"])
    _, val_rows, _ = prepare_split(cfg)
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
        t, q, p = attribute_of(labels, attribute), attribute_of(predicted, attribute), _attribute_probs(probs)[attribute]
    hit = (t == true) & (q == pred)
    keep = ["path", "person_id", "label"] + (["fold"] if "fold" in preds.columns else [])  # out-of-fold: who scored it
    out = preds.loc[hit, keep].copy()
    out["predicted"] = predicted[hit]
    out["probability"] = p[hit, pred]
    out["p_true"] = p[hit, true]
    return out.sort_values("probability", ascending=False).reset_index(drop=True)


# -- likely label errors ---------------------------------------------------------------------------------------
def _attribute_probs(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Marginal probabilities per attribute from the 18-class ones: mask (N,3), gender (N,2), age (N,3)."""
    p = probs.reshape(-1, 3, 2, 3)
    return {"mask": p.sum((2, 3)), "gender": p.sum((1, 3)), "age": p.sum((1, 2))}


def find_label_errors(preds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank people and images by how strongly the model disagrees with their labels.

    Confident-learning style: a label is suspect when the model gives another value of the attribute more
    probability than the average it gives to images that truly carry that value (per-class thresholds).
    People are scored by the mean disagreement over their images, per attribute (gender and age are
    per person; a mask swap shows on the incorrect/normal pair).
    """
    probs = probs_of(preds)
    labels = preds["label"].to_numpy()
    m, g, a = decode(labels)
    given = {"mask": m, "gender": g, "age": a}
    marg = _attribute_probs(probs)
    image_rows = []
    for attr, p in marg.items():
        y = given[attr]
        k = p.shape[1]
        thresholds = np.array([p[y == c, c].mean() if (y == c).any() else 1.0 for c in range(k)])
        other = p.copy()
        other[np.arange(len(y)), y] = -1
        alt = other.argmax(1)
        margin = other.max(1) - p[np.arange(len(y)), y]
        flagged = other.max(1) >= thresholds[alt]
        image_rows.append(pd.DataFrame({"path": preds["path"], "person_id": preds["person_id"], "attribute": attr,
                                        "given": y, "suggested": alt, "disagreement": 1 - p[np.arange(len(y)), y],
                                        "margin": margin, "flagged": flagged}))
    images = pd.concat(image_rows, ignore_index=True)
    per_person = images[images["attribute"] != "mask"].groupby(["person_id", "attribute"]).agg(
        score=("disagreement", "mean"), given=("given", "first"),
        suggested=("suggested", lambda s: int(s.mode().iloc[0])), flagged=("flagged", "mean"), images=("path", "size"))
    mask_rows = images[(images["attribute"] == "mask") & images["given"].isin([1, 2]) & images["suggested"].isin([1, 2])]
    swap = mask_rows.groupby("person_id").agg(score=("disagreement", "mean"), flagged=("flagged", "mean"),
                                              images=("path", "size"))
    swap = swap[swap["images"] >= 2].assign(attribute="mask swap", given=-1, suggested=-1)
    people = pd.concat([per_person.reset_index(), swap.reset_index()], ignore_index=True)
    people = people.sort_values("score", ascending=False).drop_duplicates("person_id").reset_index(drop=True)
    people["suggestion"] = [suggestion_text(a, int(v)) for a, v in zip(people["attribute"], people["suggested"])]
    flagged_images = images[images["flagged"]].sort_values("margin", ascending=False).reset_index(drop=True)
    return people, flagged_images


def suggestion_text(attribute: str, suggested: int) -> str:
    if attribute == "mask swap":
        return "incorrect_mask and normal look swapped"
    return f"{attribute} looks like {attribute_names()[attribute][suggested]}"


def band_age(band: int, bounds: AgeBounds | None = None) -> int:
    """An age that sits well inside an age band, for a correction that moves a person to that band."""
    b = bounds or AgeBounds()
    return [max(1, b.lower - 5), (b.lower + b.upper) // 2, b.upper + 2][band]


def suggested_correction(suspect, bounds: AgeBounds | None = None) -> dict:
    """A suspect row of `find_label_errors` as the corrections row that applies its suggestion."""
    row = {"id": str(suspect.person_id), "gender": "", "age": "", "swap_mask": 0,
           "note": f"relabelled in the studio: {suspect.suggestion}"}
    if suspect.attribute == "gender":
        row["gender"] = GENDER_KEYS[int(suspect.suggested)]
    elif suspect.attribute == "age":
        row["age"] = band_age(int(suspect.suggested), bounds)
    else:
        row["swap_mask"] = 1
    return row


def person_attribute_probs(preds: pd.DataFrame, person_id: str) -> pd.DataFrame:
    """The model's mean probability of each attribute value over one person's photos (attribute, value, p)."""
    rows = preds[preds["person_id"] == str(person_id)]
    marg = _attribute_probs(probs_of(rows))
    names = attribute_names()
    return pd.DataFrame([{"attribute": a, "value": names[a][v], "probability": float(p[:, v].mean())}
                         for a, p in marg.items() for v in range(p.shape[1])])


def suspects_to_corrections(people: pd.DataFrame, ids: list[str], ages: dict[str, int] | None = None) -> pd.DataFrame:
    """A corrections table (the format the data index applies on load) for the people the user marked."""
    rows = []
    for r in people[people["person_id"].isin(ids)].itertuples(index=False):
        row = {"id": r.person_id, "gender": "", "age": "", "swap_mask": 0, "note": f"suspected {r.attribute}"}
        if r.attribute == "gender":
            row["gender"] = GENDER_KEYS[int(r.suggested)]
        elif r.attribute == "mask swap":
            row["swap_mask"] = 1
        elif r.attribute == "age" and ages and r.person_id in ages:
            row["age"] = ages[r.person_id]
        rows.append(row)
    return pd.DataFrame(rows, columns=["id", "gender", "age", "swap_mask", "note"])


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


def save_bias(runs_root, name: str, bias: np.ndarray, before: float, after: float, checkpoint: str) -> None:
    write_json(RunDir.open(runs_root, name).path / BIAS_FILE, {"bias": [float(b) for b in bias], "macro_f1_before": before,
                                                          "macro_f1_after": after, "checkpoint": checkpoint})


def load_bias(runs_root, name: str) -> np.ndarray | None:
    path = RunDir.open(runs_root, name).path / BIAS_FILE
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return np.asarray(json.load(f)["bias"], dtype=np.float64)
