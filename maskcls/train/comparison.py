"""Is B better than A? A paired comparison of two prediction sets over people, or an unpaired one when they were
validated on different people, with per-class differences and one verdict line.

A prediction set is one or more predictions tables of the same images (a run: one; a fold group: its out-of-fold
table; a repeat group: one per seed); its score is the mean of its members' macro F1. Paired: the same people are
resampled for both sides (the interval of the difference is much narrower than either side's), and the p-value
comes from swapping A and B person by person (a paired permutation test). Unpaired: each side's people are
resampled on their own, and the p-value is read from the bootstrap distribution of the difference.
"""
from __future__ import annotations

import numpy as np

from maskcls.train.intervals import (K, LEVEL, RESAMPLES, f1_of, percentile, person_confusions, resample_weights,
                                     resampled_macro)


def _probs(frame) -> np.ndarray:
    return frame[[f"p{i}" for i in range(K)]].to_numpy()


def same_images(a: list, b: list) -> bool:
    """Every table of both sets predicts the same images with the same labels: then the comparison pairs."""
    ref = a[0].set_index("path")["label"]
    for f in a[1:] + b:
        other = f.set_index("path")["label"]
        if len(other) != len(ref) or set(other.index) != set(ref.index) or not (other.loc[ref.index] == ref).all():
            return False
    return True


def stacked_confusions(frames: list, order=None) -> tuple[np.ndarray, np.ndarray]:
    """(M, P, K*K) per-person confusions of each table (rows aligned by path to `order` when given), person ids."""
    out, ids = [], None
    for f in frames:
        f = f.set_index("path").loc[order].reset_index() if order is not None else f
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


def verdict(diff: float, ci, p_value: float, a: str = "A", b: str = "B") -> str:
    """One line: which is better, by how much, with its interval and p, or that there is no evidence."""
    lo, hi = ci
    if lo > 0:
        return f"{b} is better than {a} by {diff:.3f} [{lo:.3f}, {hi:.3f}], p = {p_value:.3g}"
    if hi < 0:
        return f"{a} is better than {b} by {-diff:.3f} [{-hi:.3f}, {-lo:.3f}], p = {p_value:.3g}"
    return f"no evidence of a difference: {diff:+.3f} [{lo:+.3f}, {hi:+.3f}], p = {p_value:.3g}"


def compare_sets(a: list, b: list, *, names=("A", "B"), resamples: int = RESAMPLES, seed: int = 0,
                 level: float = LEVEL) -> dict:
    """B minus A in macro F1: the difference, its interval, a p-value, whether it was paired, and per class."""
    paired = same_images(a, b)
    order = a[0]["path"].to_numpy() if paired else None
    ca, ids_a = stacked_confusions(a, order)
    cb, ids_b = stacked_confusions(b, order)
    obs_cls_a, obs_a = set_scores(np.ones((1, ca.shape[1])), ca)
    obs_cls_b, obs_b = set_scores(np.ones((1, cb.shape[1])), cb)
    diff, cls_diff = float(obs_b[0] - obs_a[0]), obs_cls_b[0] - obs_cls_a[0]
    wa = resample_weights(ca.shape[1], resamples, seed)
    wb = wa if paired else resample_weights(cb.shape[1], resamples, seed + 1)
    boot_cls_a, boot_a = set_scores(wa, ca)
    boot_cls_b, boot_b = set_scores(wb, cb)
    boot, boot_cls = boot_b - boot_a, boot_cls_b - boot_cls_a
    lo, hi = (float(x) for x in percentile(boot, level))
    p_value = _permutation_p(ca, cb, diff, resamples, seed) if paired and len(a) == len(b) else _bootstrap_p(boot)
    cls_ci = percentile(boot_cls, level)
    per_class = sorted(({"class": c, "difference": float(cls_diff[c]), "interval": [float(cls_ci[0, c]),
                                                                                    float(cls_ci[1, c])]}
                        for c in range(K)), key=lambda r: -abs(r["difference"]))
    return {"a": names[0], "b": names[1], "macro_f1_a": float(obs_a[0]), "macro_f1_b": float(obs_b[0]),
            "difference": diff, "interval": [lo, hi], "p_value": p_value, "paired": paired,
            "people": [int(ca.shape[1]), int(cb.shape[1])], "resamples": resamples, "level": level,
            "per_class": per_class, "verdict": verdict(diff, (lo, hi), p_value, *names),
            "note": None if paired else "validated on different people (another split, or folds against a split): "
                                        "compared unpaired, so the interval is wider"}


def _permutation_p(ca: np.ndarray, cb: np.ndarray, observed: float, resamples: int, seed: int) -> float:
    """Two-sided paired permutation test: each person's A and B predictions swapped at random."""
    rng = np.random.default_rng(seed + 2)
    swap = rng.integers(0, 2, size=(resamples, ca.shape[1])).astype(np.float64)
    keep = 1.0 - swap
    stats = []
    for m_a, m_b in zip(ca, cb):
        sa, sb = keep @ m_a + swap @ m_b, swap @ m_a + keep @ m_b
        stats.append(resampled_macro(f1_of(sb)[0], sb, m_b.sum(0)) - resampled_macro(f1_of(sa)[0], sa, m_a.sum(0)))
    stat = np.mean(stats, 0)
    extreme = np.abs(stat) >= abs(observed) - 1e-12
    return float((1 + extreme.sum()) / (resamples + 1))


def _bootstrap_p(boot: np.ndarray) -> float:
    """Two-sided p-value read from the bootstrap distribution of the difference (unpaired sets)."""
    below, above = float((boot <= 0).mean()), float((boot >= 0).mean())
    return float(min(1.0, 2 * min(below, above)))
