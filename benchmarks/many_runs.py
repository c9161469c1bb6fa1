"""Make a season of runs from one real run, to try the Runs page, `runs list` and prune at scale.

    python benchmarks/many_runs.py checkpoints/my-run /tmp/season --n 2000
    MASKCLS_RUNS=/tmp/season streamlit run dashboard/Home.py

The made runs hard-link the template's files (no disk used) and differ in name (sweep trials, ladder rungs,
repeat seeds, folds, lone runs), model and learning rate. `maskcls bench budgets` times the same on 2,000.
"""
from __future__ import annotations

import argparse
import time

from maskcls.orchestration.many_runs import make_runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("template", help="a run folder (config.json, status.json, metrics, ...)")
    p.add_argument("out", help="the runs root to fill")
    p.add_argument("--n", type=int, default=2000)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    names = make_runs(args.template, args.out, args.n)
    print(f"{len(names)} runs in {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
