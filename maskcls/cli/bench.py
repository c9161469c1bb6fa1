"""Benchmark commands: the baseline-style pipeline against the fast one and the model's own limit; the budgets."""
from __future__ import annotations

import argparse
import sys

from maskcls.common.fileio import dumps
from maskcls.cli.common import add, emit


def register(sub, parents) -> None:
    bench = sub.add_parser("bench", help="compare the baseline-style pipeline with the fast one (images/s and ratio)",
                           description="compare the baseline-style pipeline with the fast one (images/s and ratio)")
    acts = bench.add_subparsers(dest="what", required=True)
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", required=True, help="data root (e.g. made by `maskcls demo-data`)")
    data.add_argument("--device", default="auto")
    pipeline = argparse.ArgumentParser(add_help=False)
    pipeline.add_argument("--model", default="resnet10t")
    pipeline.add_argument("--size", default="128,96", help="height,width")
    pipeline.add_argument("--batch", type=int, default=32)
    pipeline.add_argument("--workers", type=int, default=2, help="baseline DataLoader workers")
    pipeline.add_argument("--cache-dir", default=None)
    p = add(acts, "train", cmd_train, "training images/s: baseline vs fast vs the model's limit",
            [data, pipeline] + parents.of("json"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-amp", action="store_true", help="fp32 instead of bf16 autocast on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast pipeline's model")
    p.add_argument("--augment", default="baseline", help="augmentation preset for both pipelines")
    p = add(acts, "infer", cmd_infer, "eval prediction images/s: baseline vs fast vs the models' limit",
            [data, pipeline] + parents.of("json"))
    p.add_argument("--members", type=int, default=1, help="models averaged")
    p.add_argument("--tta", choices=["none", "flip"], default="none")
    p = add(acts, "cache", cmd_cache, "the decoded-image cache build: Pillow workers vs nvJPEG on the GPU",
            [data] + parents.of("json"))
    p.add_argument("--size", default="224,224", help="height,width")
    add(acts, "scan", cmd_scan, "indexing: a listdir loop vs index_data", [data] + parents.of("json"))
    p = add(acts, "estimate", cmd_estimate, "a run's time estimated before it starts (a probe, no history, its "
            "cache not built) against the same run trained: the estimate's error", parents.of("config", "json"))
    p.add_argument("--runs-root", default=None, help="where the trained run goes (default: a temporary folder, "
                   "removed after)")
    p = add(acts, "budgets", cmd_budgets, "every speed budget of this machine; exit status 1 when one is over",
            parents.of("json"))
    p.add_argument("--slow", action="store_true",
                   help="also the tracker overhead, the demo-cpu preset (minutes) and the face-box cache")
    p.add_argument("--only", type=lambda t: [x.strip() for x in t.split(",") if x.strip()], default=None,
                   metavar="STEP[,STEP]", help="just these steps, e.g. trackers,intervals (see the error for all)")


def parse_size(text: str) -> tuple[int, int]:
    """--size HEIGHT,WIDTH, each a whole number of at least 16 pixels."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts) or min(int(p) for p in parts) < 16:
        raise ValueError(f"--size expects HEIGHT,WIDTH in pixels, each at least 16 (e.g. 128,96); got {text!r}")
    return int(parts[0]), int(parts[1])


def _at_least_one(**values) -> None:
    for flag, value in values.items():
        if value < 1:
            raise ValueError(f"--{flag} must be at least 1, got {value}")


def _show(r: dict, as_json: bool) -> int:
    emit(r, as_json, "\n".join(f"{k:28s} {v}" for k, v in r.items()))
    return 0


def cmd_train(args) -> int:
    from maskcls.orchestration.bench import bench_train
    size = parse_size(args.size)
    _at_least_one(batch=args.batch, steps=args.steps)
    if args.warmup < 0 or args.workers < 0:
        raise ValueError(f"--warmup and --workers must be 0 or more, got {args.warmup} and {args.workers}")
    return _show(bench_train(args.data, model=args.model, size=size, batch=args.batch, workers=args.workers,
                             steps=args.steps, warmup=args.warmup, amp=not args.no_amp, augment=args.augment,
                             device=args.device, cache_dir=args.cache_dir, compile_model=args.compile), args.json)


def cmd_infer(args) -> int:
    from maskcls.orchestration.bench import bench_infer
    size = parse_size(args.size)
    _at_least_one(batch=args.batch, members=args.members)
    if args.workers < 0:
        raise ValueError(f"--workers must be 0 or more, got {args.workers}")
    return _show(bench_infer(args.data, model=args.model, size=size, batch=args.batch, workers=args.workers,
                             device=args.device, cache_dir=args.cache_dir, members=args.members,
                             tta=args.tta == "flip"), args.json)


def cmd_cache(args) -> int:
    from maskcls.orchestration.bench import bench_cache
    return _show(bench_cache(args.data, size=parse_size(args.size), device=args.device), args.json)


def cmd_scan(args) -> int:
    from maskcls.orchestration.bench import bench_scan
    return _show(bench_scan(args.data), args.json)


def cmd_budgets(args) -> int:
    from maskcls.bench.budgets import run_budgets
    try:
        budgets = run_budgets(args.slow, report=(lambda line: None) if args.json else print, only=args.only)
    except ValueError as e:
        print(f"maskcls bench budgets: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(dumps([b.as_dict() for b in budgets], indent=2))
    over = [b.name for b in budgets if not b.ok]
    if over:
        print(f"over budget: {', '.join(over)}", file=sys.stderr)
    return 1 if over else 0


def cmd_estimate(args) -> int:
    from maskcls.cli.common import config_from_args
    from maskcls.orchestration.bench import bench_estimate
    cfg = config_from_args(args, None)
    if not cfg.data_root:
        raise ValueError("bench estimate needs --data ROOT (and --preset or --set for the run to time)")
    from maskcls.train.startable import check_startable
    check_startable(cfg)  # a data root that is not one is said at once, before a probe
    from maskcls.common.jobfolder import raise_cancelled_on_sigterm
    raise_cancelled_on_sigterm("bench estimate cancelled (SIGTERM): its timed run stopped, its scratch folder removed")
    return _show(bench_estimate(cfg, runs_root=args.runs_root), args.json)
