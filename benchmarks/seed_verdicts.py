"""Do config verdicts hold up against training noise? Issue 36's check on the studio demo, rerunnable.

One cumulative ladder with three seeds per rung on the studio demo (600 people, 120 validation people): the
demo-cpu preset at 64x48 for 6 epochs, then a no-op step (`drop_rate` 0 -> 1e-6: the same model, another random
stream, so another training), then the face crop. The no-op step must read "no evidence", from the ladder and from
`maskcls compare` of its two rungs' repeat groups; the face crop, a real effect, must still be found. Prints each
rung, each step's line, and both compares. A finished ladder under --runs is reused.

    python benchmarks/seed_verdicts.py --data /tmp/studio-demo --runs /tmp/seed-runs     # ~40 min on 2 CPU cores
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from maskcls.cli import main as cli

STEPS = {"mode": "cumulative", "steps": [{"name": "no-op (drop_rate 1e-6)", "set": {"drop_rate": 1e-6}},
                                         {"name": "face crop", "set": {"face_crop": True}}]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the studio demo (made here when missing)")
    p.add_argument("--runs", required=True)
    p.add_argument("--name", default="seeds")
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args(argv)
    data, runs = Path(args.data), Path(args.runs)
    if not (data / "eval" / "labels.csv").exists():
        assert cli(["demo-data", str(data), "--people", "600", "--eval-people", "100", "--seed", "0"]) == 0
    if not (runs / "ladders" / args.name / "ladder.json").exists():
        runs.mkdir(parents=True, exist_ok=True)
        (runs / "steps.json").write_text(json.dumps(STEPS))
        assert cli(["ablate", "create", args.name, "--data", str(data), "--preset", "demo-cpu", "--set",
                    "image_size=[64,48]", "--set", "epochs=6", "--steps", str(runs / "steps.json"), "--seeds",
                    str(args.seeds), "--runs-root", str(runs)]) == 0
    assert cli(["ablate", "run", args.name, "--quiet", "--runs-root", str(runs)]) == 0
    cli(["ablate", "status", args.name, "--runs-root", str(runs)])
    for a, b in ((f"{args.name}-r0", f"{args.name}-r1"), (f"{args.name}-r1", f"{args.name}-r2"),
                 (f"{args.name}-r0-s1", f"{args.name}-r1-s1")):
        print(f"\n$ maskcls compare {a} {b}")
        cli(["compare", a, b, "--runs-root", str(runs)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
