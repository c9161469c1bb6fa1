"""How sure a macro F1 is: bootstrap intervals that resample people (not images), paired comparisons of two runs,
and what a validation score says about an unseen test set.

A person's seven photos share a face, a gender and an age: they are not seven independent samples, so the honest
sample size is the number of people. Every resampling here draws people with replacement and keeps all their
photos. It is vectorised: each person contributes one confusion matrix, a resample is a weighted sum of them
(a (B, P) @ (P, K*K) product), and per-class F1 comes from the summed matrices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K = 18
RESAMPLES = 2000
LEVEL = 0.95


def person_confusions(labels, predicted, persons, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """(P, k*k) confusion counts of each person's photos, and the person ids in that order."""
    labels, predicted = np.asarray(labels, int), np.asarray(predicted, int)
    ids, person = np.unique(np.asarray(persons).astype(str), return_inverse=True)
    conf = np.zeros((len(ids), k * k), np.float64)
    np.add.at(conf, (person, labels * k + predicted), 1.0)
    return conf, ids


def f1_of(conf: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 (..., k) and macro F1 (...) of confusion counts (..., k*k); a class absent from both the labels
    and the predictions scores 0, as scikit-learn's zero_division=0 and the leaderboard do."""
    m = conf.reshape(*conf.shape[:-1], k, k)
    tp = np.diagonal(m, axis1=-2, axis2=-1)
    denom = m.sum(-1) + m.sum(-2)  # 2tp + fn + fp
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=np.float64), where=denom > 0)
    return f1, f1.mean(-1)


def resampled_macro(per_class: np.ndarray, conf: np.ndarray, observed: np.ndarray, k: int = K) -> np.ndarray:
    """Macro F1 of resampled confusions (B, k*k): a class the observed labels hold but a resample happens to draw
    no person of is left out of that resample's mean (its F1 is undefined there, not 0); a class the observed labels
    lack counts as the official metric counts it."""
    truth = conf.reshape(*conf.shape[:-1], k, k).sum(-1) > 0
    seen = observed.reshape(k, k).sum(-1) > 0
    use = truth | ~seen
    return (per_class * use).sum(-1) / np.maximum(use.sum(-1), 1)


def resample_weights(n_people: int, resamples: int, seed: int) -> np.ndarray:
    """(B, P) how often each person is drawn in each resample (people with replacement)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_people, np.full(n_people, 1.0 / n_people), size=resamples).astype(np.float64)


def percentile(samples: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """The central `level` interval of `samples` along axis 0: (2, ...)."""
    a = (1 - level) / 2
    return np.quantile(samples, [a, 1 - a], axis=0)


@dataclass
class F1Interval:
    """A macro F1 with its interval over people, and each class's F1 with its own."""

    macro_f1: float
    ci: tuple[float, float]
    per_class_f1: list[float]
    per_class_ci: list[tuple[float, float]]
    people: int
    images: int
    resamples: int
    level: float = LEVEL

    def as_dict(self) -> dict:
        return {"macro_f1": self.macro_f1, "macro_f1_ci": list(self.ci), "per_class_f1": self.per_class_f1,
                "per_class_f1_ci": [list(c) for c in self.per_class_ci], "people": self.people,
                "images": self.images, "resamples": self.resamples, "level": self.level, "unit": "person"}

    @classmethod
    def from_dict(cls, d: dict) -> "F1Interval":
        return cls(d["macro_f1"], tuple(d["macro_f1_ci"]), d["per_class_f1"], [tuple(c) for c in d["per_class_f1_ci"]],
                   d["people"], d["images"], d["resamples"], d.get("level", LEVEL))


def macro_f1_interval(labels, predicted, persons, *, resamples: int = RESAMPLES, seed: int = 0,
                      level: float = LEVEL) -> F1Interval:
    """Macro F1 and per-class F1 with percentile intervals from resampling people."""
    conf, ids = person_confusions(labels, predicted, persons)
    per_class, macro = f1_of(conf.sum(0))
    w = resample_weights(len(ids), resamples, seed)
    sums = w @ conf
    boot_class, _ = f1_of(sums)
    boot_macro = resampled_macro(boot_class, sums, conf.sum(0))
    lo, hi = percentile(boot_macro, level)
    cls_ci = percentile(boot_class, level)
    return F1Interval(float(macro), (float(lo), float(hi)), [float(x) for x in per_class],
                      [(float(a), float(b)) for a, b in zip(cls_ci[0], cls_ci[1])], len(ids), len(labels),
                      resamples, level)


def image_interval(labels, predicted, *, resamples: int = RESAMPLES, seed: int = 0,
                   level: float = LEVEL) -> tuple[float, float]:
    """The interval an image-level bootstrap claims (the usual mistake: it treats a person's photos as independent).
    Only for showing how much narrower it is."""
    n = len(labels)
    return tuple(float(x) for x in macro_f1_interval(labels, predicted, np.arange(n), resamples=resamples,
                                                      seed=seed, level=level).ci)


def interval_of_frame(frame, **kw) -> F1Interval:
    """The interval of a predictions table (path, person_id, label, p0..p17)."""
    probs = frame[[f"p{i}" for i in range(K)]].to_numpy()
    return macro_f1_interval(frame["label"].to_numpy(), probs.argmax(1), frame["person_id"].astype(str).to_numpy(),
                             **kw)


def unseen_set(frame, *, test_people: int, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> dict:
    """What a model like this one may score on an unseen set of `test_people` people drawn like the validation
    people: an interval for its macro F1, and how far apart the two halves of such a set (the leaderboard's public
    and private halves) can score. Simulated by drawing people with replacement from the validation people; it
    knows nothing of a shift between the training photos and the test photos."""
    probs = frame[[f"p{i}" for i in range(K)]].to_numpy()
    conf, ids = person_confusions(frame["label"].to_numpy(), probs.argmax(1), frame["person_id"].astype(str))
    rng = np.random.default_rng(seed)
    p = np.full(len(ids), 1.0 / len(ids))
    def draw(n: int) -> np.ndarray:
        sums = rng.multinomial(n, p, size=resamples).astype(np.float64) @ conf
        return resampled_macro(f1_of(sums)[0], sums, conf.sum(0))
    half = max(1, test_people // 2)
    whole, public, private = draw(test_people), draw(half), draw(test_people - half)
    gap = public - private
    lo, hi = percentile(whole, level)
    glo, ghi = percentile(gap, level)
    return {"test_people": int(test_people), "expected_test_f1": [float(lo), float(hi)],
            "public_private_gap": [float(glo), float(ghi)],
            "public_private_gap_abs": float(np.quantile(np.abs(gap), level)), "level": level}


def run_intervals(frame, *, eval_people: int = 0, epoch: int | None = None) -> dict:
    """What a run folder stores at its best epoch (intervals.json): the interval over people and, when the eval
    set's size is known, the unseen-set figures."""
    out = {**interval_of_frame(frame).as_dict(), "epoch": epoch}
    if eval_people:
        out.update(unseen_set(frame, test_people=eval_people))
    return out


def halves(persons: np.ndarray, seed: int = 0) -> np.ndarray:
    """(P,) 0/1 for each person id: a fixed random halving of the people (the same ids, the same halves)."""
    ids = np.unique(np.asarray(persons).astype(str))
    order = np.random.default_rng(seed).permutation(len(ids))
    return dict(zip(ids, (order % 2).tolist()))


def selection_free(history, *, resamples: int = RESAMPLES, level: float = LEVEL) -> dict | None:
    """The best epoch's score without the optimism of choosing it on the same people: the validation people are
    halved; each half is scored with the epoch that scored best on the other half (a cross-fit), and the combined
    predictions get their interval over people. None with fewer than two epochs or four people."""
    from maskcls.common.predictions import epoch_columns
    epochs = epoch_columns(history)
    persons = history["person_id"].astype(str).to_numpy()
    if len(epochs) < 2 or len(np.unique(persons)) < 4:
        return None
    half = np.array([halves(persons)[p] for p in persons])
    labels = history["label"].to_numpy()
    picked, chosen = np.zeros(len(labels), int), []
    for h in (0, 1):
        other = half != h
        scores = [f1_of(person_confusions(labels[other], history[e].to_numpy()[other], persons[other])[0].sum(0))[1]
                  for e in epochs]
        best = epochs[int(np.argmax(scores))]  # ties: the earlier epoch, as training keeps the first best
        chosen.append(int(best[1:]))
        picked[half == h] = history[best].to_numpy()[half == h]
    ci = macro_f1_interval(labels, picked, persons, resamples=resamples, level=level)
    return {"macro_f1": ci.macro_f1, "macro_f1_ci": list(ci.ci), "epochs_chosen": chosen, "epochs": len(epochs),
            "how": "validation people halved; each half scored with the epoch chosen on the other half"}


def add_selection(intervals: dict, history) -> dict:
    """`intervals` (run_intervals' figures of the best epoch) with the selection-free figure beside them, and the
    expected test score moved down by the optimism of choosing the best epoch on these people (the best-epoch
    figure kept, labelled, as `expected_test_f1_best_epoch`)."""
    out = dict(intervals)
    free = selection_free(history) if history is not None else None
    if free is None:
        return out
    out["selection_free"] = free
    optimism = max(0.0, out["macro_f1"] - free["macro_f1"])
    out["selection_optimism"] = optimism
    if "expected_test_f1" in out:
        raw = out.get("expected_test_f1_best_epoch", out["expected_test_f1"])
        out["expected_test_f1_best_epoch"] = raw
        out["expected_test_f1"] = [max(0.0, raw[0] - optimism), max(0.0, raw[1] - optimism)]  # an F1 is >= 0
    return out


def selection_lines(ci: dict) -> list[str]:
    """The selection-free figure in words, for the CLI, the pages and the report (nothing without one)."""
    free = ci.get("selection_free")
    if not free:
        return []
    return [f"the best of {free['epochs']} epochs, chosen on these same people, leans high: selection-free macro F1 "
            f"{free['macro_f1']:.4f} (95 % interval {free['macro_f1_ci'][0]:.4f} to {free['macro_f1_ci'][1]:.4f}; "
            f"{free['how']}, epochs {free['epochs_chosen'][0]} and {free['epochs_chosen'][1]})"]
