"""The leaderboard log's statistics: what a public score says about the private one, and which two submissions to
choose as final.

The model (docs/performance.md, "The leaderboard model"; its coverage is checked by simulation in
maskcls.infer.leaderboard_check). The eval people are split at random into a public part of P people and a private
part of Q. A submission has a true macro F1 m on people like the eval set's; each part scores m plus noise whose
variance shrinks as c / n with its n people, c read off the submission's own validation interval over V people
(c = V se^2, se = interval width / (2 x 1.96)). Two measurements of m:
- the validation score, shifted by b (the validation-to-test offset the other logged submissions show: their mean
  public minus validation), with variance c / V + var(b) + tau^2 (tau: how much that offset varies between
  submissions; TAU0 until at least two other submissions show it);
- the public score, with variance c / P.
They combine by their precisions into m's estimate; the private score is that estimate with its variance plus the
private part's own c / Q. The 95 % range is the estimate +- 1.96 standard deviations.
The two finals: the best expected private score, and of the rest the one with the highest lower bound (the safest),
each with the reason; a public ranking that differs from the expected-private one is said.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

Z = 1.959964  # the 97.5 % normal quantile: a 95 % range
TAU0 = 0.03  # the validation-to-test shift (sd, macro F1) allowed for before two other submissions measure it
MIN_OTHERS = 2  # other logged submissions needed to measure the shift from the log itself


@dataclass
class Entry:
    """One submission as the log knows it."""

    name: str
    val_f1: float | None  # the ensemble's validation macro F1
    val_ci: tuple[float, float] | None  # its 95 % interval over the validation people
    val_people: int  # V
    public: float | None = None  # the platform's public score, once recorded
    extra: dict = field(default_factory=dict)  # what the caller carries along (submitted time, members, ...)


def noise_constant(e: Entry) -> float | None:
    """c in var = c / n: the per-person variance of this submission's macro F1, from its validation interval."""
    if e.val_ci is None or e.val_people < 2:
        return None
    se = (e.val_ci[1] - e.val_ci[0]) / (2 * Z)
    return se * se * e.val_people


def shift(entries: list[Entry], skip: str, public_people: int) -> tuple[float, float, float]:
    """(b, var(b), tau^2): the validation-to-public offset the other scored submissions show, how sure it is, and
    how much it varies between submissions (the noise of each difference taken out)."""
    diffs, noise = [], []
    for e in entries:
        c = noise_constant(e)
        if e.name == skip or e.public is None or e.val_f1 is None or c is None:
            continue
        diffs.append(e.public - e.val_f1)
        noise.append(c / e.val_people + c / public_people)
    if len(diffs) < MIN_OTHERS:
        return 0.0, 0.0, TAU0 ** 2
    n = len(diffs)
    mean = sum(diffs) / n
    spread = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    tau2 = max(0.0, spread - sum(noise) / n)
    return mean, (tau2 + sum(noise) / n) / n, tau2


def private_range(e: Entry, entries: list[Entry], *, public_people: int, private_people: int) -> dict | None:
    """The expected private score of `e` and its 95 % range (None without a validation interval to size the
    noise); from the validation score alone before a public score is recorded."""
    c = noise_constant(e)
    if c is None or e.val_f1 is None:
        return None
    b, var_b, tau2 = shift(entries, e.name, public_people)
    w_val = 1.0 / (c / e.val_people + var_b + tau2)
    estimate, precision = w_val * (e.val_f1 + b), w_val
    if e.public is not None:
        w_pub = public_people / c
        estimate, precision = estimate + w_pub * e.public, precision + w_pub
    mean = estimate / precision
    sd = math.sqrt(1.0 / precision + c / private_people)
    return {"expected": mean, "range": [max(0.0, mean - Z * sd), min(1.0, mean + Z * sd)], "sd": sd,
            "shift": b, "shift_measured": tau2 != TAU0 ** 2 or var_b > 0, "public_weight": (precision - w_val) /
            precision}


def choose_finals(rows: list[dict]) -> list[dict]:
    """The two submissions to choose as final, with why: rows carry name, public and private (private_range)."""
    scored = [r for r in rows if r.get("private")]
    if not scored:
        return []
    first = max(scored, key=lambda r: r["private"]["expected"])
    out = [{"name": first["name"], "why": f"the best expected private score, {first['private']['expected']:.4f} "
                                          f"[{first['private']['range'][0]:.4f}, {first['private']['range'][1]:.4f}]"}]
    rest = [r for r in scored if r is not first]
    if rest:
        second = max(rest, key=lambda r: r["private"]["range"][0])
        out.append({"name": second["name"], "why": f"of the others, the highest lower bound ({second['private']['range'][0]:.4f}): "
                                                   f"the safest second pick"})
    public = [r for r in scored if r.get("public") is not None]
    if len(public) > 1:
        by_public = max(public, key=lambda r: r["public"])
        if by_public["name"] not in {o["name"] for o in out}:
            gap = by_public["public"] - (first.get("public") or by_public["public"])
            out.append({"name": by_public["name"], "why": f"not chosen although its public score is the highest "
                                                          f"(+{gap:.4f}): that lead is within the public half's noise, "
                                                          f"and choosing by public score alone overfits it",
                        "not_chosen": True})
    return out
