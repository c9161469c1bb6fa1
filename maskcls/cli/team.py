"""Team mode: serve the team store, push runs to it, list the team's runs, pull a teammate's run."""
from __future__ import annotations

import sys

from maskcls.cli.common import add, emit, runs_root_of


def register(sub, parents) -> None:
    team = sub.add_parser("team", help="the team store (an MLflow server): serve, push, list, pull",
                          description="the team store (an MLflow server): serve, push, list, pull")
    acts = team.add_subparsers(dest="action", required=True)
    where = dict(help="the team store, http://HOST:PORT (default: $MASKCLS_TEAM)")
    p = add(acts, "serve", cmd_serve, "start the team store: `mlflow server` on a PostgreSQL database, artifacts "
            "served from a folder (the database password from MASKCLS_STORAGE_PASSWORD / PGPASSWORD)", [])
    p.add_argument("--backend-store-uri", required=True, help="postgresql://USER@HOST/DB (no password)")
    p.add_argument("--artifacts", required=True, help="the folder the store keeps pushed files in")
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (default) or the address teammates reach")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--auth", action="store_true", help="MLflow's basic-auth app: members log in with "
                   "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (yours become the admin)")
    p = add(acts, "push", cmd_push, "send runs (config, every epoch's metrics, status, intervals, validation "
            "predictions, the best checkpoint) to the team store; again: update them", parents.of("runs_root", "json"))
    p.add_argument("runs", nargs="*", metavar="RUN|GROUP", help="run names or repeat / fold / ladder group names")
    p.add_argument("--all", action="store_true", help="every finished run that is new or changed since its push")
    p.add_argument("--team", **where)
    p.add_argument("--member", help="your name on the team (default: $MASKCLS_MEMBER)")
    p = add(acts, "list", cmd_list, "every member's runs in the team store", parents.of("runs_root", "json"))
    p.add_argument("--team", **where)
    p = add(acts, "pull", cmd_pull, "copy MEMBER/RUN into <runs root>/team/MEMBER/RUN, an ordinary read-only run",
            parents.of("runs_root", "json"))
    p.add_argument("refs", nargs="+", metavar="MEMBER/RUN")
    p.add_argument("--team", **where)
    p.add_argument("--data", help="this machine's copy of the data (default: the run's own data root, if it is here)")


def cmd_serve(args) -> int:
    import signal

    from maskcls.orchestration.team.serve import start_store, stop_store

    def stop(signum, frame):  # a closed terminal or `kill` stops the server too, not only Ctrl-C
        raise KeyboardInterrupt
    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in stopping}  # given back at the end: a caller in-process keeps its own
    for sig in (signal.SIGTERM, signal.SIGHUP):  # set before the start: a signal while it starts stops it too
        signal.signal(sig, stop)
    started: list = []  # the server the moment it exists: a signal at any line after that still stops it
    announced = False
    try:
        proc = start_store(args.backend_store_uri, args.artifacts, host=args.host, port=args.port, auth=args.auth,
                           started=started)
        announced = True
        print(f"team store on http://{args.host}:{args.port} (pid {proc.pid}); members: export "
              f"MASKCLS_TEAM=http://{args.host}:{args.port} MASKCLS_MEMBER=<name>; Ctrl-C stops it", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        for sig in stopping:  # a second signal must not cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        for server in started:
            stop_store(server)
        return 0 if announced else 130
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def group_members(runs_root, ref: str) -> list:
    """The runs a name stands for: a run, or every run of a repeat, fold or ladder group."""
    from maskcls.common.runfolder import RunFolder
    from maskcls.orchestration.folds import fold_runs, list_fold_groups
    from maskcls.orchestration.ladder import list_ladders, load_ladder
    from maskcls.orchestration.repeats import list_repeat_groups, repeat_runs
    if ref in list_repeat_groups(runs_root):
        return repeat_runs(runs_root, ref)
    if ref in list_fold_groups(runs_root):
        return fold_runs(runs_root, ref)
    if ref in list_ladders(runs_root):
        return [RunFolder(runs_root, n) for n, _ in load_ladder(runs_root, ref).planned()
                if RunFolder(runs_root, n).exists()]
    return [RunFolder.existing(runs_root, ref)]


def cmd_push(args) -> int:
    from maskcls.orchestration.team.store import TeamStore, member_name
    from maskcls.orchestration.team.transfer import push_all, push_run
    runs_root = runs_root_of(args)
    if not args.runs and not args.all:
        raise ValueError("name the runs or groups to push, or give --all")
    member = member_name(args.member)
    runs = [r for ref in args.runs for r in group_members(runs_root, ref)]  # every name checked before a byte moves
    store = TeamStore.connect(args.team)
    if args.all:
        done, failed = push_all(store, runs_root, member), []
    else:  # each run on its own: one that is refused does not hide the ones that went (nor stop the rest)
        done, failed = [], []
        for r in runs:
            try:
                done.append(push_run(store, r, member))
            except ValueError as e:
                failed.append({"run": r.name, "error": str(e)})
    lines = [f"{d['member']}/{d['run']}: " + ("sent" if d["sent"] else "unchanged, not sent") for d in done]
    lines += [f"{f['run']}: not sent: {f['error']}" for f in failed]
    emit({"pushed": done, "failed": failed} if args.json and failed else done, args.json,
         "\n".join(lines) or "nothing to push")
    if failed:
        print(f"maskcls team: error: {len(failed)} of {len(runs)} not sent (said above)", file=sys.stderr)
        return 2
    return 0


def cmd_list(args) -> int:
    from maskcls.orchestration.team.store import TeamStore
    from maskcls.orchestration.team.transfer import team_rows
    skipped: list[str] = []
    rows = team_rows(TeamStore.connect(args.team), runs_root_of(args), skipped)
    f1 = lambda r: ("-" if r["macro_f1"] is None else f"{r['macro_f1']:.4f}" + (  # noqa: E731
        f" [{r['f1_low']:.4f}, {r['f1_high']:.4f}]" if r["f1_low"] is not None and r["f1_high"] is not None else ""))
    lines = [f"{r['ref']:32s} {r['state'] or '?':10s} {f1(r):26s} data {r['data_fp']} split {r['split_fp'] or '-':16s} "
             f"pulled: {r['pulled']}" + ("" if r["complete"] else " (being pushed)") for r in rows]
    if rows:
        lines.append("(macro F1 as each pusher's record claims it; a pull recomputes it from the run's predictions)")
    lines += [f"skipped {s}" for s in skipped]
    emit({"runs": rows, "skipped": skipped} if args.json and skipped else rows, args.json,
         "\n".join(lines) or "the team store holds no runs yet")
    return 0


def cmd_pull(args) -> int:
    from maskcls.orchestration.team.store import TeamStore
    from maskcls.orchestration.team.transfer import check_data_root, check_ref, pull_run
    for ref in args.refs:  # every name (and the data root) is checked before the store is asked anything
        check_ref(ref)
    check_data_root(args.data)
    store = TeamStore.connect(args.team)
    runs_root = runs_root_of(args)
    pulled = [pull_run(store, runs_root, ref, data_root=args.data) for ref in args.refs]
    out, lines = [], []
    for ref, r in zip(args.refs, pulled):
        origin = r.pulled() or {}
        out.append({"ref": ref, "path": str(r.path), "verified": origin.get("verified"),
                    "disagreements": origin.get("disagreements", []), "labels": origin.get("labels")})
        f1 = (origin.get("verified") or {}).get("macro_f1")
        lines.append(f"{ref} -> {r.path} (use it as {ref}); macro F1 recomputed from its predictions: "
                     + (f"{f1:.4f}" if f1 is not None else "none (no validation predictions)")
                     + f"; {origin.get('labels')}")
        lines += [f"warning: {ref}: {d}" for d in origin.get("disagreements", [])]
    emit(out, args.json, "\n".join(lines))
    return 0
