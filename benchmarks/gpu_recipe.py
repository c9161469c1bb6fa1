"""The whole recipe on a card in one prepared run (issue 40), proven on the CPU first (`--cpu-smoke`).

Each step is one `maskcls` command (or a few lines of library code) under its own timeout; a failing step is
recorded and the next one still runs, so one visit to a GPU machine shows every failure at once. Writes
OUT/recipe.json: {"card", "mode", "steps": [{"step", "ok", "seconds", "rc", "tail", ...figures}]}; on a card, copy
it to docs/gpu-results/<card>-recipe.json.

    bash benchmarks/gpu_recipe.sh OUT                 # on the card (PYTHONPATH=. is set by the script)
    bash benchmarks/gpu_recipe.sh OUT --cpu-smoke     # the same steps at toy sizes on this CPU (minutes)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PY = [sys.executable, "-m", "maskcls"]


@dataclass
class Sizes:
    """What the steps train and predict at: the card's real sizes, or toys for the CPU smoke run."""

    demo: list = field(default_factory=lambda: ["--from-listing", "real"])
    model: str = "efficientnet_b0"
    image: str = "[224,224]"
    overrides: list = field(default_factory=list)  # extra --set for every training
    bench: list = field(default_factory=lambda: [("224,224", False), ("224,224", True), ("512,384", False),
                                                 ("512,384", True)])
    bench_steps: list = field(default_factory=lambda: ["--steps", "60", "--warmup", "15"])
    members: tuple = (5, "efficientnet_b0", 224)
    scale: float = 1.0  # timeouts are multiplied by this


CARD = Sizes()
SMOKE = Sizes(demo=["--people", "24", "--eval-people", "12", "--seed", "1"], model="resnet10t", image="[32,32]",
              overrides=["pretrained=false", "batch_size=16", "workers=1"],
              bench=[("64,48", False), ("64,48", True)], bench_steps=["--steps", "4", "--warmup", "1", "--batch", "8"],
              members=(5, "resnet10t", 32), scale=4.0)


def last_json(out: str):
    """The last JSON value a command printed (indented over several lines or on one), None if it printed none."""
    starts = [m.start() for m in re.finditer(r"^[{\[]", out, re.M)]
    for start in reversed(starts):
        try:
            return json.JSONDecoder().raw_decode(out, start)[0]  # a warning may follow it
        except json.JSONDecodeError:
            continue
    return None


FIGURES = ("images_per_s", "fast_img_per_s", "limit_img_per_s", "fast_to_limit", "baseline_img_per_s", "best_f1",
           "macro_f1", "people", "images", "device", "difference", "interval", "p_value", "verdict")


def figures(out: str) -> dict:
    """The numbers a step's output holds that the issue asks for (images/s, F1, the command's own seconds)."""
    found: dict = {}
    last = last_json(out)
    if isinstance(last, dict):
        found.update({k: last[k] for k in FIGURES if k in last})
        if "seconds" in last:
            found["reported_s"] = last["seconds"]
        counted = sum(last[k]["images"] for k in ("training", "eval") if isinstance(last.get(k), dict))
        if counted and last.get("seconds"):
            found["faces_images_per_s"] = round(counted / last["seconds"], 1)
    m = re.search(r"in ([\d.]+)s \(decoding ([\d.]+)s, models ([\d.]+)s\)", out)
    if m:
        found.update(command_s=float(m[1]), decode_s=float(m[2]), models_s=float(m[3]))
    return found


def run_step(step: str, argv: list, timeout: float, log, env=None) -> dict:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc = 124
        out = ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")) + \
              f"\n(timed out after {timeout:.0f} s)"
    seconds = round(time.perf_counter() - t0, 2)
    row = {"step": step, "ok": rc == 0, "seconds": seconds, "rc": rc, "tail": out.strip()[-1500:],
           **figures(out if rc == 0 else "")}
    log(f"{'ok ' if rc == 0 else 'FAIL'} {step:34s} {seconds:8.1f} s" + ("" if rc == 0 else f"  rc {rc}"))
    return row


def steps(out: Path, sizes: Sizes) -> list[tuple[str, list, float]]:
    """(name, argv, timeout in seconds) of every step, in order."""
    d, r = str(out / "data"), str(out / "runs")
    common = ["--runs-root", r]
    train = ["--data", d, "--preset", "winners-2022", "--set", f"model={sizes.model}", "--set",
             f"image_size={sizes.image}", "--set", "epochs=1", "--set", "face_crop=true"]
    for o in sizes.overrides:
        train += ["--set", o]
    (out / "space.json").write_text(json.dumps({"lr": {"type": "log_float", "low": 1e-4, "high": 1e-2}}))
    (out / "steps.json").write_text(json.dumps({"steps": [{"name": "label smoothing", "set": {"loss": "smooth"}}]}))
    base = out / "base.json"
    s = sizes.scale
    n, model, side = sizes.members
    out_rows = [
        ("demo data", [*PY, "demo-data", d, *sizes.demo, "--quiet"], 240 * s),
        ("faces over train + eval", [*PY, "faces", d, "--eval", "--json", "--quiet"], 300 * s),
        ("winners-2022, face crop, --folds 2", [*PY, "train", *train, "--folds", "2", "--name", "w", "--quiet",
                                               *common], 300 * s),
        ("--full-data from fold 1", [*PY, "train", "--full-data", "w-fold1", "--name", "w-full", "--quiet", *common],
         240 * s),
        ("fold ensemble submission", [*PY, "predict", "--data", d, "--folds", "w", "--method", "soft", "--tta",
                                      "flip", "--out", str(out / "folds.csv"), "--quiet", *common], 120 * s),
        ("2-trial sweep: create", [*PY, "sweep", "create", "sw", "--base", str(base), "--space",
                                   str(out / "space.json"), "--sampler", "random", "--pruner", "none", "--trials", "2",
                                   *common], 60 * s),
        ("2-trial sweep: run", [*PY, "sweep", "run", "sw", "--trials", "2", "--quiet", *common], 300 * s),
        ("2-rung ladder, 2 seeds: create", [*PY, "ablate", "create", "lad", "--base", str(base), "--steps",
                                            str(out / "steps.json"), "--seeds", "2", *common], 60 * s),
        ("2-rung ladder, 2 seeds: run", [*PY, "ablate", "run", "lad", "--quiet", *common], 400 * s),
        ("ladder status", [*PY, "ablate", "status", "lad", "--json", *common], 60 * s),
        ("compare the rungs", [*PY, "compare", "lad-r0", "lad-r1", "--json", *common], 60 * s),
        ("review queue", [*PY, "review", "w", "--json", *common], 120 * s),
        ("Grad-CAM of one image", [sys.executable, __file__, "--cam", r, "w-fold1", d], 120 * s),
    ]
    for size, compiled in sizes.bench:
        out_rows.append((f"bench train {size}{' compiled' if compiled else ' eager'}",
                         [*PY, "bench", "train", "--data", d, "--model", sizes.model, "--size", size, "--json",
                          *sizes.bench_steps, *(["--compile"] if compiled else [])], 400 * s))
    members = [f"m{i}" for i in range(n)]
    out_rows += [
        ("five members: write", [sys.executable, str(Path(__file__).with_name("make_members.py")), r, str(n), model,
                                 str(side)], 120 * s),
        ("five-member submission, cold", [*PY, "predict", "--data", d, "--members", *members, "--method", "soft",
                                          "--tta", "flip", "--out", str(out / "five.csv"), "--cache-dir",
                                          str(out / "cold-cache"), "--quiet", *common], 180 * s),
        ("five-member submission, warm", [*PY, "predict", "--data", d, "--members", *members, "--method", "soft",
                                          "--tta", "flip", "--out", str(out / "five.csv"), "--cache-dir",
                                          str(out / "cold-cache"), "--quiet", *common], 180 * s),
    ]
    return out_rows


def write_base(out: Path, sizes: Sizes) -> None:
    """The run config the sweep and the ladder start from (the recipe at this mode's size, one epoch)."""
    from maskcls.train.config import create_config
    extra = dict(o.split("=", 1) for o in sizes.overrides)
    cfg = create_config("winners-2022", data_root=str((out / "data").resolve()), model=sizes.model,
                        image_size=json.loads(sizes.image), epochs=1).with_overrides(
        [f"{k}={v}" for k, v in extra.items()])
    (out / "base.json").write_text(cfg.to_json())


def cam(runs_root: str, run: str, data_root: str) -> int:
    """Grad-CAM of one validation image of `run` for its predicted class (the Evaluate page's view)."""
    from maskcls.infer.evaluation import validation_predictions
    from maskcls.infer.members import Member, build_model, load_member
    from maskcls.models.cam import explain_image
    ckpt, cfg = load_member(runs_root, Member(run))
    model = build_model(ckpt, cfg, run)
    preds = validation_predictions(runs_root, run, "best.pt", "auto")
    path = preds["path"].iloc[0]
    t0 = time.perf_counter()
    views, _ = explain_image(model, cfg, path, [(int(preds["label"].iloc[0]), "true")])
    print(json.dumps({"image": path, "views": len(views), "seconds": round(time.perf_counter() - t0, 3)}))
    return 0


def card_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20).stdout.strip().splitlines()[0] or "cpu"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "cpu"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?")
    p.add_argument("--cpu-smoke", action="store_true", help="the same steps at toy sizes on the CPU")
    p.add_argument("--cam", nargs=3, metavar=("RUNS_ROOT", "RUN", "DATA"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cam:
        return cam(*args.cam)
    if not args.out:
        p.error("OUT is required")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sizes = SMOKE if args.cpu_smoke else CARD
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "MASKCLS_CACHE": str(out / "cache")}
    if args.cpu_smoke:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the smoke run is the CPU path even on a machine with a card
    rows, t0 = [], time.perf_counter()
    report = {"card": "cpu (smoke)" if args.cpu_smoke else card_name(), "mode": "cpu-smoke" if args.cpu_smoke
              else "card", "started": time.strftime("%Y-%m-%d %H:%M:%S"), "steps": rows}
    write = lambda: (out / "recipe.json").write_text(json.dumps(report, indent=1))  # noqa: E731
    todo = steps(out, sizes)
    write_base(out, sizes)
    for name, argv_, timeout in todo:
        rows.append(run_step(name, argv_, timeout, print, env))
        write()  # after every step: a machine taken back mid-run leaves what it did
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["passed"] = sum(r["ok"] for r in rows)
    write()
    print(f"{report['passed']}/{len(rows)} steps passed in {report['seconds']:.0f} s: {out / 'recipe.json'}")
    return 0 if report["passed"] == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
