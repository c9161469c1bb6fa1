"""Is the leaderboard model's private range honest? A simulation with people shaped like the real data
(maskcls.train.calibration's predictors): submissions of varied skill are validated on V people and scored on an
eval set of E people split at random into public and private parts; the model's 95 % range for each private score
is checked against the score drawn (docs/performance.md, "The leaderboard model"; `python -m
maskcls.infer.leaderboard_check`)."""
from __future__ import annotations

import numpy as np

from maskcls.infer.leaderboard import Entry, private_range
from maskcls.train.calibration import BASE, Skill, draw_people, predict
from maskcls.train.intervals import f1_of, percentile, person_confusions, resample_weights, resampled_macro


def _people(n: int, skill: Skill, rng) -> np.ndarray:
    """(n, K*K) per-person confusions of a predictor of `skill` on n people drawn like the real data."""
    gender, band = draw_people(n, rng)
    true, pred = predict(gender, band, rng.normal(0, skill.shared, n), skill, rng)
    return person_confusions(true, pred, np.repeat(np.arange(n), 7))[0]


def _f1(conf: np.ndarray) -> float:
    return float(f1_of(conf.sum(0))[1])


def _interval(conf: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """The validation interval as maskcls computes it: people resampled, percentile 95 %."""
    sums = resample_weights(conf.shape[0], resamples, seed) @ conf
    lo, hi = percentile(resampled_macro(f1_of(sums)[0], sums, conf.sum(0)))
    return float(lo), float(hi)


def _skills(n: int, rng) -> list[Skill]:
    """n submissions of varied skill: age, gender and mask error rates from 0.6 to 1.6 times the base model's."""
    return [Skill(age=BASE.age * f, gender=BASE.gender * g, mask=BASE.mask * f)
            for f, g in zip(rng.uniform(0.6, 1.6, n), rng.uniform(0.6, 1.6, n))]


def coverage(trials: int = 400, *, val_people: int = 540, eval_people: int = 1800, public_share: float = 0.5,
             submissions: int = 3, test_harder: float = 1.0, resamples: int = 500, seed: int = 0) -> dict:
    """How often the 95 % private range holds the private score drawn, over `trials` seasons of `submissions`
    submissions each; `test_harder` multiplies the error rates on the eval people (a shift from validation)."""
    rng = np.random.default_rng(seed)
    public = int(round(eval_people * public_share))
    hits, widths, gaps = [], [], []
    for t in range(trials):
        entries, truth = [], {}
        for i, skill in enumerate(_skills(submissions, rng)):
            test = Skill(*(min(0.9, r * test_harder) for r in (skill.age, skill.gender, skill.mask)), skill.shared,
                         skill.own)
            val = _people(val_people, skill, rng)
            ev = _people(eval_people, test, rng)
            order = rng.permutation(eval_people)
            pub, priv = _f1(ev[order[:public]]), _f1(ev[order[public:]])
            entries.append(Entry(f"s{i}", _f1(val), _interval(val, resamples, seed + t * 31 + i), val_people, pub))
            truth[f"s{i}"] = priv
        for e in entries:
            r = private_range(e, entries, public_people=public, private_people=eval_people - public)
            lo, hi = r["range"]
            hits.append(lo <= truth[e.name] <= hi)
            widths.append(hi - lo)
            gaps.append(truth[e.name] - r["expected"])
    return {"trials": trials, "submissions": submissions, "val_people": val_people, "eval_people": eval_people,
            "public_people": public, "test_harder": test_harder, "coverage": float(np.mean(hits)),
            "mean_width": float(np.mean(widths)), "mean_error": float(np.mean(gaps)),
            "ranges": len(hits)}


if __name__ == "__main__":  # the study behind docs/performance.md's figures
    import json
    import sys
    scenarios = [dict(submissions=1), dict(submissions=5), dict(submissions=5, test_harder=1.3),
                 dict(submissions=1, test_harder=1.3), dict(submissions=5, val_people=120, eval_people=400)]
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    for kw in scenarios:
        print(json.dumps(coverage(trials, **kw)), flush=True)
