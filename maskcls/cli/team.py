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
    p.add_argument("--member", help="your name on a store without accounts (default: $MASKCLS_MEMBER); on a store "
                   "with accounts you are who you log in as")
    p = add(acts, "list", cmd_list, "every member's runs in the team store", parents.of("runs_root", "json"))
    p.add_argument("--team", **where)
    p = add(acts, "rm", cmd_rm, "remove your own records (every version of them) from the team store",
            parents.of("json"))
    p.add_argument("refs", nargs="+", metavar="MEMBER/RUN")
    p.add_argument("--team", **where)
    p = add(acts, "add-member", cmd_add_member, "the store's admin: an account for a teammate (password from "
            "$MASKCLS_NEW_MEMBER_PASSWORD) and the experiment only they write", parents.of("json"))
    p.add_argument("name")
    p.add_argument("--team", **where)
    p = add(acts, "pull", cmd_pull, "copy MEMBER/RUN (or a whole group) into <runs root>/team/MEMBER/, ordinary "
            "read-only runs",
            parents.of("runs_root", "json"))
    p.add_argument("refs", nargs="+", metavar="MEMBER/RUN|MEMBER/GROUP")
    p.add_argument("--team", **where)
    p.add_argument("--data", help="this machine's copy of the data (default: the run's own data root, if it is here)")


def members_setup(host: str, port: int, auth: bool) -> str:
    """What each member exports to reach a store: with accounts the store takes the member from the login (and
    ignores MASKCLS_MEMBER), so it names the login and how the admin makes one."""
    team = f"MASKCLS_TEAM=http://{host}:{port}"
    if auth:
        return (f"members: export {team} MLFLOW_TRACKING_USERNAME=<name> MLFLOW_TRACKING_PASSWORD=<password> "
                f"(the admin makes each account with `maskcls team add-member NAME`)")
    return f"members: export {team} MASKCLS_MEMBER=<name>"


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
        print(f"team store on http://{args.host}:{args.port} (pid {proc.pid}); "
              f"{members_setup(args.host, args.port, args.auth)}; Ctrl-C stops it", flush=True)
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


def group_of(runs_root, ref: str) -> tuple[str | None, list, list[str]]:
    """(kind, its completed runs here, planned run names) of a name: a repeat or fold group ("repeat" / "folds":
    pushed as a group; a group split over servers has only some of its runs here), a ladder (its runs here, pushed
    one by one) or a run (kind None)."""
    from pathlib import Path

    from maskcls.common.runfolder import RunFolder
    from maskcls.orchestration.folds import FOLD_RE, fold_names
    from maskcls.orchestration.ladder import list_ladders, load_ladder
    from maskcls.orchestration.repeats import SEED_RE, check_one_config
    from maskcls.train.config import RunConfig
    if (Path(runs_root) / ref / "config.json").is_file():
        return None, [RunFolder.existing(runs_root, ref)], []
    if ref in list_ladders(runs_root):
        return None, [RunFolder(runs_root, n) for n, _ in load_ladder(runs_root, ref).planned()
                      if RunFolder(runs_root, n).exists()], []
    for kind, pattern in (("folds", FOLD_RE), ("repeat", SEED_RE)):
        runs = sorted((RunFolder(runs_root, p.name) for p in Path(runs_root).glob(f"{ref}-*")
                       if (m := pattern.match(p.name)) and m["name"] == ref and (p / "config.json").is_file()),
                      key=lambda r: r.name)
        if runs:
            check_one_config(ref, runs) if kind == "repeat" else None
            done = [r for r in runs if r.state()["state"] == "completed"]
            planned = fold_names(ref, RunConfig.from_dict(runs[0].read_config()).n_folds) if kind == "folds" else \
                [r.name for r in runs]
            return kind, done, planned
    return None, [RunFolder.existing(runs_root, ref)], []


def cmd_push(args) -> int:
    from maskcls.orchestration.folds import oof_path
    from maskcls.common.runfolder import RunFolder
    from maskcls.orchestration.team.push import push_all, push_group, push_run
    from maskcls.orchestration.team.store import TeamStore
    runs_root = runs_root_of(args)
    if not args.runs and not args.all:
        raise ValueError("name the runs or groups to push, or give --all")
    found = [(ref, *group_of(runs_root, ref)) for ref in args.runs]  # every name checked before a byte moves
    store = TeamStore.connect(args.team)
    member = store.member_for(args.member)  # with auth: who logged in, never a name typed
    done, failed = [], []
    if args.all:
        done = push_all(store, runs_root, member)
    for ref, kind, runs, planned in found:  # each on its own: one refused does not hide (nor stop) the rest
        try:
            if kind:
                oof = oof_path(runs_root, ref) if kind == "folds" else None
                done += push_group(store, ref, kind=kind, runs=runs, member=member, planned=planned, oof=oof)["runs"]
                sent = {r.name for r in runs}
                left = {n: RunFolder(runs_root, n).state()["state"] for n in planned
                        if n not in sent and RunFolder(runs_root, n).exists()}  # here, but not completed
                done.append({"member": member, "run": ref, "group": kind, "sent": True, "not_sent_here": left})
                continue
        except ValueError as e:
            failed.append({"run": ref, "error": str(e)})
            continue
        for r in runs:
            try:
                done.append(push_run(store, r, member))
            except ValueError as e:
                failed.append({"run": r.name, "error": str(e)})
    lines = [f"{d['member']}/{d['run']}: " + (f"{d['group']} group record updated" + (
        "; not sent from here (not completed): " + ", ".join(f"{n} ({s})" for n, s in d["not_sent_here"].items())
        if d.get("not_sent_here") else "") if d.get("group") else
                                              "sent" if d["sent"] else "unchanged, not sent") for d in done]
    if not store.auth:
        lines.append(f"(this store does not check who pushes: records say {member!r} because you said so)")
    if done or args.json or not failed:
        emit({"pushed": done, "failed": failed} if args.json and failed else done, args.json,
             "\n".join(lines) or "nothing to push")
    if failed:  # each refusal on stderr, where a script looks for errors
        for f in failed:
            print(f"maskcls team: error: {f['run']}: not sent: {f['error']}", file=sys.stderr)
        print(f"maskcls team: error: {len(failed)} of {len(failed) + len(done)} not sent", file=sys.stderr)
        return 2
    return 0


def cmd_list(args) -> int:
    from maskcls.orchestration.team.records import team_group_rows, team_rows
    from maskcls.orchestration.team.store import TeamStore
    skipped: list[str] = []
    store = TeamStore.connect(args.team)
    rows = team_rows(store, runs_root_of(args), skipped)
    groups = team_group_rows(store, skipped)
    f1 = lambda r: ("-" if r["macro_f1"] is None else f"{r['macro_f1']:.4f}" + (  # noqa: E731
        f" [{r['f1_low']:.4f}, {r['f1_high']:.4f}]" if r["f1_low"] is not None and r["f1_high"] is not None else ""))
    lines = [f"{r['ref']:32s} {r['state'] or '?':10s} {f1(r):26s} data {r['data_fp']} split {r['split_fp'] or '-':16s} "
             f"pulled: {r['pulled']}" + ("" if r["complete"] else " (being pushed)") for r in rows]
    if rows:
        lines.append("(macro F1 as each pusher's record claims it; a pull recomputes it from the run's predictions)")
    lines += [f"{g['ref']:32s} {g['kind']} group of {len(g['runs'])}: {', '.join(g['runs'])}"
              + (" (+ out-of-fold table)" if g["oof"] else "") for g in groups]
    if not store.auth:
        lines.append("(this store does not check who pushes: a record's member is the name its pusher gave)")
    lines += [f"skipped {s}" for s in skipped]
    out = {"runs": rows, "groups": groups, "skipped": skipped} if args.json and (skipped or groups) else rows
    emit(out, args.json, "\n".join(lines) or "the team store holds no runs yet")
    return 0


def cmd_pull(args) -> int:
    from maskcls.orchestration.team.pull import check_data_root, check_ref, pull_any
    from maskcls.orchestration.team.store import TeamStore
    for ref in args.refs:  # every name (and the data root) is checked before the store is asked anything
        check_ref(ref)
    check_data_root(args.data)
    store = TeamStore.connect(args.team)
    runs_root = runs_root_of(args)
    out, lines = [], []
    for ref in args.refs:
        got = pull_any(store, runs_root, ref, data_root=args.data)
        lines += [f"warning: {ref}: {d}" for d in got["disagreements"]]
        for r in got["runs"]:
            origin = r.pulled() or {}
            use = f"{r.path.parent.name}/{r.name}"
            out.append({"ref": use, "path": str(r.path), "verified": origin.get("verified"),
                        "disagreements": origin.get("disagreements", []), "labels": origin.get("labels")})
            f1 = (origin.get("verified") or {}).get("macro_f1")
            lines.append(f"{use} -> {r.path} (use it as {use}); macro F1 recomputed from its predictions: "
                         + (f"{f1:.4f}" if f1 is not None else "none (no validation predictions)")
                         + f"; {origin.get('labels')}")
            lines += [f"warning: {use}: {d}" for d in origin.get("disagreements", [])]
    emit(out, args.json, "\n".join(lines))
    return 0


def cmd_rm(args) -> int:
    from maskcls.orchestration.team.pull import check_ref
    from maskcls.orchestration.team.push import remove_record
    from maskcls.orchestration.team.store import TeamError, TeamStore
    refs = [check_ref(ref) for ref in args.refs]
    store = TeamStore.connect(args.team)
    me = store.member_for(None) if store.auth else None
    for member, _ in refs:
        if me and member != me:
            raise TeamError(f"you are {me!r} on the team store: you remove only your own records, not {member!r}'s")
    done = [remove_record(store, member, name) for member, name in refs]
    emit(done, args.json, "\n".join(f"removed {d['removed']} ({len(d['versions'])} version(s))" + (
        f", a group, with its runs {', '.join(d['runs'])}" if d.get("runs") else "") for d in done))
    return 0


def cmd_add_member(args) -> int:
    from maskcls.common.fileio import check_name
    from maskcls.orchestration.team.members import add_member
    from maskcls.orchestration.team.store import TeamStore
    name = check_name(args.name, "member name")  # before the store is asked anything
    done = add_member(TeamStore.connect(args.team), name)
    if done["already_member"]:
        emit(done, args.json, f"{name} is already a member: account and {done['experiment']} as they were, nothing "
                              f"changed (their password is not reset here: MASKCLS_NEW_MEMBER_PASSWORD was not used)")
        return 0
    emit(done, args.json, f"{done['member']}: account {done['account']}; writes only {done['experiment']}, reads "
                          f"everyone's" + (f" (an experiment made before them renamed {done['renamed_away']})"
                                           if done["renamed_away"] else ""))
    return 0
