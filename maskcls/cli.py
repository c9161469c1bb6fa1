"""The `maskcls` command line: everything the studio does, headless."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from maskcls.common.fileio import json_kind
from maskcls.common.settings import default_cache_dir, default_runs_root

COMMANDS = {}


def command(name: str, help: str):
    """Register `fn(args)` under `name`; `fn.configure(parser)` adds its arguments."""
    def wrap(fn):
        COMMANDS[name] = (fn, help)
        return fn
    return wrap


def _print(obj, as_json: bool, text: str) -> None:
    print(json.dumps(obj, indent=2, default=str) if as_json else text)


def _scan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="data root in the competition layout")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--corrections", default=None, help="preset (community) or CSV of label corrections")
    p.add_argument("--age-bounds", default="30,60", help="lower,upper age band bounds (default 30,60)")


@command("scan", "index a data root and report people, images, class counts and skipped files")
def cmd_scan(args) -> int:
    from maskcls.data.corrections import load_corrections
    from maskcls.data.index import index_data
    from maskcls.data.labels import AgeBounds, class_name
    lo, hi = (int(x) for x in args.age_bounds.split(","))
    bounds = AgeBounds(lo, hi)
    corr = load_corrections(args.corrections) if args.corrections else None
    idx = index_data(args.root, bounds, corr)
    s = idx.summary()
    lines = [f"root        {s['root']}", f"people      {s['people']}", f"images      {s['images']}",
             f"eval images {s['eval_images']} ({s['eval_missing']} missing)", "class counts:"]
    lines += [f"  {c:2d} {class_name(c, bounds):28s} {n}" for c, n in enumerate(s["class_counts"])]
    lines.append(f"skipped     {len(s['skipped'])}")
    lines += [f"  {r['path']}: {r['reason']}" for r in s["skipped"][:50]]
    for key in ("missing", "inconsistent"):
        if s[key]:
            lines.append(f"{key:11s} {len(s[key])}")
            lines += [f"  {r['path']}: {r['reason']}" for r in s[key][:20]]
    lines.append(f"seconds     {s['seconds']}")
    _print(s, args.json, "\n".join(lines))
    return 0


cmd_scan.configure = _scan_args


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="folder to write the dataset into")
    p.add_argument("--people", type=int, default=300)
    p.add_argument("--eval-people", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from-listing", default=None, help="reproduce a real listing: a train_image_paths.txt file, or 'real' for the "
                   "competition's own listing that maskcls carries")
    p.add_argument("--eval-ids", default=None, help="eval ImageIDs in info.csv order (default: beside the listing)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--photo", action="store_true",
                   help="photo-like images (texture, sensor noise, phone JPEG settings): they cost what a real "
                        "384x512 photo costs to decode, for benchmarks")
    p.add_argument("--locked", action="store_true",
                   help="as the studio does: under the folder's lock, with generation.json and a .complete marker "
                        "(a second generator of the same folder exits at once)")


@command("demo-data", "write a synthetic dataset in the competition layout (resumes into a partly written folder)")
def cmd_demo(args) -> int:
    from maskcls.common.progress import TerminalProgress
    from maskcls.data.demo import demo_progress, generate_demo, write_demo
    progress = TerminalProgress(args.quiet)
    bar = progress.count("drawing people", "person")
    if args.locked:
        finished = generate_demo(args.out, bar, people=args.people, eval_people=args.eval_people, seed=args.seed)
        progress.close()
        print(json.dumps({**demo_progress(args.out), "generated_here": finished}))
        return 0
    info = write_demo(args.out, args.people, args.eval_people, args.seed, args.from_listing, args.eval_ids,
                      args.workers, progress=bar, photo=args.photo)
    progress.close()
    print(json.dumps(info))
    return 0


cmd_demo.configure = _demo_args


def default_run_name(model: str) -> str:
    return f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="run config JSON (see README); defaults fill what it omits")
    p.add_argument("--preset", help="config preset: demo-cpu, gpu-effnet, winners-2022")
    p.add_argument("--data", help="data root (overrides data_root)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config key")
    p.add_argument("--name", help="run name (default: <model>-<time>)")
    p.add_argument("--runs-root", default=None, help="runs root (default: $MASKCLS_RUNS, else the checkout's checkpoints/)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN (a name or a run folder path) from its last.pt")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines or progress bars; only the final JSON")
    p.add_argument("--job", metavar="RUN", help="train the run folder RUN from its config.json (job runner, torchrun)")
    p.add_argument("--queue", action="store_true", help="with --job: wait for a free slot of the device first")
    p.add_argument("--slots", type=int, default=1, help="with --queue: jobs per device at once")
    p.add_argument("--full-data", metavar="RUN", default=None, help="retrain RUN's config on training + validation "
                   "people for RUN's best epoch count (no validation; the last epoch is the model)")
    p.add_argument("--folds", type=int, default=None, metavar="K", help="train K person-level folds as runs "
                   "NAME-fold1..K, then write NAME-oof.csv (out-of-fold predictions) in the runs root")


def read_json_file(path: str, what: str):
    """Parse a JSON file the user named; every way it can be wrong gets a message naming the file."""
    from maskcls.common.fileio import read_json
    if os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is a folder, expected a JSON file")
    try:
        return read_json(path)
    except FileNotFoundError:
        raise ValueError(f"{what} {path!r} does not exist") from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path!r} is not a text file (expected JSON)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path!r} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


def read_config_file(path: str, base: dict | None = None):
    """A run config from a JSON file (an object of config keys), over `base` when given."""
    from maskcls.train.config import RunConfig
    loaded = read_json_file(path, "config")
    if not isinstance(loaded, dict):
        raise ValueError(f"config {path!r} must hold a JSON object of config keys, found a JSON "
                         f"{json_kind(loaded)}")
    return RunConfig.from_dict({**(base or {}), **loaded})


def config_from_args(args):
    """--preset, then --config, then --data and --set, in that order of precedence (last wins)."""
    from maskcls.train.config import RunConfig, create_config
    cfg = create_config(args.preset) if args.preset else RunConfig()
    if args.config:
        cfg = read_config_file(args.config, cfg.to_dict())
    if args.data:
        cfg = cfg.with_overrides([f"data_root={args.data}"])
    return cfg.with_overrides(args.set)


@command("train", "train a model as a run config says; writes the run folder")
def cmd_train(args) -> int:
    from maskcls.common.progress import TerminalProgress
    from maskcls.train.driver import train_from_config
    runs_root = args.runs_root or default_runs_root()
    progress = None if args.job else TerminalProgress(args.quiet)
    if args.job and args.queue:
        from maskcls.runs.jobs import run_job
        status = run_job(runs_root, args.job, args.slots)
    elif args.job:
        from maskcls.train.config import RunConfig
        from maskcls.train.driver import run_training
        from maskcls.train.rundir import RunDir
        run = RunDir(runs_root, args.job)
        status = run_training(RunConfig.from_dict(run.read_config()), run,
                              resume=True)  # from the newest good checkpoint, if any
    elif args.full_data:
        from maskcls.train.driver import full_data_config
        from maskcls.train.rundir import RunDir
        source = RunDir.open(runs_root, args.full_data)
        cfg = full_data_config(source).with_overrides(args.set)
        status = train_from_config(cfg, runs_root, args.name or f"{source.name}-full", progress=progress)
    elif args.resume:
        given = [flag for flag, v in (("--config", args.config), ("--preset", args.preset), ("--data", args.data),
                                       ("--set", args.set), ("--name", args.name)) if v]
        if given:
            raise ValueError(f"--resume continues a run with its own config.json, so {', '.join(given)} cannot apply; "
                             f"to train with other settings start a new run: --config <run folder>/config.json "
                             f"--set ... --name NEW")
        from maskcls.train.config import RunConfig
        status = train_from_config(RunConfig(), runs_root, args.resume, resume=True, progress=progress)
    else:
        cfg = config_from_args(args)
        if not cfg.data_root:
            raise ValueError("no data root: give --data ROOT or data_root in the config")
        if args.folds is not None:
            from maskcls.runs.kfold import train_folds
            if not args.name:
                raise ValueError("--folds needs --name NAME: the folds become runs NAME-fold1..K")
            result = train_folds(cfg, runs_root, args.name, args.folds, progress,
                                 say=(lambda m: None) if args.quiet else print)
            print(json.dumps(result))
            return 0
        status = train_from_config(cfg, runs_root, args.name or default_run_name(cfg.model), progress=progress)
    print(json.dumps({k: status.get(k) for k in ("state", "epoch", "best_f1")}))
    return 0


cmd_train.configure = _train_args


def _jobs_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("submit", help="start a training job in the background; prints its run name")
    s.add_argument("config", help="run config JSON")
    s.add_argument("--name", help="run name (default: <model>-<time>)")
    s.add_argument("--data", help="data root (overrides data_root)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--slots", type=int, default=1, help="jobs per device at once (default 1)")
    s.add_argument("--folds", type=int, default=None, metavar="K", help="queue K fold runs NAME-fold1..K; the last "
                   "to end writes NAME-oof.csv")
    ls = sub.add_parser("list", help="list jobs: name, state, device, progress, started, ended")
    ls.add_argument("--json", action="store_true")
    c = sub.add_parser("cancel", help="cancel a queued or running job")
    c.add_argument("name")
    lg = sub.add_parser("logs", help="print a job's log")
    lg.add_argument("name")
    lg.add_argument("--lines", type=int, default=200)
    for q in (s, ls, c, lg):
        q.add_argument("--runs-root", default=None, help="runs root (default: $MASKCLS_RUNS, else the checkout's "
                                                          "checkpoints/)")


def _when(t) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


@command("jobs", "background training jobs: submit, list, cancel, logs")
def cmd_jobs(args) -> int:
    from maskcls.runs import jobs
    from maskcls.train.rundir import RunDir
    runs_root = args.runs_root or default_runs_root()
    if args.action == "submit":
        cfg = read_config_file(args.config)
        if args.data:
            cfg = cfg.with_overrides([f"data_root={args.data}"])
        cfg = cfg.with_overrides(args.set)
        if args.folds is not None:
            if not args.name:
                raise ValueError("--folds needs --name NAME: the folds become runs NAME-fold1..K")
            print("\n".join(jobs.submit_folds(cfg, runs_root, args.name, args.folds)))
            return 0
        run = jobs.submit(cfg, runs_root, args.name or default_run_name(cfg.model), args.slots)
        print(run.name)
    elif args.action == "list":
        rows = [j.as_dict() for j in jobs.list_jobs(runs_root)]
        text = "\n".join(f"{r['name']:32s} {r['state']:10s} {r['device']:7s} {100 * r['progress']:5.1f}%  "
                         f"{_when(r['started'])}  {_when(r['ended'])}" + (f"  {r['error']}" if r["error"] else "")
                         for r in rows) or "no jobs"
        _print(rows, args.json, text)
    elif args.action == "cancel":
        run = RunDir.open(runs_root, args.name)
        info = jobs.cancel(run.root, run.name)
        print(f"{info.name}: {info.state}")
    else:
        run = RunDir.open(runs_root, args.name)
        if not run.exists():
            raise ValueError(f"no run named {args.name!r} in {runs_root}")
        if not run.log_path.exists():
            raise ValueError(f"run {run.name!r} has no log.txt yet")
        print(run.log_tail(args.lines))
    return 0


cmd_jobs.configure = _jobs_args


def _predict_args(p: argparse.ArgumentParser) -> None:
    from maskcls.infer.ensemble import METHODS
    p.add_argument("--data", help="data root holding eval/info.csv and eval/images")
    p.add_argument("--members", nargs="+", metavar="RUN[:CKPT[:WEIGHT]]",
                   help="checkpoints of any runs (RUN: a run name or a run folder path); for soups, several epochs "
                        "of one run work too (RUN:epoch_005.pt); WEIGHT > 0")
    p.add_argument("--method", choices=METHODS, default="soft",
                   help="soft / hard voting, soup (uniform or weighted weight average) or greedy-soup (picks its "
                        "checkpoints on the members' validation split)")
    p.add_argument("--tta", choices=["none", "flip"], default="none")
    p.add_argument("--out", default="submission.csv")
    p.add_argument("--runs-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-dir", default=None, help="decoded-image cache (default <data>/.maskcls-cache)")
    p.add_argument("--folds", metavar="NAME", default=None, help="the fold runs NAME-fold1..K as members (the fold "
                   "ensemble of `train --folds K --name NAME`)")
    p.add_argument("--validate", action="store_true", help="also score members and ensemble on validation")
    p.add_argument("--tuned", action="store_true", help="apply each run's saved macro-F1 class biases")
    p.add_argument("--background", metavar="NAME", default=None,
                   help="run as a background job <runs-root>/submissions/NAME (see `maskcls predictions`)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)  # the background job process itself


def _seconds_text(seconds: dict) -> str:
    return f"{seconds['total']:.1f}s (decoding {seconds['decode']:.1f}s, models {seconds['models']:.1f}s)"


@command("predict", "predict the eval set with one model or an ensemble; writes the submission CSV")
def cmd_predict(args) -> int:
    runs_root = args.runs_root or default_runs_root()
    if args.job:
        from maskcls.runs.predictions import run_prediction
        status = run_prediction(runs_root, args.job)
        return 0 if status.get("state") == "completed" else 1
    if not args.data or not (args.members or args.folds):
        raise ValueError("predict needs --data ROOT and --members RUN[:CKPT] ... (or --folds NAME)")
    from maskcls.infer.ensemble import predict_submission, score_members
    from maskcls.infer.predict import Member, check_output
    members = [Member.parse(m) for m in args.members or []]
    if args.folds:
        from maskcls.runs.kfold import fold_runs
        members += [Member(r.name) for r in fold_runs(runs_root, args.folds)]
    if args.background:
        from maskcls.runs.predictions import PredictRequest, submit_prediction
        req = PredictRequest(os.path.abspath(args.data), [m.absolute() for m in members], args.method,
                             args.tta == "flip", args.tuned, args.device, args.cache_dir)
        job = submit_prediction(req, runs_root, args.background)
        print(f"{job.name}: started; `maskcls predictions` shows it, the CSV will be {job.csv_path}")
        return 0
    check_output(args.out)
    from maskcls.common.devices import resolve_device
    from maskcls.common.progress import TerminalProgress
    progress = TerminalProgress(args.quiet)
    device = resolve_device(args.device)
    cache_dir = default_cache_dir(args.data, args.cache_dir)
    tta = args.tta == "flip"
    if args.validate:
        table, notes, _ = score_members(runs_root, members, args.method, device, cache_dir, tta,
                                        progress.fraction("validation"))
        print(table.to_string(index=False))
        for n in notes:
            print("note:", n)
    r = predict_submission(args.data, runs_root, members, args.method, args.out, device, tta, args.tuned, cache_dir,
                           progress.fraction("predicting"))
    progress.close()
    if "chosen" in r:
        print(r["greedy_steps"].to_string(index=False))
        print(f"greedy soup: {len(r['chosen'])} of {len(members)} checkpoints kept "
              f"(validation macro F1 {r['greedy_val_f1']:.4f}): {', '.join(r['chosen'])}")
        for n in r["notes"]:
            print("note:", n)
    print(f"wrote {r['csv']} ({r['rows']} rows) and {r['probs_csv']} in {_seconds_text(r['seconds'])}")
    if r["score"]:
        print(f"score against the demo's hidden labels: macro F1 {r['score']['macro_f1']:.4f}, "
              f"accuracy {r['score']['accuracy']:.4f}")
    return 0


cmd_predict.configure = _predict_args


def _predictions_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cancel", metavar="NAME", default=None,
                   help="cancel a queued or running prediction (a name or its folder path)")
    p.add_argument("--runs-root", default=None)
    p.add_argument("--json", action="store_true")


def prediction_ref(runs_root: str, ref: str) -> tuple[str, str]:
    """(runs root, name) of a prediction given by name or by its folder path (<runs root>/submissions/NAME)."""
    from maskcls.runs.predictions import FOLDER
    from maskcls.train.rundir import run_folder_path
    path = run_folder_path(os.path.join(runs_root, FOLDER), ref)
    if path is None:
        return runs_root, ref
    if path.parent.name != FOLDER:
        raise ValueError(f"{ref!r} is not a prediction folder: expected <runs root>/{FOLDER}/NAME")
    return str(path.parent.parent), path.name


@command("predictions", "background predictions (`predict --background NAME`): list them or cancel one")
def cmd_predictions(args) -> int:
    from maskcls.runs.predictions import cancel_prediction, list_predictions
    runs_root = args.runs_root or default_runs_root()
    if args.cancel:
        root, name = prediction_ref(runs_root, args.cancel)
        print(f"{name}: {cancel_prediction(root, name)['state']}")
        return 0
    rows = list_predictions(runs_root)
    text = "\n".join(f"{r['name']:32s} {r.get('state', '?'):10s} {100 * r.get('progress', 0):5.1f}%  "
                     f"{_when(r.get('submitted'))}  {r.get('stage', '')}" + (f"  {r['error']}" if r.get("error") else "")
                     for r in rows) or "no predictions"
    _print(rows, args.json, text)
    return 0


cmd_predictions.configure = _predictions_args


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["train", "infer", "scan", "cache", "budgets"],
                   help="train / infer / scan: baseline-style vs fast pipeline; budgets: every speed budget of this "
                        "machine, exit status 1 when one is over")
    p.add_argument("--data", help="data root (e.g. made by `maskcls demo-data`); not needed for budgets")
    p.add_argument("--slow", action="store_true", help="budgets: also the 4-minute demo-cpu preset and the face-box cache")
    p.add_argument("--model", default="resnet10t")
    p.add_argument("--size", default="128,96", help="height,width")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="baseline DataLoader workers")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true", help="fp32 instead of bf16 autocast on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast pipeline's model")
    p.add_argument("--augment", default="baseline", help="augmentation preset for both pipelines")
    p.add_argument("--members", type=int, default=1, help="infer: models averaged")
    p.add_argument("--tta", choices=["none", "flip"], default="none")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--json", action="store_true")


@command("bench", "compare the baseline-style pipeline with the fast one (images/s and ratio)")
def cmd_bench(args) -> int:
    from maskcls.runs import bench
    if args.what == "budgets":
        from maskcls.budgets import run_budgets
        budgets = run_budgets(args.slow, report=(lambda line: None) if args.json else print)
        if args.json:
            print(json.dumps([b.as_dict() for b in budgets], indent=2))
        over = [b.name for b in budgets if not b.ok]
        if over:
            print(f"over budget: {', '.join(over)}", file=sys.stderr)
        return 1 if over else 0
    if not args.data:
        raise ValueError(f"bench {args.what} needs --data ROOT")
    size = tuple(int(v) for v in args.size.split(","))
    if args.what == "train":
        r = bench.bench_train(args.data, args.model, size, args.batch, args.workers, args.steps, args.warmup,
                              not args.no_amp, args.augment, args.device, args.cache_dir, args.compile)
    elif args.what == "cache":
        r = bench.bench_cache(args.data, size, args.device)
    elif args.what == "infer":
        r = bench.bench_infer(args.data, args.model, size, args.batch, args.workers, args.device, args.cache_dir,
                              args.members, args.tta == "flip")
    else:
        r = bench.bench_scan(args.data)
    text = "\n".join(f"{k:28s} {v}" for k, v in r.items())
    _print(r, args.json, text)
    return 0


cmd_bench.configure = _bench_args


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run name (in the runs root) or a run folder path")
    p.add_argument("--checkpoint", default="best.pt")
    p.add_argument("--runs-root", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tune", action="store_true", help="fit per-class biases for macro F1 and save them with the run")
    p.add_argument("--json", action="store_true")


@command("evaluate", "accuracy, macro F1 and per-class precision / recall / F1 of a run on its validation split")
def cmd_evaluate(args) -> int:
    from maskcls.data.labels import class_names
    from maskcls.infer.evaluation import report, run_predictions, save_bias, tune_biases
    from maskcls.train.rundir import RunDir, probs_of
    run = RunDir.open(args.runs_root or default_runs_root(), args.run)
    runs_root = run.root
    preds = run_predictions(runs_root, run.name, args.checkpoint, args.device)
    r = report(preds)
    out = {"run": run.name, "path": str(run.path), "checkpoint": args.checkpoint, "source": preds.attrs.get("source"),
           "images": len(preds), "accuracy": r["accuracy"],
           "macro_f1": r["macro_f1"], "per_class": r["per_class"],
           "attributes": {k: {"accuracy": v["accuracy"], "macro_f1": v["macro_f1"]} for k, v in r["attributes"].items()}}
    if args.tune:
        bias, before, after = tune_biases(probs_of(preds), preds["label"].to_numpy())
        save_bias(runs_root, run.name, bias, before, after, args.checkpoint)
        out["tuned"] = {"macro_f1_before": before, "macro_f1_after": after, "bias": [round(b, 3) for b in bias]}
    names = class_names()
    lines = [f"{run.name} ({args.checkpoint}), {len(preds)} validation images: {out['source']}",
             f"accuracy  {r['accuracy']:.4f}", f"macro F1  {r['macro_f1']:.4f}",
             f"{'class':>5} {'name':28s} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>7}"]
    lines += [f"{c['class']:5d} {names[c['class']]:28s} {c['precision']:9.4f} {c['recall']:7.4f} {c['f1']:7.4f} "
              f"{c['support']:7d}" for c in r["per_class"]]
    if args.tune:
        lines.append(f"tuned class biases: macro F1 {out['tuned']['macro_f1_before']:.4f} -> "
                     f"{out['tuned']['macro_f1_after']:.4f} (saved with the run)")
    _print(out, args.json, "\n".join(lines))
    return 0


cmd_evaluate.configure = _evaluate_args


def _augment_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    pv = sub.add_parser("preview", help="write a grid of the original and N random draws of one image")
    pv.add_argument("image")
    pv.add_argument("--spec", help="spec JSON file (default: --preset)")
    pv.add_argument("--preset", default="strong")
    pv.add_argument("--n", type=int, default=8)
    pv.add_argument("--seed", type=int, default=0)
    pv.add_argument("--out", default="augment-preview.png")
    sv = sub.add_parser("save", help="validate a spec JSON and save it under a name for training")
    sv.add_argument("name")
    sv.add_argument("spec", help="spec JSON file")
    sv.add_argument("--runs-root", default=None)
    ls = sub.add_parser("list", help="presets and saved specs")
    ls.add_argument("--runs-root", default=None)


@command("augment", "augmentation specs: preview draws, save, list")
def cmd_augment(args) -> int:
    from maskcls.augment.spec import AugmentSpec, create_preset, list_presets, list_saved_specs, save_spec
    if args.action == "list":
        print("presets:", ", ".join(list_presets()))
        print("saved:  ", ", ".join(list_saved_specs(args.runs_root or default_runs_root())) or "-")
        return 0
    if args.action == "save":
        spec = AugmentSpec.from_dict(read_json_file(args.spec, "augment spec"))
        print(save_spec(args.runs_root or default_runs_root(), args.name, spec))
        return 0
    from PIL import Image

    from maskcls.augment.preview import contact_sheet, load_source, preview_draws
    spec = AugmentSpec.from_dict(read_json_file(args.spec, "augment spec")) if args.spec else create_preset(args.preset)
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    source = load_source(args.image, spec)
    draws, fired, seconds = preview_draws(source, spec, args.n, args.seed)
    from maskcls.common.fileio import atomic_path
    if os.path.isdir(args.out):
        raise ValueError(f"--out {args.out!r} is a folder; expected a .png file name")
    with atomic_path(args.out) as tmp:
        Image.fromarray(contact_sheet([source] + draws)).save(tmp, format="PNG")
    print(f"wrote {args.out}: {args.n} draws in {seconds * 1000:.0f} ms; fired: "
          + ", ".join(f"{k} {v}/{args.n}" for k, v in fired.items()))
    return 0


cmd_augment.configure = _augment_args


def _faces_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="data root in the competition layout")
    p.add_argument("--margin", type=float, default=0.2, help="grow each face box by this share of its size")
    p.add_argument("--cache-dir", default=None, help="where the boxes are cached (default: the data's image cache)")
    p.add_argument("--eval", action="store_true", help="also the eval images")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@command("faces", "find the face in every image (MTCNN), cache the boxes, report coverage and write a CSV of them")
def cmd_faces(args) -> int:
    from maskcls.common.devices import resolve_device
    from maskcls.common.progress import TerminalProgress
    from maskcls.data.faces import faces_report
    from maskcls.data.index import index_data
    if not 0 <= args.margin <= 1:
        raise ValueError(f"--margin must be between 0 and 1, got {args.margin}")
    index = index_data(args.root)
    paths = index.train["path"].tolist() + (index.eval["path"].tolist() if args.eval and index.eval is not None else [])
    progress = TerminalProgress(args.quiet)
    device = resolve_device(args.device)
    out = faces_report(paths, default_cache_dir(args.root, args.cache_dir), args.margin,
                       device if device.type == "cuda" else "cpu", progress.count("finding faces", "img"))
    progress.close()
    _print(out, args.json, f"{out['images']} images: {out['detected']} detected, {out['borrowed']} borrowed from the "
           f"person's other photos, {out['fallback']} centre fallback; {out['seconds']} s; boxes in {out['csv']}")
    return 0


cmd_faces.configure = _faces_args


def _folds_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the NAME of `train --folds K --name NAME`")
    p.add_argument("--runs-root", default=None)
    p.add_argument("--save-bias", action="store_true", help="save the out-of-fold class biases into every fold run "
                   "(then `predict --folds NAME --tuned` applies them)")
    p.add_argument("--json", action="store_true")


@command("folds", "k-fold results: the out-of-fold table, its macro F1, class biases with a cross-fitted gain")
def cmd_folds(args) -> int:
    from maskcls.runs import kfold
    runs_root = args.runs_root or default_runs_root()
    summary = kfold.write_oof(runs_root, args.name)
    bias = kfold.crossfit_bias(kfold.read_oof(runs_root, args.name))
    if args.save_bias:
        kfold.save_fold_bias(runs_root, args.name, bias)
    out = {**summary, **{k: v for k, v in bias.items() if k != "bias"}, "bias": bias["bias"]}
    _print(out, args.json, f"{summary['oof']}: {summary['rows']} images, {summary['folds']} folds, out-of-fold macro "
           f"F1 {bias['macro_f1']:.4f}\nclass biases: in-sample {bias['in_sample_f1']:.4f} "
           f"({bias['in_sample_gain']:+.4f}, optimistic), cross-fitted {bias['crossfit_f1']:.4f} "
           f"({bias['crossfit_gain']:+.4f})" + ("\nbiases saved into every fold run" if args.save_bias else ""))
    return 0


cmd_folds.configure = _folds_args


def _sweep_args(p: argparse.ArgumentParser) -> None:
    from maskcls.runs.sweeps import PRUNERS, SAMPLERS
    p.add_argument("action", choices=["create", "run", "status", "list", "best", "workers"])
    p.add_argument("name", nargs="?", help="sweep name (not for list)")
    p.add_argument("--base", dest="config", help="create: base run config JSON (defaults fill what it omits)")
    p.add_argument("--preset", help="create: config preset as the base (demo-cpu, gpu-effnet, winners-2022)")
    p.add_argument("--data", help="create: data root of the base config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="create: override a base key")
    p.add_argument("--space", help="create: search space JSON over run-config keys")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe")
    p.add_argument("--pruner", choices=PRUNERS, default="median")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in the runs root); "
                   "postgresql://user@host/db to share one study between servers (the password from "
                   "MASKCLS_STORAGE_PASSWORD, PGPASSWORD or ~/.pgpass; one given in the URL is used, never stored)")
    p.add_argument("--trials", type=int, default=None, help="create: trials in all (0: no limit); run: trials this "
                   "worker runs at most")
    p.add_argument("--resume", action="store_true", help="create: re-define an existing sweep, keeping its trials")
    p.add_argument("--background", action="store_true", help="run: as a detached worker job (see `sweep workers`)")
    p.add_argument("--out", help="best: write the best trial's run config here")
    p.add_argument("--runs-root", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="run: no per-epoch lines")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)  # a background worker process itself


@command("sweep", "Optuna sweeps over the run config: create, run workers, status, list, best")
def cmd_sweep(args) -> int:
    from maskcls.runs import sweeps
    runs_root = args.runs_root or default_runs_root()
    if args.action == "list":
        rows = [{"name": s["name"], "sampler": s["sampler"], "pruner": s["pruner"], "total": s["total"],
                 "keys": sorted(s["space"]), "storage": sweeps.shown_url(s["storage"]) if s["storage"] else "sqlite"}
                for s in sweeps.list_sweeps(runs_root)]
        _print(rows, args.json, "\n".join(f"{r['name']:24s} {r['sampler']:6s} {r['pruner']:7s} keys: "
                                          f"{', '.join(r['keys'])}" for r in rows) or "no sweeps yet")
        return 0
    if not args.name:
        raise ValueError(f"sweep {args.action} needs a sweep NAME")
    if args.action == "create":
        return _sweep_create(args, runs_root)
    if args.action == "run":
        return _sweep_run(args, runs_root)
    if args.action == "workers":
        rows = sweeps.list_workers(runs_root, args.name)
        _print(rows, args.json, "\n".join(f"{w['name']} {w['state']} {w.get('error') or ''}" for w in rows)
               or "no background workers")
        return 0
    if args.action == "best":
        number, cfg = sweeps.best_trial_config(runs_root, args.name, args.storage)
        if args.out:
            from maskcls.common.fileio import write_text
            write_text(args.out, cfg.to_json())
        _print({"trial": number, "config": cfg.to_dict()}, args.json,
               f"best trial {number}" + (f": config written to {args.out}" if args.out else "\n" + cfg.to_json()))
        return 0
    table = sweeps.trials_table(runs_root, args.name, args.storage)
    rows = table.to_dict("records")
    text = table.drop(columns=["error"]).to_string(index=False) if len(table) else "no trials yet"
    _print({"sweep": args.name, "trials": rows}, args.json, text)
    return 0


def _sweep_create(args, runs_root: str) -> int:
    from maskcls.runs import sweeps
    if not args.space:
        raise ValueError("sweep create needs --space SPACE.json (a JSON object of run-config keys and ranges)")
    cfg = config_from_args(args)  # --preset, then --base, then --data and --set, as `train` reads them
    space = read_json_file(args.space, "search space")
    sweep = sweeps.create_sweep(runs_root, args.name, cfg, space, args.sampler, args.pruner, args.storage or "",
                                args.trials or 0, args.resume)
    _print(sweep.to_dict(), args.json, f"sweep {sweep.name}: {', '.join(sorted(sweep.space))} by {sweep.sampler}, "
           f"pruner {sweep.pruner}" + (f", {sweep.total} trials" if sweep.total else "") + "; start a worker with "
           f"`maskcls sweep run {sweep.name} --trials N`")
    return 0


def _sweep_run(args, runs_root: str) -> int:
    from maskcls.runs import sweeps
    trials = args.trials if args.trials is not None else 1
    if args.job:
        status = sweeps.run_worker_job(runs_root, args.name, args.job, trials, args.storage)
        return 0 if status.get("state") == "completed" else 1
    if args.background:
        worker = sweeps.start_worker(runs_root, args.name, trials, args.storage)
        print(f"sweep {args.name}: worker {worker.name} started (`maskcls sweep workers {args.name}`)")
        return 0
    from maskcls.common.progress import TerminalProgress
    progress = TerminalProgress(args.quiet)
    result = sweeps.run_worker(runs_root, args.name, trials, args.storage, progress,
                               log=(lambda m: None) if args.quiet else print)
    progress.close()
    _print(result, args.json, f"sweep {args.name}: this worker ran trial(s) {result['trials_run']} in "
           f"{result['seconds']} s")
    return 0


cmd_sweep.configure = _sweep_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskcls", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (fn, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        fn.configure(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, OSError) as e:
        from maskcls.common.jobfolder import error_text
        print(f"maskcls {args.command}: error: {error_text(e) if isinstance(e, OSError) else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
