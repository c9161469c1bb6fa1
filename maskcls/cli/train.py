"""Training commands: train (a new run, a resume, all data, K folds), background jobs, the folds' results."""
from __future__ import annotations

import sys
from pathlib import Path

from maskcls.cli.common import add, config_from_args, default_run_name, emit, estimate_line, runs_root_of, when
from maskcls.common.fileio import dumps


KEYS_HINT = "every config key with its default and what it does: `maskcls config keys`"


def register(sub, parents) -> None:
    p = add(sub, "train", cmd_train, "train a model as a run config says; writes the run folder",
            parents.of("config", "runs_root", "quiet"), epilog=KEYS_HINT)
    p.add_argument("--config", help="run config JSON (see README); defaults fill what it omits")
    p.add_argument("--name", help="run name (default: <model>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN (a name or a run folder path) from its last.pt")
    p.add_argument("--full-data", metavar="RUN", default=None, help="retrain RUN's config on training + validation "
                   "people for RUN's best epoch count (no validation; the last epoch is the model)")
    p.add_argument("--folds", type=int, default=None, metavar="K", help="train K person-level folds as runs "
                   "NAME-fold1..K, then write NAME-oof.csv (out-of-fold predictions) in the runs root")
    p.add_argument("--seeds", type=int, default=None, metavar="N", help="train the config with seeds 1..N as runs "
                   "NAME-s1..N on the same split (a repeat group: mean, spread, interval)")
    p.add_argument("--claims", default="", metavar="URL", help="with --seeds or --folds: split the group with every "
                   "server that runs the same command, through this claims database (postgresql://USER@HOST/DB)")
    p.add_argument("--estimate", action="store_true", help="say how long it would take on this device (measured: "
                   "earlier runs' speed here, else a probe of a few batches) and stop")

    jobs = sub.add_parser("jobs", help="background training jobs: submit, list, cancel, logs",
                          description="background training jobs: submit, list, cancel, logs")
    acts = jobs.add_subparsers(dest="action", required=True)
    p = add(acts, "submit", cmd_jobs_submit, "start a training job in the background; prints its run name",
            parents.of("config", "runs_root"))
    p.add_argument("config", nargs="?", default=None, help="run config JSON (optional: --preset, --data and --set "
                   "build the config as `maskcls train` does)")
    p.add_argument("--name", help="run name (default: <model>-<time>)")
    p.add_argument("--slots", type=int, default=1, help="jobs per device at once (default 1)")
    p.add_argument("--folds", type=int, default=None, metavar="K", help="queue K fold runs NAME-fold1..K; the last "
                   "to end writes NAME-oof.csv")
    p.add_argument("--seeds", type=int, default=None, metavar="N", help="queue N seed runs NAME-s1..N")
    add(acts, "list", cmd_jobs_list, "list jobs: name, state, device, progress, started, ended",
        parents.of("runs_root", "json"))
    p = add(acts, "cancel", cmd_jobs_cancel, "cancel a queued or running job", parents.of("runs_root"))
    p.add_argument("name")
    p = add(acts, "logs", cmd_jobs_logs, "print a job's log", parents.of("runs_root"))
    p.add_argument("name")
    p.add_argument("--lines", type=int, default=200)

    cfg = sub.add_parser("config", help="the run config's keys, a preset's or a run's config",
                         description="the run config's keys, a preset's or a run's config")
    acts = cfg.add_subparsers(dest="action", required=True)
    add(acts, "keys", cmd_config_keys, "every config key: its default and what it does", parents.of("json"))
    p = add(acts, "show", cmd_config_show, "a preset's config (demo-cpu, gpu-effnet, winners-2022) or a run's, as "
            "JSON to start from (`train --config FILE --set ...`), or what one config key is",
            parents.of("runs_root"))
    p.add_argument("what", metavar="PRESET|RUN|KEY")

    p = add(sub, "group", cmd_group, "every run of a repeat or fold group split over servers (--claims), wherever "
            "it trained: state (lapsed: its worker stopped, it will be trained again), host, macro F1",
            parents.of("runs_root", "json"))
    p.add_argument("name")
    p.add_argument("--claims", required=True, metavar="URL", help="the group's claims database")
    p = add(sub, "folds", cmd_folds, "k-fold results: the out-of-fold table, its macro F1, class biases with a "
            "cross-fitted gain", parents.of("runs_root", "json"))
    p.add_argument("name", help="the NAME of `train --folds K --name NAME`")
    p.add_argument("--save-bias", action="store_true", help="save the out-of-fold class biases into every fold run "
                   "(then `predict --folds NAME --tuned` applies them)")


def cmd_train(args) -> int:
    """One mode per function: resume, all data, folds, seeds, or a new run; modes given together are refused,
    never one of them silently dropped."""
    modes = [f for f, given in (("--resume", args.resume), ("--folds", args.folds is not None),
                                ("--seeds", args.seeds is not None)) if given]  # --full-data says its own
    if len(modes) > 1:
        raise ValueError(f"{' and '.join(modes)} cannot go together: each trains a different set of runs (a repeat "
                         f"group of fold groups is not supported); give one")
    if args.claims and args.folds is None and args.seeds is None:
        raise ValueError("--claims splits a group of runs between servers: give it with --seeds N or --folds K (and "
                         "--name NAME), the same command on every server")
    if args.estimate:
        return train_estimate(args)
    if args.resume:
        return train_resume(args)
    if args.full_data:
        return train_full_data(args)
    if args.folds is not None:
        return train_folds(args)
    if args.seeds is not None:
        return train_seeds(args)
    return train_new(args)


def _summary(status: dict, runs_root=None, name: str | None = None) -> int:
    if name:  # a run trained with team=true pushes itself (a warning in its log when the store is away)
        from maskcls.common.runfolder import RunFolder
        from maskcls.orchestration.team.autopush import push_if_asked
        push_if_asked(RunFolder.open(runs_root, name))
    print(dumps({k: status.get(k) for k in ("state", "epoch", "best_f1")}))
    return 0


def _config(args):
    cfg = config_from_args(args, args.config)
    if not cfg.data_root:
        raise ValueError("no data root: give --data ROOT or data_root in the config")
    return cfg


def cmd_config_keys(args) -> int:
    from maskcls.train.config import key_docs
    docs = key_docs()
    lines, section = [], None
    for d in docs:
        if d["section"] != section:
            section = d["section"]
            lines.append(f"# {section}")
        lines.append(f"  {d['key']:18s} {dumps(d['default']):22s} {d['meaning']}")
    emit(docs, args.json, "\n".join(lines) + "\nset any of them with --set KEY=VALUE (JSON values: --set "
         "image_size=[224,224])")
    return 0


def cmd_config_show(args) -> int:
    from maskcls.train.config import PRESETS, create_config, did_you_mean, key_docs, run_config
    if args.what in PRESETS:
        print(create_config(args.what).to_json())
        return 0
    key = next((d for d in key_docs() if d["key"] == args.what), None)
    if key is not None and not (Path(runs_root_of(args)) / args.what).exists():  # a config key: what it is
        emit(key, getattr(args, "json", False), f"{key['key']} ({key['section']}): default {dumps(key['default'])}; "
                                                 f"{key['meaning']}\nset it with --set {key['key']}=VALUE")
        return 0
    from maskcls.common.runfolder import RunFolder
    try:
        run = RunFolder.existing(runs_root_of(args), args.what)
    except ValueError as e:
        raise ValueError(f"{args.what!r} is no preset{did_you_mean(args.what, list(PRESETS))} ({', '.join(PRESETS)}) "
                         f"and no run: {e}") from None
    print(run_config(run).to_json())
    return 0


def train_estimate(args) -> int:
    """`train ... --estimate`: the time it would take, measured, and nothing trained."""
    if args.full_data:  # the run retrained on all data: its own config, as train_full_data builds it
        from maskcls.common.runfolder import RunFolder
        from maskcls.train.driver import full_data_config
        cfg = full_data_config(RunFolder.existing(runs_root_of(args), args.full_data))
        print(estimate_line([cfg], runs_root_of(args), probe=True, what="seeds"))
        return 0
    cfg = _config(args)
    from maskcls.train.startable import check_startable
    check_startable(cfg)  # what would refuse the run refuses its estimate (a missing data root: exit 2, not a guess)
    runs = max(args.folds or 0, args.seeds or 0, 1)
    if args.folds:
        from maskcls.orchestration.folds import fold_configs
        configs = fold_configs(cfg, args.folds)
    else:
        configs = [cfg] * runs
    print(estimate_line(configs, runs_root_of(args), probe=True, what="folds" if args.folds else "seeds"))
    return 0


def train_new(args) -> int:
    cfg = _config(args)  # a mistyped key is answered before torch is imported (seconds on a busy machine)
    from maskcls.common.progress import TerminalProgress
    from maskcls.train.driver import train_run
    name = args.name or default_run_name(cfg.model)
    if not args.quiet:
        print(estimate_line([cfg], runs_root_of(args)))
    return _summary(train_run(cfg, runs_root_of(args), name, progress=TerminalProgress(args.quiet)),
                    runs_root_of(args), name)


def train_resume(args) -> int:
    from maskcls.common.progress import TerminalProgress
    from maskcls.train.config import RunConfig
    from maskcls.train.driver import train_run
    given = [flag for flag, v in (("--config", args.config), ("--preset", args.preset), ("--data", args.data),
                                   ("--set", args.set), ("--name", args.name), ("--full-data", args.full_data),
                                   ("--folds", args.folds), ("--seeds", args.seeds)) if v]
    if given:
        raise ValueError(f"--resume continues a run with its own config.json, so {', '.join(given)} cannot apply; "
                         f"to train with other settings start a new run: --config <run folder>/config.json "
                         f"--set ... --name NEW")
    return _summary(train_run(RunConfig(), runs_root_of(args), args.resume, resume=True,
                              progress=TerminalProgress(args.quiet)), runs_root_of(args), args.resume)


def train_full_data(args) -> int:
    from maskcls.common.progress import TerminalProgress
    from maskcls.common.runfolder import RunFolder
    from maskcls.train.driver import full_data_config, train_run
    given = [flag for flag, v in (("--config", args.config), ("--preset", args.preset), ("--data", args.data),
                                   ("--set", args.set), ("--folds", args.folds), ("--seeds", args.seeds)) if v]
    if given:
        raise ValueError(f"--full-data retrains RUN with RUN's own config.json, so {', '.join(given)} cannot apply; "
                         f"to train other settings on all data start a new run with --set full_data=true")
    runs_root = runs_root_of(args)
    source = RunFolder.existing(runs_root, args.full_data)
    name = args.name or f"{source.name}-full"
    return _summary(train_run(full_data_config(source), runs_root, name, progress=TerminalProgress(args.quiet)),
                    runs_root, name)


def train_folds(args) -> int:
    if not args.name:
        raise ValueError("--folds needs --name NAME: the folds become runs NAME-fold1..K")
    cfg = _config(args)
    from maskcls.common.progress import TerminalProgress
    if args.claims:
        return train_claimed_group(args, cfg, "folds", args.folds)
    from maskcls.orchestration.folds import train_folds as run_folds
    result = run_folds(cfg, runs_root_of(args), args.name, args.folds, progress=TerminalProgress(args.quiet),
                       say=(lambda m: None) if args.quiet else print)
    print(dumps(result))
    return 0


def train_seeds(args) -> int:
    if not args.name:
        raise ValueError("--seeds needs --name NAME: the seeds become runs NAME-s1..N")
    if args.folds is not None:
        raise ValueError("--seeds and --folds cannot go together: repeat a fold group's config by hand")
    cfg = _config(args)
    from maskcls.common.progress import TerminalProgress
    if args.claims:
        return train_claimed_group(args, cfg, "repeat", args.seeds)
    from maskcls.orchestration.repeats import train_repeats
    result = train_repeats(cfg, runs_root_of(args), args.name, args.seeds,
                           progress=TerminalProgress(args.quiet), say=(lambda m: None) if args.quiet else print)
    print(dumps(result))
    return 0


def train_claimed_group(args, cfg, kind: str, n: int) -> int:
    """--seeds / --folds with --claims: this server's share of a group split with others."""
    from maskcls.common.progress import TerminalProgress
    from maskcls.orchestration.claimed import train_group_claimed
    say = (lambda m: None) if args.quiet else print
    result = train_group_claimed(cfg, runs_root_of(args), args.name, kind=kind, n=n, claims=args.claims,
                                 progress=TerminalProgress(args.quiet), log=say)
    print(dumps(result))
    return 0 if all(r["state"] == "completed" for r in result["runs"]) else 1


def cmd_group(args) -> int:
    from maskcls.common.fileio import check_name
    from maskcls.orchestration.claimed import group_listing
    rows = group_listing(args.claims, check_name(args.name), runs_root_of(args))
    f1 = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    emit(rows, args.json, "\n".join(f"{r['run']:32s} {r['state']:10s} {f1(r['best_f1']):8s} on {r['host']}"
                                    + (" (here)" if r["here"] else "") for r in rows))
    return 0


def cmd_jobs_submit(args) -> int:
    cfg = config_from_args(args, args.config)  # the same config `maskcls train` would build from these options
    from maskcls.orchestration import jobs
    runs_root = runs_root_of(args)
    if args.folds is not None or args.seeds is not None:
        if not args.name:
            raise ValueError("--folds and --seeds need --name NAME: the runs become NAME-fold1..K or NAME-s1..N")
        if args.folds is not None and args.seeds is not None:
            raise ValueError("--seeds and --folds cannot go together: each trains a different set of runs; give one")
        from maskcls.orchestration.repeats import submit_repeats
        names = (jobs.submit_folds(cfg, runs_root, args.name, args.folds) if args.folds is not None else
                 submit_repeats(cfg, runs_root, args.name, args.seeds))
        print("\n".join(names))
        return 0
    print(jobs.submit(cfg, runs_root, args.name or default_run_name(cfg.model), args.slots).name)
    print(estimate_line([cfg], runs_root), file=sys.stderr)  # stdout stays the run's name, for scripts
    return 0


def cmd_jobs_list(args) -> int:
    from maskcls.orchestration.jobs import list_jobs
    rows = [j.as_dict() for j in list_jobs(runs_root_of(args))]
    text = "\n".join(f"{r['name']:32s} {r['state']:10s} {r['device']:7s} {100 * r['progress']:5.1f}%  "
                     f"{when(r['started'])}  {when(r['ended'])}" + (f"  {r['error']}" if r["error"] else "")
                     for r in rows) or "no jobs"
    emit(rows, args.json, text)
    return 0


def cmd_jobs_cancel(args) -> int:
    from maskcls.common.runfolder import RunFolder
    from maskcls.orchestration.jobs import cancel
    run = RunFolder.open(runs_root_of(args), args.name)
    info = cancel(run.root, run.name)
    print(f"{info.name}: {info.state}" + "".join(f"\nnote: {n}" for n in info.notes))
    return 0


def cmd_jobs_logs(args) -> int:
    from maskcls.common.runfolder import RunFolder
    run = RunFolder.existing(runs_root_of(args), args.name)
    if not run.log_path.exists():
        raise ValueError(f"run {run.name!r} has no log.txt yet")
    print(run.log_tail(args.lines))
    return 0


def cmd_folds(args) -> int:
    from maskcls.orchestration import folds
    runs_root = runs_root_of(args)
    from maskcls.train.intervals import interval_of_frame
    from maskcls.orchestration.groups import group_root
    root, name = group_root(runs_root, args.name)
    if name != args.name:  # a teammate's pulled group: its out-of-fold table travelled with it, read-only here
        if args.save_bias:
            raise ValueError(f"{args.name} is a teammate's fold group pulled from the team store (read-only here): "
                             f"its owner saves its biases; `maskcls folds {args.name}` shows them")
        oof = folds.read_oof(root, name)
        summary = {"oof": str(folds.oof_path(root, name)), "rows": len(oof), "folds": int(oof["fold"].nunique())}
    else:
        summary = folds.write_oof(runs_root, args.name)
        oof = folds.read_oof(runs_root, args.name)
    bias = folds.crossfit_bias(oof)
    if args.save_bias:
        folds.save_fold_bias(runs_root, args.name, bias)
    ci = interval_of_frame(oof).as_dict()
    out = {**summary, **{k: v for k, v in bias.items() if k != "bias"}, "bias": bias["bias"],
           **{k: ci[k] for k in ("macro_f1_ci", "per_class_f1_ci", "people")}}
    emit(out, args.json, f"{summary['oof']}: {summary['rows']} images, {summary['folds']} folds, out-of-fold macro "
         f"F1 {bias['macro_f1']:.4f} [{ci['macro_f1_ci'][0]:.4f}, {ci['macro_f1_ci'][1]:.4f}] over {ci['people']} "
         f"people\nclass biases: in-sample {bias['in_sample_f1']:.4f} "
         f"({bias['in_sample_gain']:+.4f}, optimistic), cross-fitted {bias['crossfit_f1']:.4f} "
         f"({bias['crossfit_gain']:+.4f})" + ("\nbiases saved into every fold run" if args.save_bias else ""))
    return 0
