"""Scores, all from scikit-learn: macro F1 (the competition metric), accuracy, per-class and per-attribute."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from maskcls.data.labels import ATTRIBUTES, attribute_of


def macro_f1(y_true, y_pred, num_classes: int = 18) -> float:
    """Macro F1 over all `num_classes` labels (absent classes count as 0, as the leaderboard did)."""
    return float(f1_score(y_true, y_pred, labels=list(range(num_classes)), average="macro", zero_division=0))


def evaluate_predictions(y_true, y_pred) -> dict:
    """Everything the Evaluate page and `maskcls evaluate` show, as plain lists (JSON-ready)."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    labels = list(range(18))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": macro_f1(y_true, y_pred),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "per_class": [{"class": c, "precision": float(p[c]), "recall": float(r[c]), "f1": float(f[c]),
                       "support": int(s[c])} for c in labels],
        "attributes": {},
    }
    for name, k in ATTRIBUTES.items():
        t, q = attribute_of(y_true, name), attribute_of(y_pred, name)
        out["attributes"][name] = {
            "accuracy": float(accuracy_score(t, q)),
            "macro_f1": float(f1_score(t, q, labels=list(range(k)), average="macro", zero_division=0)),
            "confusion": confusion_matrix(t, q, labels=list(range(k))).tolist(),
        }
    return out


def epoch_scores(y_true, probs: np.ndarray) -> dict:
    """The per-epoch summary written to metrics.jsonl."""
    y_pred = probs.argmax(1)
    full = evaluate_predictions(y_true, y_pred)
    return {
        "val_accuracy": full["accuracy"],
        "val_macro_f1": full["macro_f1"],
        "val_per_class_f1": [round(c["f1"], 4) for c in full["per_class"]],
        "val_attribute_accuracy": {k: v["accuracy"] for k, v in full["attributes"].items()},
    }
