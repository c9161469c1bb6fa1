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

from maskcls.data.corrections import corrections_path, reviewed_ids
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
    warning: str | None = None  # why the model's suggestions should not be trusted (trust_warning)

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
    from maskcls.orchestration.groups import group_root
    root, name = group_root(runs_root, ref)  # one's own fold group, or a teammate's pulled one
    if name in list_oof(root):
        preds = read_oof(root, name)
        cfg = RunConfig.from_dict(fold_runs(root, name, complete=False)[0].read_config())
        return preds, cfg, f"{ref}-oof.csv (out of fold: every person scored by a model that never saw them)"
    from maskcls.infer.evaluation import validation_predictions
    run = RunFolder.open(runs_root, ref)
    preds = validation_predictions(run.root, run.name)
    return preds, RunConfig.from_dict(run.read_config()), f"{run.name}'s validation predictions"


def open_review(runs_root, ref: str, *, into: str = DEFAULT_FILE, distance: int | None = None,
                preds: pd.DataFrame | None = None, cfg: RunConfig | None = None, checkpoint: str = "best.pt",
                ages: pd.Series | None = None) -> Review:
    """The queue of `ref` (a run or a fold group) against the corrections file `into`. `distance`: the borderline
    distance in years (default: the run's drop_borderline, at least 1). `preds`/`cfg` skip reading them again."""
    source = "the predictions given"
    if preds is None or cfg is None:
        preds, cfg, source = source_of(runs_root, ref)
    file = corrections_path(runs_root, into)
    d = max(cfg.drop_borderline, 1) if distance is None else distance
    if d < 0:
        raise ValueError(f"the borderline distance must be 0 years or more, got {d}")
    ages = person_ages(cfg) if ages is None else ages
    queue = review_queue(preds, AgeBounds(cfg.age_lower, cfg.age_upper), d, ages)
    accepted, rejected = reviewed_ids(file)
    mark_reviewed(runs_root, ref, checkpoint, f"review into {file.name}")
    return Review(queue, queue.without(accepted | rejected), preds, cfg, source, file, trust_warning(preds, queue))


def mark_reviewed(runs_root, ref: str, checkpoint: str, by: str) -> None:
    """The run a review reads (its checkpoint's predictions, its Grad-CAM) keeps that checkpoint through a prune;
    a fold group's review reads each fold's best.pt, which a prune never removes."""
    from maskcls.common.runfolder import RunFolder
    if checkpoint == "best.pt":
        return
    try:
        run = RunFolder.open(runs_root, ref)
    except ValueError:
        return  # a group (a pulled one names no run folder): its folds' best.pt are never pruned
    if run.exists():
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
    return accept_many(review, [person])[0]


def accept_many(review: Review, people: list[str]) -> list[dict]:
    """Accept several people's suggestions in one decision (one write; one undo puts them all back)."""
    from maskcls.data.corrections import decide
    from maskcls.infer.evaluation import suggested_correction
    rows = [suggested_correction(find(review, person), review.bounds) for person in _unique(people)]
    decide(review.file, accept=rows)
    return rows


def reject(review: Review, person: str) -> None:
    """Remember that this person was looked at and left as labelled (not offered again)."""
    reject_many(review, [person])


def reject_many(review: Review, people: list[str]) -> None:
    from maskcls.data.corrections import decide
    people = _unique(people)
    for person in people:
        find(review, person)
    decide(review.file, reject=people)


def undo(review: Review) -> list[str]:
    """Put back what the last accept or reject in this corrections file replaced; returns its people."""
    from maskcls.data.corrections import undo_last
    return undo_last(review.file)


def _unique(people) -> list[str]:
    out = list(dict.fromkeys(str(p).strip() for p in people))
    if not out:
        raise ValueError("expected at least one person id such as 000001")
    return out


TRUST_F1 = 0.5  # below this macro F1 a model's disagreements are mostly its own errors
TRUST_SHARE = 0.1  # a model that flags more than this share of people is flagging its errors, not the labels


def trust_warning(preds: pd.DataFrame, queue: ReviewQueue) -> str | None:
    """Why this model's suggestions should not be trusted, in words (None when nothing says so)."""
    from maskcls.train.metrics import macro_f1
    from maskcls.common.runfolder import probs_of
    f1 = float(macro_f1(preds["label"].to_numpy(), probs_of(preds).argmax(1)))
    share = queue.flagged / max(queue.scored, 1)
    why = []
    if f1 < TRUST_F1:
        why.append(f"this model's own macro F1 on these people is {f1:.2f} (under {TRUST_F1}): most of what it "
                   f"disagrees with is its own error")
    if share > TRUST_SHARE:
        why.append(f"it flags {queue.flagged} of {queue.scored} people ({share:.0%}; a label error rate near that "
                   f"would be extraordinary)")
    return ("Do not trust these suggestions blindly: " + "; ".join(why) + ". Review with a stronger model, ideally "
            "a fold group's out-of-fold table (`train --folds 5`).") if why else None


def explain(row) -> str:
    """What a queue row's score says, in words: how many photos agree, how strongly, against which peers."""
    if row["attribute"] == "mask swap":
        return (f"both the incorrect_mask and the no-mask photo look like the other's label ({row['agreement']:.0%} "
                f"of the pair; score {row['score']:.2f} = agreement x mean probability of the swap)")
    return (f"{row['agreement']:.0%} of {int(row['images'])} photos prefer {row['suggested_name']} to the given "
            f"{row['given_name']}; people labelled {row['given_name']} with the closest ages get "
            f"{row['typical']:.2f} for {row['suggested_name']} (score {row['score']:.2f} = agreement x how far this "
            f"person's probability rises above that)")
