"""The review queue: people whose labels a model that never trained on them disagrees with, worth a human look.

Read from an out-of-fold table (best) or a run's validation predictions, one row per image. Gender and age are
labels of the person, so each is judged over the person's photos together:
- agreement: the share of the person's photos on which the model prefers the suggested value to the given one;
- calibration against the person's peers: `typical` is the median of the model's mean probability of the
  suggested value over the NEIGHBOURS people with the same given value and the closest ages. Where the model
  misreads everyone alike (a 64x48 model reads most 30-39 year olds as under 30), the peers share the
  disagreement and it is the model's limit, not a label error; a flipped label stands out from its peers;
- score = agreement x (mean probability of the suggested value - typical): high only when most photos agree,
  strongly, and the person departs from people like them.
A person is flagged when most photos prefer one other value and the excess over the peers is at least
MIN_EXCESS. Age suggestions of people at a band bound (within the borderline distance, the bound itself
included) go to their own list: the model's hesitation there is expected, not evidence of a wrong label. A
swap of the incorrect_mask and normal photos is judged on that pair (confident learning's per-value thresholds).
Measured (docs/performance.md, the review queue): 14-15 of 16 planted gender flips lead the queue, against
12-13 with confident-learning votes and no peer baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from maskcls.data.labels import AgeBounds, attribute_names, decode

COLUMNS = ["person_id", "attribute", "given", "suggested", "given_name", "suggested_name", "score", "agreement",
           "typical", "images", "age", "suggestion"]
MIN_AGREEMENT = 0.5  # more than half of the person's photos must prefer the suggestion
NEIGHBOURS = 10  # peers per person: same given value, closest ages
MIN_EXCESS = 0.2  # the suggestion's mean probability must exceed the peers' typical value by this much


@dataclass
class ReviewQueue:
    """Flagged people, ranked: `main` (worth a look first) and `borderline` (age at a band bound)."""

    main: pd.DataFrame
    borderline: pd.DataFrame
    scored: int  # people the predictions cover
    distance: int  # borderline distance used (years below each bound, the bound itself always included)

    @property
    def flagged(self) -> int:
        return len(self.main) + len(self.borderline)

    def without(self, ids: set[str]) -> "ReviewQueue":
        """The queue less the people already reviewed (accepted or rejected)."""
        keep = lambda t: t[~t["person_id"].isin(ids)].reset_index(drop=True)  # noqa: E731
        return ReviewQueue(keep(self.main), keep(self.borderline), self.scored, self.distance)


def marginals(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-attribute probabilities from the 18-class ones: mask (N, 3), gender (N, 2), age (N, 3)."""
    p = probs.reshape(-1, 3, 2, 3)
    return {"mask": p.sum((2, 3)), "gender": p.sum((1, 3)), "age": p.sum((1, 2))}


def thresholds(p: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Confident learning's per-value thresholds: the mean probability of v over photos labelled v."""
    return np.array([p[given == v, v].mean() if (given == v).any() else 1.0 for v in range(p.shape[1])])


def is_borderline(age: np.ndarray, bounds: AgeBounds, distance: int) -> np.ndarray:
    """Ages within `distance` years below a band bound, or at the bound itself."""
    age = np.asarray(age)
    near = np.zeros(age.shape, bool)
    for b in (bounds.lower, bounds.upper):
        near |= (age >= b - max(distance, 1)) & (age <= b)
    return near


def peer_typical(values: np.ndarray, given: np.ndarray, ages: np.ndarray | None, k: int = NEIGHBOURS) -> np.ndarray:
    """For each person i, the median of values[j, i's column] over the k other people with i's given value and the
    closest ages (all of them when ages are unknown). `values` (people, columns); returns (people,) per column."""
    n = len(given)
    out = np.zeros(values.shape)
    for i in range(n):
        peers = np.flatnonzero(given == given[i])
        peers = peers[peers != i]
        if ages is not None and not np.isnan(ages[i]):
            peers = peers[np.argsort(np.abs(ages[peers] - ages[i]), kind="stable")[:k]]
        if len(peers):
            out[i] = np.median(values[peers], axis=0)
    return out


def _person_attribute(frame: pd.DataFrame, p: np.ndarray, given: np.ndarray, attr: str,
                      ages: pd.Series | None) -> pd.DataFrame:
    """One row per person for a person-level attribute: suggested value, agreement, typical, score; flagged rows."""
    n, k = p.shape
    prefers = p > p[np.arange(n), given][:, None]  # (N, k): the photo prefers v to its given value
    table = pd.DataFrame({"person_id": frame["person_id"].astype(str).to_numpy(), "given": given})
    for v in range(k):
        table[f"p{v}"] = p[:, v]
        table[f"v{v}"] = prefers[:, v]
    per = table.groupby("person_id").agg(given=("given", "first"), images=("given", "size"),
                                         **{f"p{v}": (f"p{v}", "mean") for v in range(k)},
                                         **{f"v{v}": (f"v{v}", "mean") for v in range(k)})
    mean_p = per[[f"p{v}" for v in range(k)]].to_numpy()
    agree = per[[f"v{v}" for v in range(k)]].to_numpy()
    g = per["given"].to_numpy()
    rows = np.arange(len(per))
    masked = mean_p.copy()
    masked[rows, g] = -1.0
    suggested = masked.argmax(1)
    age = per.index.map(ages).to_numpy(float) if ages is not None else None
    typical = peer_typical(mean_p, g, age)[rows, suggested]
    excess = mean_p[rows, suggested] - typical
    out = pd.DataFrame({"person_id": per.index, "attribute": attr, "given": g, "suggested": suggested,
                        "score": agree[rows, suggested] * excess, "agreement": agree[rows, suggested],
                        "typical": typical, "images": per["images"].to_numpy()})
    flagged = (out["agreement"] > MIN_AGREEMENT) & (mean_p[rows, suggested] > mean_p[rows, g]) & (excess >= MIN_EXCESS)
    return out[flagged.to_numpy()]


def _mask_swaps(frame: pd.DataFrame, p: np.ndarray, given: np.ndarray) -> pd.DataFrame:
    """People whose incorrect_mask and normal photos look swapped: both photos vote for the other's value."""
    t = thresholds(p, given)
    pair = np.isin(given, (1, 2))
    swapped = 3 - given[pair]  # incorrect (1) <-> normal (2)
    sp = p[pair, swapped]
    table = pd.DataFrame({"person_id": frame["person_id"].to_numpy()[pair], "p": sp, "vote": sp >= t[swapped]})
    per = table.groupby("person_id").agg(images=("p", "size"), p=("p", "mean"), agreement=("vote", "mean"))
    per = per[(per["images"] >= 2) & (per["agreement"] == 1.0)]
    return pd.DataFrame({"person_id": per.index, "attribute": "mask swap", "given": -1, "suggested": -1,
                         "score": per["agreement"].to_numpy() * per["p"].to_numpy(),
                         "agreement": per["agreement"].to_numpy(), "typical": np.nan, "images": per["images"].to_numpy()})


def review_queue(preds: pd.DataFrame, bounds: AgeBounds | None = None, distance: int = 1,
                 ages: pd.Series | None = None) -> ReviewQueue:
    """The ranked queue from predictions (path, person_id, label, p0..p17). `ages` (person_id -> age, from the
    data index) chooses each person's peers and places age suggestions near a bound in the borderline list."""
    from maskcls.common.runfolder import probs_of
    bounds = bounds or AgeBounds()
    m, g, a = decode(preds["label"].to_numpy())
    marg = marginals(probs_of(preds))
    parts = [_person_attribute(preds, marg["gender"], g, "gender", ages),
             _person_attribute(preds, marg["age"], a, "age", ages), _mask_swaps(preds, marg["mask"], m)]
    people = pd.concat([x for x in parts if len(x)], ignore_index=True) if any(len(x) for x in parts) else \
        pd.DataFrame(columns=COLUMNS)
    people["age"] = people["person_id"].map(ages) if ages is not None else np.nan
    names = attribute_names(bounds)
    people["given_name"] = [names[x][int(v)] if x in names else "as labelled" for x, v in
                            zip(people["attribute"], people["given"])]  # a mask swap: the pair as labelled
    people["suggested_name"] = [names[x][int(v)] if x in names else "swapped" for x, v in
                                zip(people["attribute"], people["suggested"])]
    people["suggestion"] = [suggestion_text(x, n) for x, n in zip(people["attribute"], people["suggested_name"])]
    people = people.sort_values("score", ascending=False, kind="stable")
    near = (people["attribute"] == "age") & is_borderline(people["age"].fillna(-100).to_numpy(), bounds, distance)
    main = people[~near].drop_duplicates("person_id").reset_index(drop=True)[COLUMNS]
    border = people[near & ~people["person_id"].isin(main["person_id"])].reset_index(drop=True)[COLUMNS]
    return ReviewQueue(main, border, int(preds["person_id"].nunique()), max(int(distance), 1))


def suggestion_text(attribute: str, suggested_name: str) -> str:
    if attribute == "mask swap":
        return "incorrect_mask and normal look swapped"
    return f"{attribute} looks like {suggested_name}"


def person_probabilities(preds: pd.DataFrame, person_id: str) -> pd.DataFrame:
    """The model's mean probability of each value over one person's photos: one row per attribute, one column
    per value of that attribute (other cells blank, not 'None')."""
    from maskcls.common.runfolder import probs_of
    rows = preds[preds["person_id"] == str(person_id)]
    marg = marginals(probs_of(rows))
    names = attribute_names()
    table = {a: {names[a][v]: f"{float(p[:, v].mean()):.2f}" for v in range(p.shape[1])} for a, p in marg.items()}
    return pd.DataFrame.from_dict(table, orient="index").fillna("").rename_axis("attribute")
