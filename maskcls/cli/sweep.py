"""Sweep commands: create a sweep, run workers, and read it (status, list, best, workers); reap lost trials."""
from __future__ import annotations

from maskcls.cli.common import add, config_from_args, emit, estimate_line, read_json_file, runs_root_of
from maskcls.orchestration.sweeps.space import PRUNERS, SAMPLERS

STORAGE_HELP = ("Optuna storage URL (default: SQLite in the runs root); postgresql://user@host/db to share one study "
                "between servers (the password from MASKCLS_STORAGE_PASSWORD, PGPASSWORD or ~/.pgpass; one given in "
                "the URL is used, never stored)")


def register(sub, parents) -> None:
    sweep = sub.add_parser("sweep", help="Optuna sweeps over the run config: create, run workers, status, list, best",
                           description="Optuna sweeps over the run config: create, run workers, status, list, best")
    acts = sweep.add_subparsers(dest="action", required=True)
    storage = parents.of("runs_root")

    p = add(acts, "create", cmd_create, "define a sweep: a base config, a search space, a sampler and a pruner",
            parents.of("config", "runs_root", "json"))
    p.add_argument("name")
    p.add_argument("--base", dest="config", help="base run config JSON (defaults fill what it omits)")
    p.add_argument("--space", required=True, help="search space JSON over run-config keys")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe")
    p.add_argument("--pruner", choices=PRUNERS, default="median")
    p.add_argument("--storage", default=None, help=STORAGE_HELP)
    p.add_argument("--trials", type=int, default=0, help="trials in all (0: no limit)")
    p.add_argument("--resume", action="store_true", help="re-define an existing sweep, keeping its trials")

    p = add(acts, "run", cmd_run, "a worker: run trials of the sweep here (several may run, here or elsewhere)",
            parents.of("runs_root", "json", "quiet"))
    p.add_argument("name")
    p.add_argument("--trials", type=int, default=1, help="trials this worker runs at most")
    p.add_argument("--storage", default=None, help=STORAGE_HELP)
    p.add_argument("--background", action="store_true", help="as a detached worker job (see `maskcls sweep workers`)")

    for name, fn, text in (("status", cmd_status, "the trials: state, best F1, run, seconds, parameters"),
                           ("best", cmd_best, "the best trial's run config"),
                           ("workers", cmd_workers, "the sweep's background workers"),
                           ("reap", cmd_reap, "fail the trials whose worker is gone (workers do this as they start)")):
        p = add(acts, name, fn, text, storage + parents.of("json"))
        p.add_argument("name")
        if name != "workers":
            p.add_argument("--storage", default=None, help=STORAGE_HELP)
        if name == "status":
            p.add_argument("--live", action="store_true", help="read the storage itself, not the workers' snapshot")
        if name == "best":
            p.add_argument("--out", help="write the best trial's run config here")
    add(acts, "list", cmd_list, "every sweep in the runs root", parents.of("runs_root", "json"))


def cmd_list(args) -> int:
    from maskcls.orchestration.sweeps.definition import list_sweeps
    from maskcls.orchestration.sweeps.storage import shown_url
    rows = [{"name": s["name"], "sampler": s["sampler"], "pruner": s["pruner"], "total": s["total"],
             "keys": sorted(s["space"]), "storage": shown_url(s["storage"]) if s["storage"] else "sqlite"}
            for s in list_sweeps(runs_root_of(args))]
    emit(rows, args.json, "\n".join(f"{r['name']:24s} {r['sampler']:6s} {r['pruner']:7s} keys: {', '.join(r['keys'])}"
                                    for r in rows) or "no sweeps yet")
    return 0


def cmd_create(args) -> int:
    from maskcls.orchestration.sweeps.definition import create_sweep
    cfg = config_from_args(args, args.config)  # --preset, then --base, then --data and --set, as `train` reads them
    space = read_json_file(args.space, "search space")
    sweep = create_sweep(runs_root_of(args), args.name, cfg, space, sampler=args.sampler, pruner=args.pruner,
                         storage=args.storage or "", total=args.trials, resume=args.resume)
    trials = sweep.total or 1
    estimate = estimate_line([cfg] * trials, runs_root_of(args), what="trials")
    emit(sweep.to_dict(), args.json, f"sweep {sweep.name}: {', '.join(sorted(sweep.space))} by {sweep.sampler}, "
         f"pruner {sweep.pruner}" + (f", {sweep.total} trials" if sweep.total else "") + "; start a worker with "
         f"`maskcls sweep run {sweep.name} --trials N`\n{estimate}"
         + ("" if sweep.total else " for one trial") + " (at the base config's size; pruned trials end sooner)")
    return 0


def cmd_run(args) -> int:
    import sys

    from maskcls.orchestration.sweeps.worker import run_worker, start_worker
    runs_root = runs_root_of(args)
    if args.background:
        worker = start_worker(runs_root, args.name, args.trials, args.storage)
        print(f"sweep {args.name}: worker {worker.name} started (`maskcls sweep workers {args.name}`)")
        return 0
    from maskcls.common.progress import TerminalProgress
    progress = TerminalProgress(args.quiet)
    result = run_worker(runs_root, args.name, args.trials, args.storage, progress=progress,
                        log=(lambda m: None) if args.quiet else print, quiet=args.quiet)
    progress.close()
    states = list(result["states"].values())
    emit(result, args.json, f"sweep {args.name}: this worker ran trial(s) {result['trials_run']} in "
         f"{result['seconds']} s" + (f" ({', '.join(f'{states.count(s)} {s}' for s in sorted(set(states)))})"
                                     if states else ""))
    if states and all(s == "failed" for s in states):
        print(f"maskcls sweep: error: every trial this worker ran failed; `maskcls sweep status {args.name}` shows "
              f"why", file=sys.stderr)
        return 1
    return 0


def cmd_status(args) -> int:
    from maskcls.orchestration.sweeps.report import trial_rows
    rows = trial_rows(runs_root_of(args), args.name, args.storage, live=args.live)
    emit({"sweep": args.name, "trials": rows}, args.json, trials_text(rows))
    return 0


def trials_text(rows: list[dict]) -> str:
    """The trials as aligned text (no pandas: a status poll stays quick)."""
    if not rows:
        return "no trials yet"
    def num(v):
        return "-" if v is None else f"{v:.4f}"
    lines = [f"{'trial':>5} {'state':10s} {'best F1':>8} {'interval':>17} {'epochs':>6} {'seconds':>8}  run / parameters"]
    for r in rows:
        interval = f"[{num(r['f1_low'])}, {num(r['f1_high'])}]" if r["f1_low"] is not None else "-"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
        lines.append(f"{r['trial']:5d} {r['state']:10s} {num(r['best_f1']):>8} {interval:>17} {r['epochs_run']:6d} "
                     f"{r['seconds']:8.1f}  {r['run']}: {params}" + (f"  ({r['note']})" if r["note"] else ""))
    return "\n".join(lines)


def cmd_best(args) -> int:
    from maskcls.orchestration.sweeps.report import best_trial_config
    if args.out:
        from maskcls.common.outputs import guard_output
        guard_output(args.out, example="best.json", runs_root=runs_root_of(args))
    number, cfg = best_trial_config(runs_root_of(args), args.name, args.storage)
    if args.out:
        from maskcls.common.fileio import write_text
        write_text(args.out, cfg.to_json())
    emit({"trial": number, "config": cfg.to_dict()}, args.json,
         f"best trial {number}" + (f": config written to {args.out}" if args.out else "\n" + cfg.to_json()))
    return 0


def cmd_workers(args) -> int:
    from maskcls.orchestration.sweeps.worker import list_workers
    rows = list_workers(runs_root_of(args), args.name)
    emit(rows, args.json, "\n".join(f"{w['name']} {w['state']} {w.get('error') or ''}" for w in rows)
         or "no background workers")
    return 0


def cmd_reap(args) -> int:
    from maskcls.orchestration.sweeps.definition import load_sweep
    from maskcls.orchestration.sweeps.worker import reap_lost_trials
    runs_root = runs_root_of(args)
    failed = reap_lost_trials(runs_root, load_sweep(runs_root, args.name), args.storage)
    emit({"failed": failed}, args.json, f"sweep {args.name}: {len(failed)} lost trial(s) failed"
         + (f": {failed}" if failed else ""))
    return 0
