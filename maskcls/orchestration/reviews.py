"""The review queue of a run or a fold group, and what a reviewer's accept / reject writes.

A fold group's out-of-fold table is the queue's best source (every person scored by a model that never saw
them); a single run's validation predictions cover its validation people only. The CLI (`maskcls review`) and
the Evaluate page call these functions and write the same corrections file: <runs root>/corrections/NAME.csv
(accepted rows) and NAME.rejected (people looked at and left as they are).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from maskcls.data.corrections import accept_correction, corrections_path, reject_suggestion, reviewed_ids
from maskcls.data.labels import AgeBounds
from maskcls.infer.review import ReviewQueue, review_queue
from maskcls.train.config import RunConfig

DEFAULT_FILE = "reviewed"


@dataclass
class Review:
    """A queue with what it was read from and where its decisions go."""

    queue: ReviewQueue  # every flagged person
    pending: ReviewQueue  # less those already accepted or rejected in `file`
    preds: pd.DataFrame
    config: RunConfig
    source: str
    file: Path

    @property
    def bounds(self) -> AgeBounds:
        return AgeBounds(self.config.age_lower, self.config.age_upper)


def person_ages(cfg: RunConfig) -> pd.Series:
    """person_id -> age as the run's data (with its corrections) gives it."""
    from maskcls.data.corrections import load_corrections
    from maskcls.data.index import index_data
    corr = load_corrections(cfg.corrections) if cfg.corrections != "none" else None
    train = index_data(cfg.data_root, AgeBounds(cfg.age_lower, cfg.age_upper), corr, verify=False).train
    return train.drop_duplicates("person_id").set_index("person_id")["age"]


def source_of(runs_root, ref: str) -> tuple[pd.DataFrame, RunConfig, str]:
    """(predictions, config, what they are) of a fold group NAME (its out-of-fold table) or a run."""
    from maskcls.orchestration.folds import fold_runs, list_oof, read_oof
    from maskcls.common.runfolder import RunFolder
    if ref in list_oof(runs_root):
        preds = read_oof(runs_root, ref)
        cfg = RunConfig.from_dict(fold_runs(runs_root, ref)[0].read_config())
        return preds, cfg, f"{ref}-oof.csv (out of fold: every person scored by a model that never saw them)"
    from maskcls.infer.evaluation import validation_predictions
    run = RunFolder.open(runs_root, ref)
    preds = validation_predictions(run.root, run.name)
    return preds, RunConfig.from_dict(run.read_config()), f"{run.name}'s validation predictions"


def open_review(runs_root, ref: str, *, into: str = DEFAULT_FILE, distance: int | None = None,
                preds: pd.DataFrame | None = None, cfg: RunConfig | None = None, checkpoint: str = "best.pt") -> Review:
    """The queue of `ref` (a run or a fold group) against the corrections file `into`. `distance`: the borderline
    distance in years (default: the run's drop_borderline, at least 1). `preds`/`cfg` skip reading them again."""
    source = "the predictions given"
    if preds is None or cfg is None:
        preds, cfg, source = source_of(runs_root, ref)
    file = corrections_path(runs_root, into)
    d = max(cfg.drop_borderline, 1) if distance is None else distance
    if d < 0:
        raise ValueError(f"the borderline distance must be 0 years or more, got {d}")
    queue = review_queue(preds, AgeBounds(cfg.age_lower, cfg.age_upper), d, person_ages(cfg))
    accepted, rejected = reviewed_ids(file)
    mark_reviewed(runs_root, ref, checkpoint, f"review into {file.name}")
    return Review(queue, queue.without(accepted | rejected), preds, cfg, source, file)


def mark_reviewed(runs_root, ref: str, checkpoint: str, by: str) -> None:
    """The run a review reads (its checkpoint's predictions, its Grad-CAM) keeps that checkpoint through a prune;
    a fold group's review reads each fold's best.pt, which a prune never removes."""
    from maskcls.common.runfolder import RunFolder
    run = RunFolder.open(runs_root, ref)
    if run.exists() and checkpoint != "best.pt":
        try:
            run.mark_used(checkpoint, by)
        except (OSError, ValueError):
            pass  # a read-only folder: nothing here can prune it either


def find(review: Review, person: str) -> pd.Series:
    """The queue's row of one person (main list first, then borderline)."""
    if not str(person).strip():
        raise ValueError("expected a person id such as 000001, got an empty one (an unset variable?)")
    for table in (review.queue.main, review.queue.borderline):
        hit = table[table["person_id"] == str(person)]
        if len(hit):
            return hit.iloc[0]
    raise ValueError(f"person {person!r} is not in the review queue ({review.queue.flagged} flagged of "
                     f"{review.queue.scored} scored; `maskcls review` lists them)")


def accept(review: Review, person: str) -> dict:
    """Write the person's suggested correction into the review's corrections file; returns the row written."""
    from maskcls.infer.evaluation import suggested_correction
    row = suggested_correction(find(review, person), review.bounds)
    accept_correction(review.file, row)
    return row


def reject(review: Review, person: str) -> None:
    """Remember that this person was looked at and left as labelled (not offered again)."""
    find(review, person)
    reject_suggestion(review.file, str(person))
