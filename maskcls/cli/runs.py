"""Finding runs in a long season of them, and the disk they use: runs list, runs du, runs prune."""
from __future__ import annotations

from maskcls.cli.common import add, emit, runs_root_of


def register(sub, parents) -> None:
    register_report(sub, parents)
    runs = sub.add_parser("runs", help="find runs (filters over the run index), their disk use, prune checkpoints",
                          description="find runs (filters over the run index), their disk use, prune checkpoints")
    acts = runs.add_subparsers(dest="action", required=True)
    p = add(acts, "list", cmd_list, "runs matching every filter given, one line each (or --json)",
            parents.of("runs_root", "json"))
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key's value, e.g. model=efficientnet_b0 (repeatable: all must hold)")
    p.add_argument("--state", action="append", default=[], help="completed, running, failed, ... (repeatable)")
    p.add_argument("--kind", action="append", default=[], choices=("lone", "sweep", "ladder", "repeat", "folds", "team"),
                   help="the group kind (repeatable)")
    p.add_argument("--name", default="", help="part of the run's name")
    p.add_argument("--f1", nargs=2, type=float, default=None, metavar=("LOW", "HIGH"), help="best macro F1 range")
    p.add_argument("--sort", default="name", help="name, f1, started, disk or state")
    p.add_argument("--limit", type=int, default=0, help="at most this many (0: all)")
    add(acts, "du", cmd_du, "disk use per run and in total, what a prune frees, free space on the runs root's disk",
        parents.of("runs_root", "json"))
    p = add(acts, "prune", cmd_prune, "remove finished runs' epoch checkpoints and last.pt (optimizer state); never "
            "best.pt, a checkpoint a submission, soup or review uses, or a run not finished",
            parents.of("runs_root", "json"))
    p.add_argument("--dry-run", action="store_true", help="say what would go and what stays, change nothing")
    p.add_argument("--keep-best", type=int, nargs="?", const=1, default=0, metavar="K",
                   help="leave the K best finished runs whole (K = 1 when given alone)")


def register_report(sub, parents) -> None:
    p = add(sub, "report", cmd_report, "the wrap-up report: data, experiments, ladders, comparisons, the best model, "
            "label review, submissions, environment; every macro F1 with its interval (HTML, and Markdown + PNGs)",
            parents.of("runs_root", "json"))
    p.add_argument("--runs", nargs="+", default=[], metavar="RUN", help="runs in the experiments table (default: "
                   "every finished run)")
    p.add_argument("--ladder", action="append", default=[], metavar="NAME", help="a ladder to include (repeatable)")
    p.add_argument("--compare", action="append", default=[], metavar="A:B", help="a comparison to include")
    p.add_argument("--submission", action="append", default=[], metavar="NAME", help="submissions to include "
                   "(default: all)")
    p.add_argument("--notes", help="a Markdown file of notes: '## Section' headings, the team's words under each")
    p.add_argument("--title", default="Mask classification: wrap-up report")
    p.add_argument("--no-markdown", action="store_true", help="only the HTML file")
    p.add_argument("--out", default="report.html")


def read_notes(path: str | None) -> dict[str, str]:
    """Notes by section from a Markdown file (bounded, regular, UTF-8): the text under each '## Title' heading; a
    section given twice keeps both texts, in order."""
    from maskcls.wrapup.document import parse_notes
    from maskcls.common.fileio import LIMITS, read_text_file
    if not path:
        return {}
    try:
        text = read_text_file(path, "--notes", LIMITS["notes"])
    except UnicodeDecodeError:
        raise ValueError(f"--notes {path!r} is not UTF-8 text; expected a Markdown file of '## Section' notes") \
            from None
    except (OSError, ValueError) as e:
        raise ValueError(f"--notes {path!r} cannot be read ({getattr(e, 'strerror', None) or e}); expected a Markdown "
                         f"file of '## Section' notes") from None
    return parse_notes(text, f"--notes {path!r}")


def cmd_report(args) -> int:
    import time

    from maskcls.wrapup.document import ReportRequest
    from maskcls.wrapup.render import write_report
    t0 = time.perf_counter()
    request = ReportRequest(args.runs, args.ladder, args.compare, args.submission, read_notes(args.notes), args.title,
                            read_files=[args.notes] if args.notes else [])
    result = write_report(runs_root_of(args), request, args.out, markdown=not args.no_markdown)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    emit(result, args.json, f"wrote {result['html']} ({result['bytes'] / 1e6:.1f} MB)"
         + (f" and {result['markdown']} with {len(result['figures'])} figures" if "markdown" in result else "")
         + f" in {result['seconds']} s")
    return 0


def cmd_list(args) -> int:
    from maskcls.orchestration.run_index import filter_rows, index_rows, parse_where, sort_rows
    if args.f1 is not None and not (0 <= args.f1[0] <= args.f1[1] <= 1):
        raise ValueError(f"--f1 is LOW HIGH with 0 <= LOW <= HIGH <= 1, got {args.f1[0]:g} {args.f1[1]:g}")
    if args.limit < 0:
        raise ValueError(f"--limit is 0 (all) or more, got {args.limit}")
    from maskcls.common.jobfolder import DAMAGED, STATES
    from maskcls.train.config import did_you_mean
    from pathlib import Path
    if not Path(runs_root_of(args)).is_dir():
        if getattr(args, "runs_root", None):  # a folder the user named that is not there: a typo, said
            raise ValueError(f"--runs-root {args.runs_root!r} does not exist: no runs root there (`maskcls train` "
                             f"creates one with its first run)")
        emit([], args.json, f"no runs yet: the runs root {runs_root_of(args)} does not exist (`maskcls train` "
                            f"creates it)")
        return 0
    for state in args.state:  # a state no run can be in matches nothing: said, not an empty list
        if state not in STATES + (DAMAGED,):
            raise ValueError(f"--state {state!r} is no run state{did_you_mean(state, STATES)}; the states are: "
                             f"{', '.join(STATES + (DAMAGED,))}")
    rows = filter_rows(index_rows(runs_root_of(args)), text=args.name, states=args.state, kinds=args.kind,
                       where=parse_where(args.where), f1=tuple(args.f1) if args.f1 else None)
    rows = sort_rows(rows, args.sort)[: args.limit or None]
    text = "\n".join(f"{r['name']:36s} {r['state']:10s} {str(r['model']):18s} " +
                     (f"{r['best macro F1']:.4f}" if r["best macro F1"] is not None else "     -") +
                     (f" [{r['F1 low']:.4f}, {r['F1 high']:.4f}]" if r.get("F1 low") is not None else "") +
                     f"  {r['disk MB']:.1f} MB" + (f"  ({str(r['error'])[:100]})" if r.get("error") else "")
                     for r in rows) or "no run matches"
    emit(rows, args.json, text)
    return 0


def cmd_du(args) -> int:
    from maskcls.orchestration.prune import disk_use
    use = disk_use(runs_root_of(args))
    lines = [f"{r['run']:36s} {r['state']:10s} {r['mb']:10.1f} MB  ({r['reclaimable_mb']:.1f} MB in epoch files "
             f"and last.pt)" for r in use["runs"]]
    lines.append(f"total {use['total_mb']:.1f} MB in {len(use['runs'])} runs (+ {use['other_mb']:.1f} MB of "
                 f"submissions, corrections, sweeps and ladders); a prune frees {use['prunable_mb']:.1f} MB; "
                 f"{use['free_mb'] / 1e3:.1f} GB free of {use['disk_mb'] / 1e3:.1f} GB on this disk")
    emit(use, args.json, "\n".join(lines))
    return 0


def cmd_prune(args) -> int:
    from maskcls.orchestration.prune import prune
    if args.keep_best < 0:
        raise ValueError(f"--keep-best is a number of runs, 0 or more, got {args.keep_best}")
    plan = prune(runs_root_of(args), keep_best=args.keep_best, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    lines = [f"{verb} {r}/{f} ({b / 1e6:.1f} MB)" for r, f, b in plan.remove]
    lines += [f"kept {r}/{f}: {why}" if f != "*" else f"kept {r} whole: {why}" for r, f, why in plan.keep]
    lines.append(f"{verb} {len(plan.remove)} files, {plan.bytes / 1e6:.1f} MB" + (" (dry run: nothing changed)"
                                                                                   if args.dry_run else ""))
    emit(plan.as_dict(), args.json, "\n".join(lines))
    return 0
