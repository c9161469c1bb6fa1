"""Is B better than A? One procedure gives the difference in macro F1, its interval and its p-value, so the three
can never disagree: a jackknife over people (and over seeds, when a side has several) for the standard error, and
Student's t for the interval and the p-value. "Better" is said exactly when the interval leaves out 0, which is
exactly when p < 0.05 (at the 95 % level).

Why this procedure: a calibration study (maskcls.train.calibration, benchmarks/calibration.py, docs/performance.md)
simulated validation sets shaped like the real data. The percentile bootstrap with a permutation p-value (what
maskcls used before) said "better" for 8-9 % of equal pairs on 12 people and disagreed with its own p on 3-5 % of
pairs; the jackknife-t stayed near 5 % at every size with 95 % coverage of the true difference.

A prediction set is one or more predictions tables of the same images: a run (one), a fold group (its out-of-fold
table), a repeat group (one per seed). Its score is the mean of its members' macro F1. With several seeds on a side,
the seeds' spread enters the standard error (a claim about the configs); between two single runs the claim is about
the two trained models on these people, and says so.
"""
from __future__ import annotations

import numpy as np

from maskcls.data.fingerprints import image_keys
from maskcls.train.intervals import K, LEVEL, f1_of, person_confusions, resampled_macro

MIN_CLASS_PEOPLE = 3  # fewer validation people than this in a class: its F1 difference cannot be resolved
POWER = 0.8  # the power at which the resolvable difference is quoted
# The fewest validation people on a side for a verdict: the smallest size the calibration study checked (6 people:
# 3 % false "better", 97 % coverage, docs/calibration.md). Fewer, a single class among the labels, or no variance at
# all (two copies of one model, every person moved alike) and the comparison says it cannot judge.
MIN_PEOPLE = 6
CANNOT = "cannot judge"


def _probs(frame) -> np.ndarray:
    return frame[[f"p{i}" for i in range(K)]].to_numpy()


def keyed(frame):
    """The table indexed by each photo's person folder and file name, not its absolute path: two machines' runs of
    the same data pair although their data roots differ."""
    return frame.set_index(image_keys(frame["path"]).to_numpy())


def same_images(a: list, b: list) -> bool:
    """Every table of both sets predicts the same images with the same labels: then the comparison pairs."""
    ref = keyed(a[0])["label"]
    for f in a[1:] + b:
        other = keyed(f)["label"]
        if len(other) != len(ref) or set(other.index) != set(ref.index) or not (other.loc[ref.index] == ref).all():
            return False
    return True


def unpaired_reason(a: list, b: list) -> str:
    """Why two sets do not pair, in the user's terms: other people, or the same people with other photos/labels."""
    people = [set(f["person_id"].astype(str)) for f in a + b]
    if all(p == people[0] for p in people):
        return ("validated on the same people but not on the same photos with the same labels (another copy of the "
                "data with photos changed, added or removed, or a corrections file one side applied)")
    return "validated on different people (another split, or folds against a split)"


def stacked_confusions(frames: list, order=None) -> tuple[np.ndarray, np.ndarray]:
    """(M, P, K*K) per-person confusions of each table (rows aligned by photo to `order`, a list of image keys,
    when given), person ids."""
    out, ids = [], None
    for f in frames:
        f = keyed(f).loc[order].reset_index(drop=True) if order is not None else f
        conf, ids = person_confusions(f["label"].to_numpy(), _probs(f).argmax(1), f["person_id"].astype(str))
        out.append(conf)
    return np.stack(out), ids


def set_scores(weights: np.ndarray, confs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over members of (per-class F1, macro F1) for each row of weights: (B, K), (B,)."""
    per_class, macro = [], []
    for c in confs:
        sums = weights @ c
        f1 = f1_of(sums)[0]
        per_class.append(f1)
        macro.append(resampled_macro(f1, sums, c.sum(0)))
    return np.mean(per_class, 0), np.mean(macro, 0)


def seed_scores(confs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each member's (per-class F1 (M, K), macro F1 (M,)) over all its people."""
    totals = confs.sum(1)  # (M, K*K)
    per_class = f1_of(totals)[0]
    macro = np.array([resampled_macro(per_class[m], totals[m], totals[m]) for m in range(len(confs))])
    return per_class, macro


def leave_one_out(confs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The set's (per-class F1 (P, K), macro F1 (P,)) with each person left out in turn, averaged over members."""
    per_class, macro = [], []
    for c in confs:
        total = c.sum(0)
        sums = total[None] - c  # (P, K*K)
        f1 = f1_of(sums)[0]
        per_class.append(f1)
        macro.append(resampled_macro(f1, sums, total))
    return np.mean(per_class, 0), np.mean(macro, 0)


def jackknife_variance(replicates: np.ndarray) -> np.ndarray:
    """Jackknife variance of a statistic from its leave-one-out replicates along axis 0."""
    n = replicates.shape[0]
    return (n - 1) / n * ((replicates - replicates.mean(0)) ** 2).sum(0)


def _seed_terms(seeds_a: np.ndarray, seeds_b: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """(variance of a side's seed mean, its degrees of freedom) for each side: s^2 / M from the side's own seeds
    (the delete-one-seed jackknife of a mean); a single run borrows the other side's seed spread (one config's
    training noise standing in for the other's), and two single runs have none."""
    sides = [s for s in (seeds_a, seeds_b) if len(s) > 1]
    if not sides:
        return []
    pooled = sides[0] if len(sides) == 1 else None
    out = []
    for s in (seeds_a, seeds_b):
        own = s if len(s) > 1 else pooled
        out.append((np.var(own, axis=0, ddof=1) / len(s), len(own) - 1))
    return out


def t_interval(diff, terms: list[tuple[np.ndarray, int]], level: float = LEVEL):
    """Interval, p-value and standard error of `diff` from independent variance terms (variance, df); the degrees of
    freedom come from Welch and Satterthwaite's rule. Works elementwise (per class)."""
    from scipy import stats
    var = sum(v for v, _ in terms)
    se = np.sqrt(var)
    denom = sum(np.where(v > 0, v ** 2 / max(df, 1), 0.0) for v, df in terms)
    df = np.where(denom > 0, var ** 2 / np.where(denom > 0, denom, 1.0), 1.0)
    crit = stats.t.ppf(0.5 + level / 2, df)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, np.abs(diff) / np.where(se > 0, se, 1.0), np.where(np.abs(diff) > 0, np.inf, 0.0))
    p = np.where(se > 0, 2 * stats.t.sf(t, df), np.where(np.abs(diff) > 0, 0.0, 1.0))
    return diff - crit * se, diff + crit * se, p, se, df, crit


def resolvable(se: float, df: float, level: float = LEVEL, power: float = POWER) -> float:
    """The smallest true difference this comparison finds with `power` (two-sided, at `level`)."""
    from scipy import stats
    return float((stats.t.ppf(0.5 + level / 2, df) + stats.t.ppf(power, df)) * se)


def claim_of(seeds: tuple[int, int]) -> str:
    """What a verdict is about: two trained models, or two configs (seeds resampled)."""
    return "configs" if max(seeds) > 1 else "models"


def cannot_judge(ca: np.ndarray, cb: np.ndarray, se: float) -> str | None:
    """Why these per-person confusions (M, P, K*K) support no verdict (None when they do): too few people, one
    class among the labels, or no variance at all."""
    people = min(ca.shape[1], cb.shape[1])
    if people < MIN_PEOPLE:
        return (f"only {people} validation people on a side; the procedure is checked from {MIN_PEOPLE} people up "
                f"(validate on more people)")
    for side in (ca, cb):  # each side on its own: unpaired, one side of a single class is as empty
        truth = side.reshape(side.shape[0], side.shape[1], K, K).sum(-1).sum(0) > 0  # (P, K)
        classes = np.flatnonzero(truth.any(0))
        if len(classes) < 2:
            return (f"every validation photo of a side is of one class ({int(classes[0]) if len(classes) else '-'}): "
                    f"macro F1 over one class says nothing about the other 17")
    if not se > 1e-12:
        return ("the difference does not vary at all from person to person (zero variance: two copies of one model, "
                "or sides that differ alike on everyone), so no interval can be drawn")
    return None


def verdict(diff: float, ci, p_value: float, a: str = "A", b: str = "B", *, claim: str = "models",
            cannot: str | None = None) -> str:
    """One line: which is better, by how much, with its interval and p, that there is no evidence, or that the
    comparison cannot judge (and why); and what the claim covers."""
    if cannot:
        return f"{CANNOT}: {diff:+.3f}, no interval and no verdict: {cannot}"
    lo, hi = ci
    about = ("as configs (seeds and people resampled)" if claim == "configs" else
             "as trained models on these people; whether the config is better needs seeds")
    if lo > 0:
        return f"{b} is better than {a} by {diff:.3f} [{lo:.3f}, {hi:.3f}], p = {p_value:.3g} ({about})"
    if hi < 0:
        return f"{a} is better than {b} by {-diff:.3f} [{-hi:.3f}, {-lo:.3f}], p = {p_value:.3g} ({about})"
    return f"no evidence of a difference: {diff:+.3f} [{lo:+.3f}, {hi:+.3f}], p = {p_value:.3g} ({about})"


def thin_classes(confs: np.ndarray) -> list[int]:
    """Classes with fewer than MIN_CLASS_PEOPLE validation people: their F1 moves by whole people."""
    truth = confs[0].reshape(confs.shape[1], K, K).sum(-1) > 0  # (P, K): the person has photos of the class
    return [int(c) for c in np.flatnonzero(truth.sum(0) < MIN_CLASS_PEOPLE)]


def difference(ca: np.ndarray, cb: np.ndarray, *, paired: bool, level: float = LEVEL) -> dict:
    """The procedure on per-person confusions (M, P, K*K) of each side: B - A in macro F1 (the mean over each
    side's members), its interval, p, standard error and degrees of freedom, and the same per class."""
    if min(ca.shape[1], cb.shape[1]) < 2:
        raise ValueError(f"a comparison needs at least 2 validation people on each side, got "
                         f"{ca.shape[1]} and {cb.shape[1]}")
    cls_a, seeds_a = seed_scores(ca)
    cls_b, seeds_b = seed_scores(cb)
    diff, cls_diff = float(seeds_b.mean() - seeds_a.mean()), cls_b.mean(0) - cls_a.mean(0)
    loo_cls_a, loo_a = leave_one_out(ca)
    loo_cls_b, loo_b = leave_one_out(cb)
    if paired:
        people = [(jackknife_variance(loo_b - loo_a), ca.shape[1] - 1)]
        people_cls = [(jackknife_variance(loo_cls_b - loo_cls_a), ca.shape[1] - 1)]
    else:
        people = [(jackknife_variance(loo_a), ca.shape[1] - 1), (jackknife_variance(loo_b), cb.shape[1] - 1)]
        people_cls = [(jackknife_variance(loo_cls_a), ca.shape[1] - 1),
                      (jackknife_variance(loo_cls_b), cb.shape[1] - 1)]
    lo, hi, p, se, df, _ = (float(x) for x in t_interval(diff, people + _seed_terms(seeds_a, seeds_b), level))
    lo, hi = max(lo, -1.0), min(hi, 1.0)  # a difference of F1s lies in [-1, 1]
    clo, chi, _, _, _, _ = t_interval(cls_diff, people_cls + _seed_terms(cls_a, cls_b), level)
    clo, chi = np.clip(clo, -1.0, 1.0), np.clip(chi, -1.0, 1.0)
    return {"difference": diff, "interval": [lo, hi], "p_value": p, "standard_error": se, "df": df,
            "macro_f1_a": float(seeds_a.mean()), "macro_f1_b": float(seeds_b.mean()),
            "seed_sd": [float(np.std(x, ddof=1)) if len(x) > 1 else None for x in (seeds_a, seeds_b)],
            "class_difference": cls_diff, "class_interval": (clo, chi)}


def compare_sets(a: list, b: list, *, names=("A", "B"), level: float = LEVEL) -> dict:
    """B minus A in macro F1: the difference, its interval and p (one jackknife-t procedure), whether it was
    paired, what the claim covers, the smallest difference it can resolve, and the same per class."""
    paired = same_images(a, b)
    order = keyed(a[0]).index.to_numpy() if paired else None
    ca, _ = stacked_confusions(a, order)
    cb, _ = stacked_confusions(b, order)
    d = difference(ca, cb, paired=paired, level=level)
    claim = claim_of((len(a), len(b)))
    thin = sorted(set(thin_classes(ca)) | set(thin_classes(cb)))
    (clo, chi), cls_diff = d.pop("class_interval"), d.pop("class_difference")
    per_class = sorted(({"class": c, "difference": float(cls_diff[c]), "interval": [float(clo[c]), float(chi[c])],
                         "resolvable": c not in thin} for c in range(K)), key=lambda r: -abs(r["difference"]))
    why = cannot_judge(ca, cb, d["standard_error"])
    if why:  # no interval, p or resolution that could be read as a verdict
        d.update(interval=None, p_value=None)
    return {"a": names[0], "b": names[1], **d, "paired": paired, "claim": claim, "seeds": [len(a), len(b)],
            "judged": why is None, "cannot_judge": why,
            "resolvable": None if why else resolvable(d["standard_error"], d["df"], level), "thin_classes": thin,
            "people": [int(ca.shape[1]), int(cb.shape[1])], "level": level, "method": "jackknife-t",
            "per_class": per_class, "verdict": verdict(d["difference"], d["interval"], d["p_value"], *names,
                                                       claim=claim, cannot=why),
            "note": None if paired else unpaired_reason(a, b) + ": compared unpaired, so the interval is wider"}


def verdict_kind(c: dict) -> str:
    """better (B), worse (B), no evidence, or cannot judge: what a page colours and a ladder step is called."""
    if not c.get("judged", True) or c.get("interval") is None:
        return CANNOT
    lo, hi = c["interval"]
    return "better" if lo > 0 else "worse" if hi < 0 else "no evidence"


def explain(c: dict) -> list[str]:
    """What a comparison claims and what it cannot tell, in words, for the CLI, the pages and the report."""
    people = min(c["people"])
    out = []
    if c["claim"] == "configs":
        out.append(f"claim: about the configs: {c['seeds'][0]} vs {c['seeds'][1]} seed(s), the seeds' spread is in "
                   f"the interval (a single run borrows the other side's spread)")
    else:
        noise = c.get("training_noise")
        out.append("claim: about these two trained models on these people, not their configs: another seed of the "
                   "same config can score differently; compare repeat groups (`train --seeds 3`) to ask whether a "
                   "config is better" + (f"; {noise}" if noise else ""))
    if c.get("resolvable") is None:
        out.append(f"resolution: none ({c.get('cannot_judge') or 'the comparison cannot judge'})")
    else:
        out.append(f"resolution: with {people} people, a true difference smaller than about {c['resolvable']:.3f} "
                   f"is missed more than 1 time in 5 (80 % power at the {100 * c['level']:.0f} % level)")
    if c["thin_classes"]:
        out.append(f"classes {', '.join(map(str, c['thin_classes']))} have fewer than {MIN_CLASS_PEOPLE} validation "
                   f"people: their F1 differences cannot be resolved")
    return out
