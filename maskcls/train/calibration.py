"""Is the paired comparison honest? A simulation of validation sets shaped like the real data, with two predictors
whose true difference in population macro F1 is known, to measure how often each procedure says "better" when
nothing differs and how often its interval holds the true difference (docs/performance.md, benchmarks/calibration.py).

People are drawn with the real training set's shares of gender x age band, seven photos each (five masks, one worn
incorrectly, one without), so the 18 classes keep the real imbalance. A predictor misreads a person's age band
(towards a neighbouring band), gender and each photo's mask with rates that move with a hidden difficulty the
person shares with the other predictor (both models find the same people hard) and one of its own, so a person's
errors are correlated across their photos and across the two predictors, as on real validation sets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskcls.train.intervals import K, f1_of, percentile, person_confusions, resample_weights, resampled_macro

REAL_STRATA = np.array([549, 410, 83, 732, 817, 109], float)  # people per gender x age band (real training set)
MASKS = np.array([0, 0, 0, 0, 0, 1, 2])  # a person's seven photos: five masks, incorrect, none


@dataclass(frozen=True)
class Skill:
    """A predictor's error rates at an average person (logits move them per person and photo)."""

    age: float = 0.22  # a photo's age band misread
    gender: float = 0.06  # a photo's gender misread
    mask: float = 0.03  # a photo's mask state misread
    shared: float = 1.2  # spread of the difficulty both predictors share (per person)
    own: float = 0.8  # spread of this predictor's own difficulty (per person)


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def draw_people(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n,) gender and age band of n people with the real shares."""
    strata = rng.choice(6, size=n, p=REAL_STRATA / REAL_STRATA.sum())
    return strata // 3, strata % 3


def predict(gender, band, shared, skill: Skill, rng) -> tuple[np.ndarray, np.ndarray]:
    """(n*7,) true and predicted classes of every photo of the people given, for one predictor."""
    n = len(gender)
    own = rng.normal(0, skill.own, n)
    hard = (shared + own)[:, None]  # (n, 1): how hard this person is for this predictor
    mask = np.broadcast_to(MASKS, (n, 7))
    g, b = np.repeat(gender[:, None], 7, 1), np.repeat(band[:, None], 7, 1)

    def misread(rate: float) -> np.ndarray:
        return rng.random((n, 7)) < 1 / (1 + np.exp(-(_logit(rate) + hard)))
    wrong_b = misread(skill.age)
    step = np.where(b == 0, 1, np.where(b == 2, -1, rng.choice([-1, 1], size=(n, 7))))
    pb = np.where(wrong_b, b + step, b)
    pg = np.where(misread(skill.gender), 1 - g, g)
    wrong_m = misread(skill.mask)
    pm = np.where(wrong_m, (mask + rng.integers(1, 3, size=(n, 7))) % 3, mask)
    true = (mask * 6 + g * 3 + b).ravel()
    return true, (pm * 6 + pg * 3 + pb).ravel()


def validation_sets(n: int, a: Skill, b: Skill, rng, *, seeds=(1, 1),
                    seed_sd: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(M, P, K*K) per-person confusions of each seed of configs A and B on one simulated validation set of n
    people. Each seed is another training: its own difficulty per person is drawn anew, and its error rates move
    by `seed_sd` on the logit scale (a run that happens to train better or worse)."""
    gender, band = draw_people(n, rng)
    shared = rng.normal(0, a.shared, n)
    persons = np.repeat(np.arange(n), 7)
    out = []
    for skill, m in ((a, seeds[0]), (b, seeds[1])):
        confs = []
        for _ in range(m):
            shift = rng.normal(0, seed_sd) if seed_sd else 0.0
            trained = Skill(*(1 / (1 + np.exp(-(_logit(r) + shift))) for r in (skill.age, skill.gender, skill.mask)),
                            skill.shared, skill.own)
            t, p = predict(gender, band, shared, trained, rng)
            confs.append(person_confusions(t, p, persons)[0])
        out.append(np.stack(confs))
    return out[0], out[1]


def population_f1(skill: Skill, *, people: int = 400_000, seed: int = 12345) -> float:
    """Macro F1 of the predictor on a population (the confusion of a very large draw): what a difference is
    measured against."""
    rng = np.random.default_rng(seed)
    conf = np.zeros(K * K)
    for start in range(0, people, 50_000):
        gender, band = draw_people(50_000, rng)
        t, p = predict(gender, band, rng.normal(0, skill.shared, 50_000), skill, rng)
        np.add.at(conf, t * K + p, 1.0)
    return float(f1_of(conf)[1])


def population_configs_f1(skill: Skill, seed_sd: float, *, trainings: int = 40, seed: int = 777) -> float:
    """A config's macro F1 on the population, averaged over its trainings (seeds): the truth a config claim
    is about."""
    rng = np.random.default_rng(seed)
    shifts = rng.normal(0, seed_sd, trainings) if seed_sd else np.zeros(1)
    return float(np.mean([population_f1(Skill(*(1 / (1 + np.exp(-(_logit(r) + s))) for r in
                                                 (skill.age, skill.gender, skill.mask)), skill.shared, skill.own),
                                        people=100_000, seed=seed + i) for i, s in enumerate(shifts)]))


# -- the procedures: the shipped one and the ones the study rejected ------------------------------------------
def _macro(sums: np.ndarray, observed: np.ndarray) -> np.ndarray:
    return resampled_macro(f1_of(sums)[0], sums, observed)


def _bootstrap(ca, cb, resamples: int, seed: int) -> tuple[float, np.ndarray]:
    """The observed difference of seed means and its people bootstrap (seeds held fixed)."""
    w = resample_weights(ca.shape[1], resamples, seed)
    def side(c):
        return np.mean([_macro(w @ m, m.sum(0)) for m in c], 0), np.mean([_macro(m.sum(0)[None], m.sum(0))[0]
                                                                          for m in c])
    boot_a, obs_a = side(ca)
    boot_b, obs_b = side(cb)
    return float(obs_b - obs_a), boot_b - boot_a


def shipped(ca, cb, **_) -> tuple[float, float, float]:
    """maskcls.train.comparison.difference: jackknife over people and seeds, Student's t."""
    from maskcls.train.comparison import difference
    d = difference(ca, cb, paired=True)
    return d["interval"][0], d["interval"][1], d["p_value"]


def people_only(ca, cb, **_) -> tuple[float, float, float]:
    """The shipped jackknife-t over people with each side's seeds averaged but their spread left out."""
    from maskcls.train.comparison import jackknife_variance, leave_one_out, t_interval
    d = float(np.mean([_macro(m.sum(0)[None], m.sum(0))[0] for m in cb]) -
              np.mean([_macro(m.sum(0)[None], m.sum(0))[0] for m in ca]))
    var = jackknife_variance(leave_one_out(cb)[1] - leave_one_out(ca)[1])
    lo, hi, p, *_ = t_interval(d, [(var, ca.shape[1] - 1)])
    return float(lo), float(hi), float(p)


def percentile_permutation(ca, cb, *, resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """maskcls before: a percentile bootstrap interval and a paired permutation test's p (two procedures)."""
    d, boot = _bootstrap(ca, cb, resamples, seed)
    lo, hi = percentile(boot)
    rng = np.random.default_rng(seed + 2)
    swap = rng.integers(0, 2, size=(resamples, ca.shape[1])).astype(np.float64)
    keep = 1.0 - swap
    stats = []
    for m_a, m_b in zip(ca, cb):
        sa, sb = keep @ m_a + swap @ m_b, swap @ m_a + keep @ m_b
        stats.append(_macro(sb, m_b.sum(0)) - _macro(sa, m_a.sum(0)))
    p = (1 + (np.abs(np.mean(stats, 0)) >= abs(d) - 1e-12).sum()) / (resamples + 1)
    return float(lo), float(hi), float(p)


def percentile_bootstrap(ca, cb, *, resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """A percentile bootstrap interval with p read from the same bootstrap."""
    _, boot = _bootstrap(ca, cb, resamples, seed)
    lo, hi = percentile(boot)
    return float(lo), float(hi), float(min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean())))


def bootstrap_t(ca, cb, *, resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """The bootstrap's standard error with Student's t on P - 1 degrees of freedom."""
    from maskcls.train.comparison import t_interval
    d, boot = _bootstrap(ca, cb, resamples, seed)
    lo, hi, p, *_ = t_interval(d, [(np.var(boot, ddof=1), ca.shape[1] - 1)])
    return float(lo), float(hi), float(p)


PROCEDURES = {"jackknife-t (shipped)": shipped, "percentile bootstrap + permutation p (before)": percentile_permutation,
              "percentile bootstrap, p from it": percentile_bootstrap, "bootstrap SE + t": bootstrap_t,
              "jackknife-t over people only (seeds' spread left out)": people_only}
BASE = Skill(age=0.10, gender=0.03, mask=0.01)  # macro F1 about 0.74 on the population
BETTER = {0.0: 1.0, 0.02: 0.85, 0.05: 0.6, 0.09: 0.35}  # about this true difference: B's age error rate x factor


def study(sizes=(12, 120, 540), pairs: int = 500, *, differences=tuple(BETTER), seeds=(1, 1), seed_sd: float = 0.0,
          procedures=None, resamples: int = 1000, seed: int = 0) -> list[dict]:
    """For each size and true difference: how often each procedure says "better" (either way), how often its
    interval holds the true difference, how often it says "B is better", and how often its verdict and p disagree."""
    procedures = procedures or list(PROCEDURES)
    rows = []
    truth_a = population_configs_f1(BASE, seed_sd)
    for target in differences:
        b = Skill(age=BASE.age * BETTER[target], gender=BASE.gender, mask=BASE.mask)
        true = 0.0 if BETTER[target] == 1.0 else population_configs_f1(b, seed_sd) - truth_a
        for n in sizes:
            rng = np.random.default_rng([seed, n, int(1000 * target)])
            counts = {name: np.zeros(5) for name in procedures}
            reach = []
            for i in range(pairs):
                ca, cb = validation_sets(n, BASE, b, rng, seeds=seeds, seed_sd=seed_sd)
                for name in procedures:
                    lo, hi, p = PROCEDURES[name](ca, cb, resamples=resamples, seed=i)
                    says = lo > 0 or hi < 0
                    counts[name] += [says, lo <= true <= hi, lo > 0, says != (p < 0.05), hi - lo]
                if "jackknife-t (shipped)" in procedures:
                    from maskcls.train.comparison import difference, resolvable
                    d = difference(ca, cb, paired=True)
                    reach.append(resolvable(d["standard_error"], d["df"]))
            rows += [{"procedure": name, "people": n, "seeds": list(seeds), "true_difference": round(true, 4),
                      "pairs": pairs, "says_better": c[0] / pairs, "coverage": c[1] / pairs, "b_better": c[2] / pairs,
                      "disagree": c[3] / pairs, "width": c[4] / pairs,
                      "resolvable": float(np.mean(reach)) if name == "jackknife-t (shipped)" else None}
                     for name, c in counts.items()]
    return rows
