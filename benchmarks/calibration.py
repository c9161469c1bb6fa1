"""Is "B is better than A" honest? The calibration study of the paired comparison (issue 36), rerunnable.

Simulated validation sets shaped like the real data (maskcls.train.calibration: the real gender x age shares, seven
photos a person, errors correlated within a person and between the two predictors), 12 / 120 / 540 people, two
predictors whose true difference in population macro F1 is 0 or a few known positive values. For each procedure:
how often it says one is better (at difference 0 that is a false alarm; 5 % is the promise), how often its interval
holds the true difference (95 % is the promise), how often it finds B better (power), how often its verdict and
its p-value disagree, and the mean width of its interval. A second table does the same for config claims: three
seeds a side with training noise.

    python benchmarks/calibration.py                       # about 40 minutes on 2 CPU cores
    python benchmarks/calibration.py --pairs 100 --alt-pairs 50 --sizes 12 120   # a few minutes
"""
from __future__ import annotations

import argparse
import json
import time

from maskcls.train.calibration import BETTER, PROCEDURES, study

SEEDS_PROCEDURES = ["jackknife-t (shipped)", "jackknife-t over people only (seeds' spread left out)"]
SINGLE_PROCEDURES = [p for p in PROCEDURES if p not in SEEDS_PROCEDURES[1:]]


def table(rows: list[dict]) -> str:
    out = ["| procedure | people | seeds | true difference | pairs | says better | coverage | finds B better | "
           "verdict vs p disagree | mean width | resolvable (80 % power) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r['procedure']} | {r['people']} | {r['seeds'][0]} vs {r['seeds'][1]} | "
                   f"{r['true_difference']:+.3f} | {r['pairs']} | {100 * r['says_better']:.1f} % | "
                   f"{100 * r['coverage']:.1f} % | {100 * r['b_better']:.1f} % | {100 * r['disagree']:.1f} % | "
                   f"{r['width']:.3f} | " + (f"{r['resolvable']:.3f} |" if r["resolvable"] is not None else "|"))
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[12, 120, 540])
    p.add_argument("--pairs", type=int, default=500, help="null pairs (true difference 0) per size")
    p.add_argument("--shipped-pairs", type=int, default=2000, help="null pairs per size for the shipped procedure "
                   "(it is cheap: more pairs pin its false-alarm rate down to about +-0.5 %%)")
    p.add_argument("--alt-pairs", type=int, default=200, help="pairs per size for each positive difference")
    p.add_argument("--seed-sd", type=float, default=0.2, help="training noise of the seeds table (logit scale)")
    p.add_argument("--json", help="also write every row to this file")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    rows = study(args.sizes, args.shipped_pairs, differences=(0.0,), procedures=SINGLE_PROCEDURES[:1])
    rows += study(args.sizes, args.pairs, differences=(0.0,), procedures=SINGLE_PROCEDURES[1:])
    rows += study(args.sizes, args.alt_pairs, differences=[d for d in BETTER if d > 0], procedures=SINGLE_PROCEDURES)
    seeds = study([n for n in args.sizes if n >= 120], args.pairs, differences=(0.0,), seeds=(3, 3),
                  seed_sd=args.seed_sd, procedures=SEEDS_PROCEDURES)
    seeds += study([n for n in args.sizes if n >= 120], args.alt_pairs, differences=(0.05,), seeds=(3, 3),
                   seed_sd=args.seed_sd, procedures=SEEDS_PROCEDURES)
    print("Two single runs (the models on these people):\n")
    print(table(sorted(rows, key=lambda r: (r["true_difference"] > 0, r["procedure"] != "jackknife-t (shipped)",
                                            r["procedure"], r["people"], r["true_difference"]))))
    print(f"\nConfigs, three seeds a side (training noise {args.seed_sd} on the logit scale):\n")
    print(table(seeds))
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows + seeds, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
