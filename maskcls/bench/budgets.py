"""Speed budgets of this 2-core machine, measured by `maskcls bench budgets` rather than asserted in the
functional tests (a busy machine makes wall-clock asserts flaky and they hide nothing a benchmark would not
show). Each budget prints its figure beside its limit; the command exits non-zero when one is over.

Every budget makes its own small data in a temporary folder, so the command needs nothing but the package.
"""
from __future__ import annotations

import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from maskcls.bench.base import Budget, median_seconds


def index_real_layout(work: Path) -> Budget:
    """Indexing all 18,900 real training paths (tiny files), as a second studio visit would (OS cache warm)."""
    from maskcls.data.index import index_data
    from maskcls.data.reference import read_listing
    root = work / "real"
    tiny = (work / "tiny.jpg")
    from PIL import Image
    Image.new("RGB", (6, 8), (120, 90, 60)).save(tiny)
    data = tiny.read_bytes()
    for line in read_listing("train_image_paths.txt"):
        path = root / line
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    index_data(root)
    t0 = time.perf_counter()
    index_data(root)
    return Budget("index the 18,900-image real layout", time.perf_counter() - t0, 1.5, "s")


def demo_generation(work: Path) -> Budget:
    from maskcls.data.demo import write_demo
    info = write_demo(work / "speed-demo", people=40, eval_people=0, seed=1, workers=2)
    return Budget("demo generation, 2 workers", info["images_per_s"], 150, "img/s", higher_is_better=True)


def augment_preview(demo: Path) -> Budget:
    from PIL import Image

    from maskcls.augment.preview import load_source, preview_draws
    from maskcls.augment.spec import create_preset
    spec = create_preset("strong")
    source = load_source(str(next((demo / "train/images").iterdir()) / "mask1.jpg"), spec)
    seed = [0]

    def rerender():
        seed[0] += 1
        draws, _, _ = preview_draws(source, spec, 8, seed[0])
        for d in [source] + draws:  # what st.image does with each array: encode it
            Image.fromarray(d).save(io.BytesIO(), format="JPEG", quality=90)
    return Budget("augment preview: 8 draws at 384x512 + encoding", median_seconds(rerender), 0.3, "s")


def gradcam(demo: Path) -> Budget:
    import torch

    from maskcls.augment.spec import create_preset
    from maskcls.data.imageio import load_preprocessed
    from maskcls.models.backbones import create_model
    from maskcls.models.cam import compute_cam, overlay
    torch.manual_seed(0)
    model, _ = create_model("efficientnet_b0")
    model.eval()
    pixels = load_preprocessed(next((demo / "train/images").iterdir()) / "mask1.jpg", (224, 224))
    spec = create_preset("baseline")
    seconds = median_seconds(lambda: overlay(pixels, compute_cam(model, pixels, spec, 3)))
    return Budget("Grad-CAM overlay, efficientnet_b0 at 224", seconds, 0.3, "s")


def evaluate_page_work(demo: Path) -> Budget:
    """What the Evaluate page computes for 3,780 saved predictions: metrics, the four matrices, a cell, suspects."""
    from maskcls.wrapup.charts import confusion_figure, per_class_f1_figure
    from maskcls.data.index import index_data
    from maskcls.data.labels import attribute_names, class_names, short_class_names
    from maskcls.infer.evaluation import cell_errors, report
    from maskcls.infer.review import review_queue
    from maskcls.common.runfolder import predictions_frame
    rows = index_data(demo).train.sample(3780, replace=True, random_state=0).reset_index(drop=True)
    logits = np.random.default_rng(0).normal(size=(3780, 18)) + 4 * np.eye(18)[rows["label"]]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    preds = predictions_frame(rows["path"], rows["person_id"], rows["label"], probs)

    def page():
        r = report(preds)
        confusion_figure(r["confusion"], short_class_names(), False, "", class_names()).to_json()
        per_class_f1_figure(r["per_class"], class_names()).to_json()
        for attr, labels in attribute_names().items():
            confusion_figure(r["attributes"][attr]["confusion"], list(labels)).to_json()
        cell_errors(preds, 0, 3)
        review_queue(preds)
    return Budget("Evaluate page work, 3,780 saved predictions", median_seconds(page, 3), 1.0, "s")


def two_member_prediction(demo: Path, work: Path) -> Budget:
    """2 members (resnet10t at 128x96) soft vote with flip TTA over 700 eval images, through the CLI's code."""
    import torch

    from maskcls.common.fileio import write_text
    from maskcls.data.labels import class_names
    from maskcls.infer.ensemble import predict_submission
    from maskcls.infer.members import Member
    from maskcls.models.backbones import create_model
    from maskcls.train.config import RunConfig
    from maskcls.common.runfolder import RunFolder
    from maskcls.common.checkpoints import save_checkpoint
    runs = work / "runs"
    for i in range(2):
        torch.manual_seed(i)
        cfg = RunConfig(model="resnet10t", pretrained=False, image_size=[128, 96])
        run = RunFolder(runs, f"m{i}")
        run.path.mkdir(parents=True)
        write_text(run.config_path, cfg.to_json())
        run.write_status(state="completed")
        net, _ = create_model("resnet10t")
        save_checkpoint(run.best_path, {"model": net.state_dict(), "config": cfg.to_dict(), "classes": class_names(),
                                        "epoch": 1})
    t0 = time.perf_counter()
    predict_submission(demo, runs, [Member("m0"), Member("m1")], "soft", work / "sub.csv", device=torch.device("cpu"),
                       tta=True, cache_dir=work / "evalcache")
    return Budget("2 members + flip TTA over 700 eval images (cold cache)", time.perf_counter() - t0, 20, "s")


def fast_path_to_limit(demo: Path, work: Path) -> Budget:
    """The cached, batched training pipeline against the model alone on ready tensors (CPU defaults)."""
    from maskcls.orchestration.bench import bench_train
    r = bench_train(demo, model="resnet10t", size=(128, 96), batch=32, workers=2, steps=12, warmup=3, device="cpu",
                    cache_dir=work / "bc")
    return Budget(f"training fast path / model's own limit ({r['fast_img_per_s']:.0f} of {r['limit_img_per_s']:.0f} "
                  f"img/s)", r["fast_to_limit"], 0.75, "x", higher_is_better=True)


def demo_cpu_preset(demo: Path, work: Path) -> list[Budget]:
    """The demo-cpu preset on the studio's demo data (600 people): the README's promise of a useful model in
    minutes. Its macro F1 is printed with the interval over the 120 validation people: three people make a class
    there, so one seed's figure moves by several points between machines (a bf16 CPU and an fp32 one)."""
    import json
    from maskcls.common.runfolder import RunFolder
    from maskcls.orchestration.estimate import estimate_run
    from maskcls.train.config import create_config
    cfg = create_config("demo-cpu", data_root=str(demo), cache_dir=str(work / "preset-cache"))
    estimate = estimate_run(cfg, work / "preset-runs", probe=True)  # as before a first launch: no history, no cache
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "maskcls", "train", "--data", str(demo), "--preset", "demo-cpu",
                          "--name", "demo", "--runs-root", str(work / "preset-runs"), "--quiet",
                          "--set", f"cache_dir={work / 'preset-cache'}"], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    print(f"  demo-cpu estimated {estimate.seconds:.0f} s before it started ({estimate.how}), took {seconds:.0f} s")
    best = json.loads(out.stdout.splitlines()[-1])["best_f1"]
    low, high = RunFolder(work / "preset-runs", "demo").read_intervals()["macro_f1_ci"]
    print(f"  demo-cpu best validation macro F1 {best:.4f} (95 % interval over people {low:.3f}-{high:.3f})")
    return [Budget("demo-cpu preset, studio demo data", seconds, 240, "s"),
            Budget("demo-cpu preset, its time estimate's error (|estimated / taken - 1|)",
                   abs(estimate.seconds / seconds - 1), 0.3, "ratio"),
            Budget("demo-cpu preset, best validation macro F1", best, 0.80, "F1", higher_is_better=True)]


def face_boxes(demo: Path, work: Path) -> list[Budget]:
    """The face-box cache over the studio demo's 4,200 training images: built (MTCNN on every image, one
    process), then read back."""
    from maskcls.data.faces import coverage, face_crops
    from maskcls.data.index import index_data
    paths = index_data(demo).train["path"].tolist()
    t0 = time.perf_counter()
    _, sources = face_crops(paths, work / "faces")
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    face_crops(paths, work / "faces")
    read = time.perf_counter() - t0
    print(f"  face boxes over {len(paths)} images: " + ", ".join(f"{n} {k}" for k, n in coverage(sources).items()))
    return [Budget(f"face boxes, {len(paths)} studio-demo images, built", built, 120, "s"),
            Budget(f"face boxes, {len(paths)} studio-demo images, read from the cache", read, 2, "s")]


def interval_work(demo: Path, work: Path) -> list[Budget]:
    """Intervals over people for 840 validation images (120 people), a paired comparison of two such runs, the
    Runs page's table over 50 runs, and a ladder report of 7 rungs x 3 seeds of such runs."""
    import shutil

    from maskcls.common.fileio import write_json
    from maskcls.common.runfolder import RunFolder, predictions_frame
    from maskcls.orchestration.compare import runs_table
    from maskcls.train.comparison import compare_sets
    from maskcls.train.intervals import interval_of_frame, run_intervals
    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(120), 7).astype(str)
    labels = rng.integers(0, 18, 840)

    def frame(p_right: float):
        predicted = np.where(rng.random(840) < p_right, labels, rng.integers(0, 18, 840))
        return predictions_frame([f"{i}.jpg" for i in range(840)], people, labels, np.eye(18)[predicted])
    a, b = frame(0.8), frame(0.85)
    budgets = [Budget("interval of 840 validation images (120 people), 2,000 resamples",
                      median_seconds(lambda: interval_of_frame(a, resamples=2000), 3), 0.3, "s"),
               Budget("paired comparison of two such runs (jackknife-t over people)",
                      median_seconds(lambda: compare_sets([a], [b]), 3), 0.5, "s")]
    runs = work / "fifty-runs"
    for i in range(50):
        run = RunFolder(runs, f"r{i:02d}")
        run.path.mkdir(parents=True)
        write_json(run.config_path, {"model": "resnet10t", "epochs": 8})
        run.write_status(state="completed", best_f1=0.8, epoch=8, epochs=8, started=1.0, ended=2.0)
        run.append_metrics({"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_accuracy": 0.8, "val_macro_f1": 0.8})
        run.write_intervals(run_intervals(a))
    budgets.append(Budget("Runs page table over 50 runs", median_seconds(lambda: runs_table(runs), 3), 2, "s"))
    run = RunFolder(runs, "r00")  # the season's template: with predictions and the demo as its data
    run.write_predictions(a)
    write_json(run.config_path, {"model": "resnet10t", "epochs": 8, "data_root": str(demo)})
    from maskcls.bench.season import report_time, season_of_runs
    budgets += season_of_runs(work, runs / "r00") + [report_time(work, runs / "r00")]
    shutil.rmtree(runs)
    budgets.append(ladder_report_time(work, frame))
    return budgets


def ladder_report_time(work: Path, frame) -> Budget:
    """`ablate status` of a finished ladder of 7 rungs x 3 seeds, each run 840 validation images (120 people)."""
    import shutil
    from dataclasses import asdict

    from maskcls.common.fileio import write_json
    from maskcls.common.runfolder import RunFolder
    from maskcls.orchestration.ladder import Ladder, ladder_path
    from maskcls.orchestration.ladder_report import ladder_status
    from maskcls.train.config import RunConfig
    runs = work / "ladder-runs"
    steps = [{"name": f"step {i}", "set": {"lr": 1e-3 * (i + 2)}} for i in range(6)]
    ladder = Ladder("bench", RunConfig().to_dict(), "cumulative", steps, seeds=3)
    write_json(ladder_path(runs, "bench"), asdict(ladder))
    for i, (name, _) in enumerate(ladder.planned()):
        run = RunFolder(runs, name)
        run.path.mkdir(parents=True)
        write_json(run.config_path, {"model": "resnet10t"})
        run.write_status(state="completed", best_f1=0.8, epoch=8, epochs=8, started=1.0, ended=2.0)
        run.write_predictions(frame(0.8 + 0.01 * (i % 5)))
    seconds = median_seconds(lambda: ladder_status(runs, "bench"), 3)
    shutil.rmtree(runs)
    return Budget("ladder report, 7 rungs x 3 seeds of 840 validation images", seconds, 2, "s")


def tracker_overhead(demo: Path, work: Path) -> Budget:
    """An epoch of the demo-cpu preset's model with TensorBoard, MLflow and W&B (offline) on, against none: the
    median epoch time of three, the trackers' start and end outside the epochs (they run on their own thread)."""
    import os
    from maskcls.train.config import create_config
    from maskcls.train.driver import train_run
    from maskcls.train.tracking import check_trackers
    try:
        check_trackers(["tensorboard", "mlflow", "wandb"])
    except ValueError as e:
        print(f"  trackers not installed ({e}); overhead not measured")
        return Budget("epoch time with all three trackers vs none (not installed)", 0.0, 3, "%")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    seconds = {}
    for name, track in (("none", []), ("all", ["tensorboard", "mlflow", "wandb"])):
        cfg = create_config("demo-cpu", data_root=str(demo), epochs=4, cache_dir=str(work / "track-cache"),
                            track=track, track_uri=f"sqlite:///{work / 'track-mlflow.db'}")
        train_run(cfg, work / "track-runs", f"track-{name}")
        from maskcls.common.runfolder import RunFolder
        seconds[name] = statistics.median(r["seconds"] for r in RunFolder(work / "track-runs",
                                                                           f"track-{name}").read_metrics()[1:])
    return Budget("epoch time with all three trackers vs none, demo-cpu", 100 * (seconds["all"] / seconds["none"] - 1),
                  3, "%")


LISTING_COMMANDS = (["--help"], ["jobs", "list"], ["submissions"], ["sweep", "list"], ["sweep", "status", "s1"])


def cli_answers(demo: Path, work: Path) -> list[Budget]:
    """A user (or a script) polling `jobs list` or `sweep status`: the whole process, start to exit, median of 3."""
    from maskcls.orchestration.sweeps import create_sweep
    from maskcls.train.config import RunConfig
    runs = work / "cli-runs"
    create_sweep(runs, "s1", RunConfig(data_root=str(demo)), {"lr": {"type": "float", "low": 0.001, "high": 0.01}})
    out = []
    for args in LISTING_COMMANDS:
        extra = [] if args == ["--help"] else ["--runs-root", str(runs)]
        cmd = [sys.executable, "-m", "maskcls", *args, *extra]
        seconds = median_seconds(lambda: subprocess.run(cmd, capture_output=True, check=True), 3)
        out.append(Budget(f"`maskcls {' '.join(args)}`, the whole process", seconds, 0.5, "s"))
    for args in TYPO_COMMANDS:  # a typo is answered before torch is imported: the answer's whole process
        cmd = [sys.executable, "-m", "maskcls", *args, "--data", str(demo), "--runs-root", str(runs)]
        seconds = median_seconds(lambda: subprocess.run(cmd, capture_output=True), 3)
        out.append(Budget(f"`maskcls {' '.join(args)}` answered (a typo)", seconds, 1.0, "s"))
    return out


TYPO_COMMANDS = (["train", "--preset", "demo-cpu", "--set", "lrr=0.1"], ["train", "--preset", "demo-gpu"],
                 ["jobs", "submit", "--preset", "demo-cpu", "--set", "epoch=3"])


def budget_steps(demo: Path, work: Path) -> dict:
    """Every budget step by key; the slow ones (`--slow`) last."""
    from maskcls.data.demo import ensure_demo
    return {"cli": lambda: cli_answers(demo, work), "intervals": lambda: interval_work(demo, work),
            "index": lambda: index_real_layout(work), "demo-generation": lambda: demo_generation(work),
            "augment-preview": lambda: augment_preview(demo), "gradcam": lambda: gradcam(demo),
            "evaluate-page": lambda: evaluate_page_work(demo), "prediction": lambda: two_member_prediction(demo, work),
            "fast-path": lambda: fast_path_to_limit(demo, work),
            # slow
            "trackers": lambda: tracker_overhead(demo, work), "demo-cpu": lambda: demo_cpu_preset(ensure_demo(), work),
            "face-boxes": lambda: face_boxes(ensure_demo(), work), "team": lambda: team_budgets(demo, work)}


SLOW_STEPS = ("trackers", "demo-cpu", "face-boxes", "team")


def team_budgets(demo: Path, work: Path) -> list[Budget]:
    """The team store's push, pull, list and size (maskcls.bench.team); said, not failed, where PostgreSQL is not
    installed."""
    from maskcls.bench.servers import ServerUnavailable, postgres_bin
    try:
        postgres_bin()
    except ServerUnavailable as e:
        print(f"team store budgets skipped: {e}")
        return []
    from maskcls.bench.team import team_store_budgets
    return team_store_budgets(demo, work / "team")


def run_budgets(include_slow: bool = False, report=print, only: list[str] | None = None) -> list[Budget]:
    """Every budget (or the steps named in `only`), each reported as soon as it is measured."""
    from maskcls.data.demo import write_demo
    out = []
    with tempfile.TemporaryDirectory(prefix="maskcls-budgets-") as tmp:
        work = Path(tmp)
        demo = work / "demo"
        steps = budget_steps(demo, work)
        unknown = sorted(set(only or []) - set(steps))
        if unknown:
            raise ValueError(f"unknown budget step(s) {', '.join(unknown)}; valid: {', '.join(steps)}")
        keys = only or [k for k in steps if include_slow or k not in SLOW_STEPS]
        write_demo(demo, people=100, eval_people=100, seed=0, workers=2)
        for key in keys:
            step = steps[key]
            for budget in (lambda b: b if isinstance(b, list) else [b])(step()):
                report(budget.line())
                out.append(budget)
    return out
