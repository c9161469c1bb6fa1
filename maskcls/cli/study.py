"""Is it really better? Compare two runs or groups; the ablation ladder; send a run to a tracker."""
from __future__ import annotations

from maskcls.cli.common import add, config_from_args, emit, estimate_line, runs_root_of


def register(sub, parents) -> None:
    p = add(sub, "compare", cmd_compare, "B against A (runs, fold groups or repeat groups): the difference in macro "
            "F1 with its interval and p-value (one jackknife-t procedure over people, and seeds for groups), per "
            "class, one verdict line and what it claims",
            parents.of("runs_root", "json"))
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")

    ablate = sub.add_parser("ablate", help="the ablation ladder: create, run workers, status, list",
                            description="the ablation ladder: create, run workers, status, list")
    acts = ablate.add_subparsers(dest="action", required=True)
    p = add(acts, "create", cmd_create, "a ladder of config changes over a base config",
            parents.of("config", "runs_root", "json"))
    p.add_argument("name")
    p.add_argument("--base", dest="config", help="base run config JSON (defaults fill what it omits)")
    p.add_argument("--steps", required=True, help='STEPS.json ({"mode": "cumulative" | "leave-one-out", "steps": '
                   '[{"name": ..., "set": {...}}]}) or a shipped ladder: winners-2022')
    p.add_argument("--seeds", type=int, default=1, help="runs per rung with seeds 1..K (default 1; use 3 for verdicts "
                   "about the steps rather than about single trainings)")
    p.add_argument("--folds", type=int, default=0, help="each rung a fold group of K folds (out-of-fold scores)")
    claims_help = ("a PostgreSQL URL (postgresql://USER@HOST/DB; the password from MASKCLS_STORAGE_PASSWORD, PGPASSWORD "
                   "or ~/.pgpass) where workers on servers with no shared folder claim the ladder's runs")
    p.add_argument("--claims", default="", help=claims_help)
    p = add(acts, "run", cmd_run, "a worker: train the ladder's runs not yet claimed (several may run)",
            parents.of("runs_root", "quiet"))
    p.add_argument("name")
    p.add_argument("--background", action="store_true", help="as a detached worker job")
    p.add_argument("--claims", default="", help="the ladder's claims database, to join a ladder another server "
                   "created")
    p.add_argument("--data", default="", metavar="ROOT", help="this server's copy of the data, when it lies at another "
                   "path than the ladder's")
    p = add(acts, "status", cmd_status, "each rung's macro F1 and interval, each step's gain, p and verdict",
            parents.of("runs_root", "json"))
    p.add_argument("name")
    p.add_argument("--claims", default="", help="the ladder's claims database (for a ladder created elsewhere)")
    add(acts, "list", cmd_list, "every ladder in the runs root", parents.of("runs_root", "json"))

    p = add(sub, "export", cmd_export, "send an existing run (config, every epoch's metrics, the best confusion, the "
            "summary) to a tracker", parents.of("runs_root", "json"))
    p.add_argument("run", help="a run name or a run folder path")
    p.add_argument("--to", required=True, choices=["tensorboard", "mlflow", "wandb"])
    p.add_argument("--project", default="maskcls", help="W&B project / MLflow experiment")
    p.add_argument("--uri", default="", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else SQLite in "
                   "<runs root>/mlflow/)")
    p.add_argument("--artifacts", action="store_true", help="also send the best checkpoint (large)")


def cmd_compare(args) -> int:
    from maskcls.orchestration.compare import compare_refs
    from maskcls.train.comparison import explain
    c = compare_refs(runs_root_of(args), args.a, args.b)
    lines = [f"A = {c['a_is']}: macro F1 {c['macro_f1_a']:.4f}", f"B = {c['b_is']}: macro F1 {c['macro_f1_b']:.4f}",
             (f"paired: both validated on the same {c['people'][0]} people" if c["paired"] else
              f"unpaired: {c['note']}"), c["verdict"], *explain(c), "classes that moved most (B - A, 95 % interval):"]
    lines += [f"  {r['class']:2d} {r['difference']:+.3f} [{r['interval'][0]:+.3f}, {r['interval'][1]:+.3f}]"
              + ("" if r["resolvable"] else " (too few people to resolve)") for r in c["per_class"][:6]]
    emit(c, args.json, "\n".join(lines))
    return 0


def cmd_create(args) -> int:
    from maskcls.orchestration.ladder import create_ladder
    cfg = config_from_args(args, args.config)
    ladder = create_ladder(runs_root_of(args), args.name, cfg, args.steps, seeds=args.seeds, folds=args.folds,
                           claims=args.claims)
    from maskcls.orchestration.ladder_report import seed_caution
    caution = seed_caution(ladder)
    estimate = estimate_line([c for _, c in ladder.planned()], runs_root_of(args), what="ladder runs")
    emit({"ladder": ladder.name, "mode": ladder.mode, "rungs": [r for r, _ in ladder.rungs()],
          "runs": [n for n, _ in ladder.planned()], "caution": caution, "estimate": estimate}, args.json,
         f"ladder {ladder.name}: {ladder.mode}, {len(ladder.rungs())} rungs, {len(ladder.planned())} runs; start a "
         f"worker with `maskcls ablate run {ladder.name}`" + (f"\nnote: {caution}" if caution else "")
         + f"\n{estimate} on one worker (N workers on N devices: about 1/N of it)")
    return 0


def cmd_run(args) -> int:
    from maskcls.orchestration.ladder_worker import run_ladder, start_worker
    runs_root = runs_root_of(args)
    if args.claims:
        from maskcls.orchestration.ladder import load_ladder
        load_ladder(runs_root, args.name, args.claims)  # a ladder created elsewhere: its definition, here
    if args.background:
        worker = start_worker(runs_root, args.name)
        print(f"ladder {args.name}: worker {worker.name} started (`maskcls ablate status {args.name}`)")
        return 0
    from maskcls.common.progress import TerminalProgress
    progress = TerminalProgress(args.quiet)
    data = ""
    if args.data:
        from maskcls.orchestration.team.pull import check_data_root
        data = check_data_root(args.data)
    result = run_ladder(runs_root, args.name, progress=progress, log=(lambda m: None) if args.quiet else print,
                        claims=args.claims, data_root=data)
    progress.close()
    states = list(result["trained"].values())
    print(f"ladder {args.name}: this worker trained {len(states)} run(s)"
          + (f" ({', '.join(f'{states.count(s)} {s}' for s in sorted(set(states)))})" if states else ""))
    return 1 if states and all(s == "failed" for s in states) else 0


def cmd_status(args) -> int:
    from maskcls.orchestration.ladder_report import ladder_status
    s = ladder_status(runs_root_of(args), args.name, claims=args.claims)
    lines = [f"ladder {s['ladder']} ({s['mode']}, {s['seeds']} seed(s) per rung"
             + (f", {s['folds']} folds" if s["folds"] else "") + ")"] + ([f"note: {s['caution']}"] if s["caution"] else [])
    for r in s["rungs"]:
        score = (f"{r['macro_f1']:.4f} [{r['interval'][0]:.4f}, {r['interval'][1]:.4f}]" if r["done"] and
                 r["interval"] else "done, no validation predictions" if r["done"] else
                 ", ".join(f"{n} {st}" for n, st in r["runs"].items()))
        lines.append(f"  rung {r['rung']} {r['step']:24s} {score}")
    for st in s["steps"]:
        if "gain" in st:
            lines.append(f"  step {st['step']:24s} {st['verdict']:12s} {st['line']}")
        elif st.get("why"):
            lines.append(f"  step {st['step']:24s} {st['why']}")
        else:
            lines.append(f"  step {st['step']:24s} waiting for its runs")
    emit(s, args.json, "\n".join(lines))
    return 0


def cmd_list(args) -> int:
    from maskcls.orchestration.ladder import list_ladders
    names = list_ladders(runs_root_of(args))
    emit(names, args.json, "\n".join(names) or "no ladders yet")
    return 0


def cmd_export(args) -> int:
    from maskcls.common.runfolder import RunFolder
    from maskcls.train.tracking.export import export_run
    run = RunFolder.existing(runs_root_of(args), args.run)
    out = export_run(run, args.to, project=args.project, uri=args.uri, artifacts=args.artifacts)
    emit(out, args.json, f"{out['run']}: {out['epochs']} epoch(s)" + (", the best confusion" if out["confusion"] else "")
         + f" sent to {out['to']}" + (f" (group {out['group']})" if out["group"] else ""))
    return 0
