"""The demo's eval score: macro F1 against the demo's hidden labels, with its interval over eval people, and the
text the CLI and the pages show for it. Nothing heavy at import: `maskcls submissions` lists scores in a blink."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def demo_score(table: pd.DataFrame, probs: np.ndarray) -> dict | None:
    """Score against the demo's hidden labels (eval/labels.csv), when the data has them.

    With the people the truth names, the macro F1 comes with its 95 % interval over eval people: a demo eval set of
    100 people moves macro F1 by +-0.1 from who happens to be in it, so a gap to validation F1 inside that interval
    is chance, not a preprocessing difference. Demos written before the truth named people get no interval (an
    interval over images would claim a precision the set does not have)."""
    if "label" not in table.columns or table["label"].isna().any():
        return None
    from maskcls.train.intervals import macro_f1_interval  # scikit-learn: when a score is made, not when listed
    from maskcls.train.metrics import macro_f1
    y = table["label"].astype(int).to_numpy()
    predicted = probs.argmax(1)
    score = {"macro_f1": macro_f1(y, predicted), "accuracy": float((predicted == y).mean()),
             "macro_f1_ci": None, "people": None}
    if "person" in table.columns and table["person"].notna().all():
        iv = macro_f1_interval(y, predicted, table["person"].astype(str).to_numpy())
        score.update(macro_f1_ci=list(iv.ci), people=iv.people)
    return score


def demo_interval_text(score: dict | None) -> str:
    """'0.661-0.917', or '' when the score has no interval by person."""
    if not score or not score.get("macro_f1_ci"):
        return ""
    lo, hi = score["macro_f1_ci"]
    return f"{lo:.3f}-{hi:.3f}"


def describe_demo_score(score: dict) -> str:
    """One line for the CLI and the page: the score, its interval by person when known, accuracy."""
    text = f"macro F1 {score['macro_f1']:.4f}"
    if score.get("macro_f1_ci"):
        text += f" (95 % interval over the {score['people']} eval people {demo_interval_text(score)})"
    return text + f", accuracy {score['accuracy']:.4f}"
