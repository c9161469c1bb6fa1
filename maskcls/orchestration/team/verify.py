"""A teammate's run is input: at pull, every figure it claims is recomputed here from its validation predictions,
and what disagrees is named. Nothing its own files claim is shown as a figure afterwards.

The predictions are first re-based on this machine's data where the photos are found there: each row's path
becomes your data root's file (person folder / file name; any other path is refused by the image reader) and its
label and person your data's (with the corrections the run used). Then its macro F1, accuracy, interval over people
and selection-free figure, each epoch's F1 (from val_history.csv) and its status are written again from them; the
files as sent stay in `.claimed/` for a look. A claim that differs from what its predictions give is listed in the
pulled run's `.team.json` and printed by `team pull`.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from maskcls.common.fileio import LIMITS, dumps, read_json, read_text_file, write_json, write_text

CLAIMED = ".claimed"  # the teammate's figure files as sent
FIGURE_FILES = ("status.json", "metrics.jsonl", "intervals.json", "val_predictions.csv", "val_history.csv")
F1_TOLERANCE = 5e-4  # a claimed F1 further than this from the recomputed one is named


def _f1_and_accuracy(labels: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    from maskcls.train.metrics import macro_f1
    return float(macro_f1(labels, predicted)), float((labels == predicted).mean())


def rebase(frame, data_root, corrections, bounds) -> tuple[object, str]:
    """(the table with paths, labels and people from this machine's data where its photos are found, what was
    checked). Labels that differ from your data's are replaced by yours (and counted)."""
    from maskcls.data.corrections import load_corrections
    from maskcls.data.fingerprints import image_keys
    from maskcls.data.index import index_data
    if not data_root or not os.path.isdir(os.path.join(str(data_root), "train", "images")):
        return frame, "labels not checked: the run's data root is not on this machine (pull with --data ROOT)"
    try:
        corr = load_corrections(corrections) if corrections not in (None, "", "none") else None
        train = index_data(str(data_root), bounds, corr, verify=False).train
    except (OSError, ValueError) as e:
        return frame, f"labels not checked: your data root {data_root!r} cannot be read ({e})"
    local = train.assign(key=image_keys(train["path"]).to_numpy()).drop_duplicates("key").set_index("key")
    keys = image_keys(frame["path"])
    found = keys.isin(local.index).to_numpy()
    out = frame.copy()
    if not found.any():
        return out, f"labels not checked: none of its {len(frame)} validation photos is in your data root {data_root!r}"
    hit = local.loc[keys[found]]
    changed = int((out.loc[found, "label"].to_numpy() != hit["label"].to_numpy()).sum())
    out.loc[found, "path"] = hit["path"].to_numpy()
    out.loc[found, "label"] = hit["label"].to_numpy().astype(int)
    out.loc[found, "person_id"] = hit["person_id"].astype(str).to_numpy()
    text = f"labels checked against {data_root} for {int(found.sum())} of {len(frame)} validation photos"
    if changed:
        text += f"; {changed} label(s) differed from your data's and were replaced by yours"
    if not found.all():
        text += f"; {int((~found).sum())} photo(s) are not in your data root (their paths are never opened)"
    return out, text


def _claims_of(folder: Path) -> dict:
    """What the teammate's own files say (anything unreadable counts as no claim)."""
    def read(name):
        try:
            return read_json(folder / name, name, root=folder)
        except (OSError, ValueError):
            return None
    rows = []
    try:
        text = read_text_file(folder / "metrics.jsonl", "metrics.jsonl", LIMITS["metrics"], root=folder,
                              errors="replace")
    except (OSError, ValueError):
        text = ""
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return {"status": read("status.json") or {}, "intervals": read("intervals.json") or {}, "metrics": rows}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
    return float(value) if np.isfinite(value) else None


def _differs(claimed, actual: float | None) -> bool:
    value = _number(claimed)
    if claimed is None:
        return False
    return value is None or actual is None or abs(value - actual) > F1_TOLERANCE


def _keep_claims(folder: Path) -> dict:
    """The teammate's figure files copied to `.claimed/` as sent, and what they claim."""
    claims = _claims_of(folder)
    (folder / CLAIMED).mkdir(exist_ok=True)
    for name in FIGURE_FILES:
        if (folder / name).is_file() and not (folder / CLAIMED / name).exists():
            shutil.copy2(folder / name, folder / CLAIMED / name)
    return claims


def verify_pulled(folder: Path, *, data_root, corrections, bounds, eval_people: int = 0,
                  tag_f1=None, cfg: dict | None = None) -> dict:
    """Recompute the pulled run's figures in `folder` (its partial folder, before it is moved into place) and
    rewrite its figure files from them; returns {"verified": figures, "disagreements": [...], "labels": text}."""
    from maskcls.common.predictions import read_predictions_table
    claims = _keep_claims(folder)
    disagreements: list[str] = []
    preds = read_predictions_table(folder / "val_predictions.csv", "its validation predictions", root=folder) \
        if (folder / "val_predictions.csv").is_file() else None
    if preds is None:
        labels = "no validation predictions: no figure can be verified, none is shown"
        figures = {"macro_f1": None, "macro_f1_ci": None, "accuracy": None}
        (folder / "intervals.json").unlink(missing_ok=True)
        _rewrite_metrics(folder, claims["metrics"], None, disagreements)
    else:
        preds, labels = rebase(preds, data_root, corrections, bounds)
        checked = None
        if data_root and cfg is not None:  # held against its own checkpoint and split, on this machine's data
            from maskcls.orchestration.team.repredict import check
            scored, problems, checked = check(folder, cfg, preds, corrections)
            if problems:
                disagreements += problems
                preds = scored
                (folder / "val_history.csv").unlink(missing_ok=True)  # the sent history cannot be checked
        labels += f"; {checked}" if checked else ("; its predictions could not be held against its checkpoint "
                                                  "(its data is not on this machine: pull with --data ROOT)")
        figures = _recompute(folder, preds, claims, disagreements, data_root=data_root, corrections=corrections,
                             bounds=bounds, eval_people=eval_people)
        figures["checked"] = checked is not None
    for what, claimed in (("status.json", claims["status"].get("best_f1")),
                          ("the store's record", tag_f1 if tag_f1 not in ("", None) else None)):
        if _differs(claimed, figures["macro_f1"]):
            disagreements.append(f"{what} claims best F1 {claimed}; its predictions give "
                                 + (f"{figures['macro_f1']:.4f}" if figures["macro_f1"] is not None else "none"))
    status = {k: v for k, v in claims["status"].items() if k in ("state", "epoch", "epochs", "best_epoch",
                                                                 "predictions_epoch", "started", "ended", "updated",
                                                                 "device", "error", "step", "steps", "progress")}
    write_json(folder / "status.json", {**status, "state": status.get("state") if status.get("state") in
                                        ("completed", "pruned", "failed", "cancelled") else "completed",
                                        "best_f1": figures["macro_f1"], "pid": None})
    return {"verified": figures, "disagreements": disagreements, "labels": labels}


def _recompute(folder: Path, preds, claims: dict, disagreements: list[str], *, data_root, corrections, bounds,
               eval_people: int) -> dict:
    """The figures of re-based predictions (and history), written into the folder; claims that differ named."""
    from maskcls.common.predictions import read_history_table
    from maskcls.common.runfolder import predictions_frame
    from maskcls.train.intervals import add_selection, run_intervals
    probs = preds[[f"p{i}" for i in range(18)]].to_numpy()
    f1, accuracy = _f1_and_accuracy(preds["label"].to_numpy(), probs.argmax(1))
    history = None
    if (folder / "val_history.csv").is_file():
        try:
            history, _ = rebase(read_history_table(folder / "val_history.csv", root=folder), data_root, corrections,
                                bounds)
        except ValueError as e:
            disagreements.append(f"its val_history.csv is damaged ({e}): no epoch's figure is verified")
    epoch = _number(claims["status"].get("predictions_epoch"))
    intervals = add_selection(run_intervals(preds, eval_people=eval_people,
                                            epoch=int(epoch) if epoch is not None else None), history)
    ci = intervals["macro_f1_ci"]
    claimed_ci = claims["intervals"].get("macro_f1_ci")
    if _differs(claims["intervals"].get("macro_f1"), f1) or (isinstance(claimed_ci, list) and len(claimed_ci) == 2
                                                             and any(_differs(c, a) for c, a in zip(claimed_ci, ci))):
        disagreements.append(f"intervals.json claims macro F1 {claims['intervals'].get('macro_f1')} {claimed_ci}; its "
                             f"predictions give {f1:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]")
    write_text(folder / "val_predictions.csv", predictions_frame(preds["path"], preds["person_id"], preds["label"],
                                                                 probs).to_csv(index=False))
    if history is not None:
        write_text(folder / "val_history.csv", history.to_csv(index=False))
    write_json(folder / "intervals.json", intervals)
    _rewrite_metrics(folder, claims["metrics"], history, disagreements)
    return {"macro_f1": f1, "macro_f1_ci": ci, "accuracy": accuracy,
            "selection_free": (intervals.get("selection_free") or {}).get("macro_f1")}


def _rewrite_metrics(folder: Path, rows: list[dict], history, disagreements: list[str]) -> None:
    """metrics.jsonl with each epoch's validation F1 and accuracy recomputed from val_history.csv (none where the
    history has no such epoch: an unverifiable figure is not shown); a claim that differs is named."""
    from maskcls.common.predictions import epoch_columns
    from maskcls.common.runfolder import METRIC_KEYS
    cols = set(epoch_columns(history)) if history is not None else set()
    out, wrong = [], []
    for row in rows:
        epoch = row.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            continue
        keep = {k: row[k] for k in METRIC_KEYS if k in row and _number(row[k]) is not None}
        keep["epoch"] = epoch
        keep.pop("val_macro_f1", None)
        keep.pop("val_accuracy", None)
        if f"e{epoch}" in cols:
            f1, acc = _f1_and_accuracy(history["label"].to_numpy(), history[f"e{epoch}"].to_numpy())
            keep.update(val_macro_f1=f1, val_accuracy=acc)
            if _differs(row.get("val_macro_f1"), f1):
                wrong.append(f"epoch {epoch}: {row.get('val_macro_f1')} vs {f1:.4f}")
        out.append(keep)
    if wrong:
        disagreements.append("metrics.jsonl claims validation F1 its predictions do not give (" + "; ".join(wrong[:5])
                             + (" ..." if len(wrong) > 5 else "") + ")")
    write_text(folder / "metrics.jsonl", "".join(dumps(r) + "\n" for r in out))
