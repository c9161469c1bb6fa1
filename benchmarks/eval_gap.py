"""Does validation F1 estimate eval F1? The issue-28 table, rerunnable.

Writes the demo (--people, --eval-people, --demo-seed) and a second copy with a larger eval set (--large-eval people)
whose training images are the same bytes (maskcls.data.demo draws the training people first), trains the preset
with and without the face crop for each --seeds value, predicts both eval sets and prints one row per run:
validation macro F1 with its interval over validation people, and each eval set's macro F1 with its interval over
eval people (scored against the demo's hidden labels). A finished run or demo under --out is reused, so a stopped
benchmark resumes.

    python benchmarks/eval_gap.py --out /tmp/eval-gap --seeds 0 1 2          # ~10 min per run on 2 CPU cores
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from maskcls.cli import main as cli
from maskcls.common.runfolder import RunFolder
from maskcls.data.demo import write_demo
from maskcls.infer.ensemble import predict_submission
from maskcls.infer.members import Member


def demo(out: Path, people: int, eval_people: int, seed: int) -> Path:
    root = out / f"demo-{people}-{eval_people}-s{seed}"
    if not (root / "eval" / "labels.csv").exists():
        write_demo(root, people=people, eval_people=eval_people, seed=seed)
    return root


def train(data: Path, runs: Path, name: str, preset: str, seed: int, crop: bool) -> RunFolder:
    run = RunFolder(runs, name)
    if run.read_status().get("state") != "completed":
        if run.path.exists():  # a stopped run continues from its last.pt
            args = ["train", "--runs-root", str(runs), "--resume", name, "--quiet"]
        else:
            args = ["train", "--data", str(data), "--preset", preset, "--set", f"seed={seed}", "--runs-root",
                    str(runs), "--name", name, "--quiet"] + (["--set", "face_crop=true"] if crop else [])
        if cli(args) != 0:
            raise SystemExit(f"training {name} failed: see {run.path / 'log.txt'}")
    return run


def eval_score(data: Path, runs: Path, name: str, out: Path) -> dict:
    r = predict_submission(data, runs, [Member(name)], "soft", out / f"{name}.{data.name}.csv")
    return r["score"]


def rounded(x):
    return [round(v, 3) for v in x] if isinstance(x, (list, tuple)) else round(x, 3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--people", type=int, default=600)
    p.add_argument("--eval-people", type=int, default=100)
    p.add_argument("--large-eval", type=int, default=1000)
    p.add_argument("--demo-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--preset", default="demo-cpu")
    p.add_argument("--kinds", nargs="+", choices=["crop", "nocrop"], default=["crop", "nocrop"])
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    small = demo(a.out, a.people, a.eval_people, a.demo_seed)
    large = demo(a.out, a.people, a.large_eval, a.demo_seed)
    runs = a.out / "runs"
    rows = []
    for kind in a.kinds:
        for seed in a.seeds:
            name = f"{kind}-s{seed}"
            run = train(small, runs, name, a.preset, seed, kind == "crop")
            val = run.read_intervals()
            row = {"run": name, "val": rounded(val["macro_f1"]), "val_ci": rounded(val["macro_f1_ci"])}
            for label, root in ((f"eval{a.eval_people}", small), (f"eval{a.large_eval}", large)):
                s = eval_score(root, runs, name, a.out)
                row.update({label: rounded(s["macro_f1"]), f"{label}_ci": rounded(s["macro_f1_ci"]),
                            f"{label}_gap": rounded(val["macro_f1"] - s["macro_f1"])})
            rows.append(row)
            print(json.dumps(row), flush=True)
    (a.out / "eval_gap.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
