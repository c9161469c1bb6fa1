"""Inference commands: evaluate a run, predict the eval set (a submission), list or cancel submissions, and the
review queue of likely label errors."""
from __future__ import annotations

import argparse
import os
import sys

from maskcls.cli.common import add, emit, runs_root_of, when
from maskcls.infer.methods import METHODS


def register(sub, parents) -> None:
    p = add(sub, "evaluate", cmd_evaluate, "accuracy, macro F1 and per-class precision / recall / F1 of a run on its "
            "validation split", parents.of("runs_root", "json"))
    p.add_argument("run", help="a run name (in the runs root) or a run folder path")
    p.add_argument("--checkpoint", default="best.pt")
    p.add_argument("--device", default="cpu")
    p.add_argument("--tune", action="store_true", help="fit per-class biases for macro F1 and save them with the run")

    p = add(sub, "predict", cmd_predict, "predict the eval set with one model or an ensemble; writes the submission "
            "CSV", parents.of("runs_root", "quiet"))
    p.add_argument("--data", help="data root holding eval/info.csv and eval/images")
    p.add_argument("--members", nargs="+", metavar="RUN[:CKPT[:WEIGHT]]",
                   help="checkpoints of any runs (RUN: a run name or a run folder path); for soups, several epochs "
                        "of one run work too (RUN:epoch_005.pt); WEIGHT > 0")
    p.add_argument("--method", choices=METHODS, default="soft",
                   help="soft / hard voting, soup (uniform or weighted weight average) or greedy-soup (picks its "
                        "checkpoints on the members' validation split)")
    p.add_argument("--tta", choices=["none", "flip"], default="none")
    p.add_argument("--out", default="submission.csv")
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-dir", default=None, help="decoded-image cache (default <data>/.maskcls-cache)")
    p.add_argument("--folds", metavar="NAME", default=None, help="the fold runs NAME-fold1..K as members (the fold "
                   "ensemble of `train --folds K --name NAME`)")
    p.add_argument("--validate", action="store_true", help="also score members and ensemble on validation")
    p.add_argument("--tuned", action="store_true", help="apply each run's saved macro-F1 class biases")
    p.add_argument("--background", metavar="NAME", default=None,
                   help="run as a background job <runs-root>/submissions/NAME (see `maskcls submissions`)")

    subs = sub.add_parser("submissions", aliases=["predictions"], parents=parents.of("runs_root", "json"),
                          help="background submissions (`predict --background NAME`): list them or cancel one",
                          description="background submissions (`predict --background NAME`): list them or cancel one")
    subs.set_defaults(func=cmd_submissions_list)
    subs.add_argument("--cancel", metavar="NAME", default=None, help=argparse.SUPPRESS)  # the old spelling
    acts = subs.add_subparsers(dest="action")
    add(acts, "list", cmd_submissions_list, "list submissions, newest first", parents.of("runs_root", "json"))
    p = add(acts, "cancel", cmd_submissions_cancel, "cancel a queued or running submission", parents.of("runs_root"))
    p.add_argument("name", help="a submission name or its folder path (<runs root>/submissions/NAME)")
    register_leaderboard(acts, parents)
    register_review(sub, parents)


def register_leaderboard(acts, parents) -> None:
    """`submissions score` and `submissions leaderboard`: the leaderboard log."""
    p = add(acts, "score", cmd_submissions_score, "record a submission's public leaderboard score (or every score "
            "of the platform's CSV); its validation score is computed once beside it", parents.of("runs_root", "json"))
    p.add_argument("name", nargs="?", help="the submission")
    p.add_argument("score", nargs="?", help="its public macro F1, e.g. 0.7812")
    p.add_argument("--from-csv", metavar="CSV", help="the platform's CSV of submissions: a name (or file name) "
                   "column and a public score column")
    p.add_argument("--device", default="auto", help="device for scoring the ensemble on validation once")
    p = add(acts, "leaderboard", cmd_submissions_leaderboard, "every submission's validation F1 and interval, public "
            "score, expected private range, and which two to choose as final", parents.of("runs_root", "json"))
    p.add_argument("--public-share", type=float, default=0.5, help="the part of the eval people the public board "
                   "scores (default 0.5)")


def register_review(sub, parents) -> None:
    p = add(sub, "review", cmd_review, "the review queue of likely label errors: list it, accept or reject a "
            "suggestion", parents.of("runs_root", "json"))
    p.add_argument("ref", metavar="RUN|GROUP", help="a run (its validation predictions) or a fold group NAME (its "
                   "out-of-fold table: the best source)")
    p.add_argument("--borderline", action="store_true", help="list the age suggestions at a band bound instead")
    p.add_argument("--distance", type=int, default=None, help="borderline distance in years below each bound (the "
                   "bound itself always counts; default: the run's drop_borderline, at least 1)")
    p.add_argument("--into", default="reviewed", help="corrections file <runs root>/corrections/NAME.csv (default "
                   "reviewed, as the Evaluate page)")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--accept", metavar="PERSON", nargs="+", help="write each PERSON's suggested correction into "
                     "the file (one decision: --undo puts them all back)")
    act.add_argument("--reject", metavar="PERSON", nargs="+", help="leave each PERSON as labelled (not offered again)")
    act.add_argument("--undo", action="store_true", help="put back what the last --accept or --reject replaced")


def cmd_evaluate(args) -> int:
    from maskcls.common.runfolder import RunFolder, probs_of
    from maskcls.data.labels import class_names
    from maskcls.infer.evaluation import prediction_intervals, report, save_bias, tune_biases, validation_predictions
    from maskcls.train.intervals import selection_lines
    run = RunFolder.open(runs_root_of(args), args.run)
    preds = validation_predictions(run.root, run.name, args.checkpoint, args.device)
    r = report(preds)
    out = {"run": run.name, "path": str(run.path), "checkpoint": args.checkpoint, "source": preds.attrs.get("source"),
           "images": len(preds), "accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "per_class": r["per_class"],
           "attributes": {k: {"accuracy": v["accuracy"], "macro_f1": v["macro_f1"]} for k, v in r["attributes"].items()}}
    ci = prediction_intervals(run, preds)
    out.update({k: ci[k] for k in ("macro_f1_ci", "per_class_f1_ci", "people", "resamples", "level")})
    out.update({k: ci[k] for k in ("expected_test_f1", "expected_test_f1_best_epoch", "test_people",
                                   "public_private_gap", "public_private_gap_abs", "selection_free",
                                   "selection_optimism") if k in ci})
    if args.tune:
        bias, before, after = tune_biases(probs_of(preds), preds["label"].to_numpy())
        save_bias(run.root, run.name, bias, before=before, after=after, checkpoint=args.checkpoint)
        out["tuned"] = {"macro_f1_before": before, "macro_f1_after": after, "bias": [round(b, 3) for b in bias]}
    names = class_names()
    lines = [f"{run.name} ({args.checkpoint}), {len(preds)} validation images: {out['source']}",
             f"accuracy  {r['accuracy']:.4f}",
             f"macro F1  {r['macro_f1']:.4f}  (95 % interval over {ci['people']} people: {ci['macro_f1_ci'][0]:.4f} to "
             f"{ci['macro_f1_ci'][1]:.4f})"]
    lines += selection_lines(ci)
    if "expected_test_f1" in ci:
        lines.append(f"on an unseen set of {ci['test_people']} people: {ci['expected_test_f1'][0]:.4f} to "
                     f"{ci['expected_test_f1'][1]:.4f}" + (" (moved down by that optimism)" if "selection_free" in ci
                                                           else "") + "; its public and private halves may differ by "
                     f"up to {ci['public_private_gap_abs']:.4f}")
    lines.append(f"{'class':>5} {'name':28s} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>7}")
    lines += [f"{c['class']:5d} {names[c['class']]:28s} {c['precision']:9.4f} {c['recall']:7.4f} {c['f1']:7.4f} "
              f"{c['support']:7d}" for c in r["per_class"]]
    if args.tune:
        lines.append(f"tuned class biases: macro F1 {out['tuned']['macro_f1_before']:.4f} -> "
                     f"{out['tuned']['macro_f1_after']:.4f} (saved with the run)")
    emit(out, args.json, "\n".join(lines))
    return 0


def _members(args, runs_root: str) -> list:
    from maskcls.infer.members import Member
    if not args.data or not (args.members or args.folds):
        raise ValueError("predict needs --data ROOT and --members RUN[:CKPT] ... (or --folds NAME)")
    members = [Member.parse(m) for m in args.members or []]
    if args.folds:
        from maskcls.orchestration.groups import fold_member_refs
        members += [Member(r) for r in fold_member_refs(runs_root, args.folds)]
    return members


def cmd_predict(args) -> int:
    runs_root = runs_root_of(args)
    members = _members(args, runs_root)
    if args.background:
        return predict_background(args, runs_root, members)
    from maskcls.common.devices import resolve_device
    from maskcls.common.progress import TerminalProgress
    from maskcls.common.settings import default_cache_dir
    from maskcls.infer.ensemble import predict_submission, score_members
    from maskcls.infer.demo_score import describe_demo_score
    from maskcls.infer.submission import check_output
    check_output(args.out, args.data, runs_root)
    progress = TerminalProgress(args.quiet)
    device = resolve_device(args.device)
    cache_dir = default_cache_dir(args.data, args.cache_dir)
    tta = args.tta == "flip"
    if args.validate:
        table, notes, _ = score_members(runs_root, members, args.method, device, cache_dir, tta=tta,
                                        progress=progress.fraction("validation"))
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if table.attrs.get("verdict"):
            print("ensemble against its best member:", table.attrs["verdict"]["text"])
        for n in notes:
            print("note:", n)
    r = predict_submission(args.data, runs_root, members, args.method, args.out, device=device, tta=tta,
                           tuned=args.tuned, cache_dir=cache_dir, progress=progress.fraction("predicting"))
    progress.close()
    if "chosen" in r:
        print(r["greedy_steps"].to_string(index=False))
        print(f"greedy soup: {len(r['chosen'])} of {len(members)} checkpoints kept "
              f"(validation macro F1 {r['greedy_val_f1']:.4f}): {', '.join(r['chosen'])}")
        for n in r["notes"]:
            print("note:", n)
    s = r["seconds"]
    print(f"wrote {r['csv']} ({r['rows']} rows) and {r['probs_csv']} in {s['total']:.1f}s (decoding "
          f"{s['decode']:.1f}s, models {s['models']:.1f}s)")
    if r["score"]:
        print(f"score against the demo's hidden labels: {describe_demo_score(r['score'])}")
    return 0


def predict_background(args, runs_root: str, members: list) -> int:
    from maskcls.orchestration.submissions import SubmissionRequest, start_submission
    req = SubmissionRequest(os.path.abspath(args.data), [m.absolute() for m in members], args.method,
                            args.tta == "flip", args.tuned, args.device,
                            os.path.abspath(args.cache_dir) if args.cache_dir else None)
    job = start_submission(req, runs_root, args.background)
    print(f"{job.name}: started; `maskcls submissions` shows it, the CSV will be {job.csv_path}")
    return 0


def submission_ref(runs_root: str, ref: str) -> tuple[str, str]:
    """(runs root, name) of a submission given by name or by its folder path (<runs root>/submissions/NAME)."""
    from maskcls.common.runfolder import run_folder_path
    from maskcls.orchestration.submissions import FOLDER
    path = run_folder_path(os.path.join(runs_root, FOLDER), ref)
    if path is None:
        return runs_root, ref
    if path.parent.name != FOLDER:
        raise ValueError(f"{ref!r} is not a submission folder: expected <runs root>/{FOLDER}/NAME")
    return str(path.parent.parent), path.name


def cmd_submissions_list(args) -> int:
    if getattr(args, "cancel", None):  # `predictions --cancel NAME`, the spelling before `submissions cancel NAME`
        print("note: `--cancel NAME` is the old spelling; use `maskcls submissions cancel NAME`", file=sys.stderr)
        args.name = args.cancel
        return cmd_submissions_cancel(args)
    from maskcls.infer.demo_score import demo_interval_text
    from maskcls.orchestration.submissions import list_submissions
    rows = list_submissions(runs_root_of(args))

    def score(r: dict) -> str:  # the demo's score and its interval over eval people, as the page's table shows
        s = r.get("score")
        return f"  demo F1 {s['macro_f1']:.4f} [{demo_interval_text(s) or 'no interval'}]" if s else ""
    text = "\n".join(f"{r['name']:32s} {r.get('state', '?'):10s} {100 * r.get('progress', 0):5.1f}%  "
                     f"{when(r.get('submitted'))}  {r.get('stage', '')}" + score(r)
                     + (f"  {r['error']}" if r.get("error") else "") for r in rows) or "no submissions"
    emit(rows, args.json, text)
    return 0


def cmd_submissions_cancel(args) -> int:
    from maskcls.orchestration.submissions import cancel_submission
    root, name = submission_ref(runs_root_of(args), args.name)
    result = cancel_submission(root, name)
    print(f"{name}: {result['state']}" + "".join(f"\nnote: {n}" for n in result.get("notes", [])))
    return 0


def cmd_submissions_score(args) -> int:
    from maskcls.orchestration import leaderboard as lb
    runs_root = runs_root_of(args)
    if args.from_csv:
        if args.name or args.score:
            raise ValueError("give NAME SCORE or --from-csv CSV, not both")
        done = lb.import_platform_csv(runs_root, args.from_csv)
        names = done["recorded"]
    else:
        if not args.name or args.score is None:
            raise ValueError("expected NAME SCORE (e.g. `maskcls submissions score sub1 0.7812`) or --from-csv CSV")
        lb.check_score(args.score)
        lb.record_public(runs_root, args.name, args.score)
        names, done = [args.name], {"recorded": [args.name], "unmatched": []}
    for name in names:  # the validation side of the log: scored once per submission, kept beside it
        lb.submission_validation(runs_root, name, device=args.device)
    board = lb.leaderboard(runs_root)
    rows = [r for r in board["rows"] if r["name"] in names]
    emit({**done, "rows": rows}, args.json, "\n".join(_board_line(r) for r in rows)
         + "".join(f"\nnot matched: {u}" for u in done["unmatched"]))
    return 0


def _board_line(r: dict) -> str:
    val = f"validation {r['val_f1']:.4f} [{r['val_ci'][0]:.4f}, {r['val_ci'][1]:.4f}]" if r.get("val_ci") else \
        "validation -"
    pub = f"public {r['public']:.4f}" if r.get("public") is not None else "public -"
    p = r.get("private")
    priv = (f"expected private {p['expected']:.4f} [{p['range'][0]:.4f}, {p['range'][1]:.4f}]" if p else
            "expected private - (no validation interval or no eval set)")
    return f"{r['name']:28s} {val}  {pub}  {priv}"


def cmd_submissions_leaderboard(args) -> int:
    from maskcls.orchestration.leaderboard import leaderboard
    board = leaderboard(runs_root_of(args), public_share=args.public_share)
    lines = [_board_line(r) for r in board["rows"]] or ["no finished submission yet"]
    lines.append(f"eval set: {board['eval_people']} people, {board['public_people']} on the public board")
    lines += [f"{'not chosen' if f.get('not_chosen') else 'final'}: {f['name']}: {f['why']}" for f in board["finals"]]
    emit(board, args.json, "\n".join(lines))
    return 0


def cmd_review(args) -> int:
    from maskcls.orchestration import reviews
    review = reviews.open_review(runs_root_of(args), args.ref, into=args.into, distance=args.distance)
    if args.accept:
        rows = reviews.accept_many(review, args.accept)
        print("\n".join(f"{r['id']}: accepted into {review.file} ({r['note']})" for r in rows))
        return 0
    if args.reject:
        reviews.reject_many(review, args.reject)
        print("\n".join(f"{p}: rejected (kept as labelled; listed in {review.file.with_suffix('.rejected')})"
                        for p in dict.fromkeys(args.reject)))
        return 0
    if args.undo:
        print(f"undone: {', '.join(reviews.undo(review))} are as they were before the last decision")
        return 0
    q = review.queue
    table = review.pending.borderline if args.borderline else review.pending.main
    table = table.assign(why=[reviews.explain(r) for _, r in table.iterrows()])
    head = (f"{q.flagged} flagged of {q.scored} people scored ({len(q.main)} in the queue, {len(q.borderline)} "
            f"borderline ages within {q.distance} year(s) of a bound); {len(table)} pending in {review.file.name}; "
            f"from {review.source}" + (f"\nwarning: {review.warning}" if review.warning else ""))
    shown = ["person_id", "attribute", "given_name", "suggested_name", "score", "agreement", "typical", "images", "age"]
    lines = [f"{r.person_id}  {r.attribute}: {r.given_name or '-'} -> {r.suggested_name or 'swap'}  "
             f"score {r.score:.2f}: {r.why}" for r in table.itertuples()]
    emit({"ref": args.ref, "source": review.source, "scored": q.scored, "flagged": q.flagged,
          "warning": review.warning, "list": "borderline" if args.borderline else "main",
          "pending": table.to_dict("records"), "file": str(review.file)}, args.json,
         head + "\n" + (table[shown].to_string(index=False, na_rep="-") + "\n" + "\n".join(lines) if len(table)
                         else "nothing to review"))
    return 0
