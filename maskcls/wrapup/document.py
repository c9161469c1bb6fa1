"""The wrap-up report: the team's experiments as one document, every macro F1 with its interval.

Built from what the runs root already holds (run summaries and intervals, validation predictions, ladders,
corrections files, submissions): nothing is retrained or predicted again. One HTML file that opens offline
(plotly.js inline, no request to any host) and a Markdown file with PNG figures beside it (matplotlib) for a wiki.
Each figure is captioned with the command that reproduces it.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from maskcls.common.runfolder import RunFolder

SECTIONS = ("Data", "Experiments", "Ladders", "Comparisons", "Best model", "Label review", "Submissions",
            "Environment")


@dataclass
class ReportRequest:
    """What goes in: runs (all finished ones when empty), ladders, A:B comparisons, submissions, notes by section."""

    runs: list[str] = field(default_factory=list)
    ladders: list[str] = field(default_factory=list)
    compares: list[str] = field(default_factory=list)
    submissions: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    title: str = "Mask classification: wrap-up report"
    read_files: list[str] = field(default_factory=list)  # files the request was read from (the notes): never an output


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # ("text", str) | ("table", DataFrame) | ("figure", fig, command)


def parse_notes(text: str, source: str = "notes") -> dict[str, str]:
    """The team's notes by section: the text under each '## Title' heading (a title must be one of SECTIONS); a
    section given twice keeps both texts in order; text before the first heading is refused (it has no place).
    Linear in the text's length."""
    notes: dict[str, list[str]] = {}
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        if current is None and line.strip() and not line.startswith("## "):
            raise ValueError(f"{source}, line {number}: text before the first '## Section' heading has no place in "
                             f"the report; put it under one of: {', '.join(SECTIONS)}")
        if line.startswith("## "):
            current = line[3:].strip()
            if current not in SECTIONS:
                raise ValueError(f"{source}: no section {current!r}; the sections are {', '.join(SECTIONS)}")
            notes.setdefault(current, [])
            if notes[current]:
                notes[current].append("")
        elif current:
            notes[current].append(line)
    return {k: "\n".join(v).strip() for k, v in notes.items() if "\n".join(v).strip()}


def f1_text(value, interval) -> str:
    """A macro F1 and its 95 % interval, the only way the report writes one."""
    if value is None:
        return "-"
    if not interval or interval[0] is None:
        return f"{value:.4f} (no interval: no validation predictions)"
    return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"


def _runs(runs_root, request: ReportRequest) -> list[dict]:
    from maskcls.orchestration.run_index import index_rows
    rows = [r for r in index_rows(runs_root) if r["best macro F1"] is not None]
    if request.runs:
        known = {r["name"] for r in rows}
        missing = [n for n in request.runs if n not in known]
        if missing:
            raise ValueError(f"no finished run with a validation F1 named {', '.join(map(repr, missing))} in "
                             f"{runs_root} (`maskcls runs list` shows them)")
        rows = [r for r in rows if r["name"] in request.runs]
    return sorted(rows, key=lambda r: -r["best macro F1"])


def data_section(runs: list[dict], runs_root) -> Section:
    from maskcls.wrapup import charts
    from maskcls.data.index import index_data
    from maskcls.data.labels import AgeBounds
    from maskcls.train.config import run_config
    sec = Section("Data")
    try:
        cfg = run_config(RunFolder.open(runs_root, runs[0]["name"])).to_dict() if runs else {}
    except ValueError as e:
        sec.blocks.append(("text", f"No data section: {e}"))
        return sec
    root = cfg.get("data_root")
    if not root or not Path(root).is_dir():
        sec.blocks.append(("text", f"The data root {root!r} of the runs is not on this machine: no data section."))
        return sec
    index = index_data(root)
    bounds = AgeBounds(cfg.get("age_lower", 30), cfg.get("age_upper", 60))
    table = charts.class_count_table(index.train, bounds)
    split = charts.split_comparison(index.train, cfg.get("val_ratio", 0.2), cfg.get("split_seed", 42))
    leak = split["random image split"]["leaked_people"]
    sec.blocks += [("text", f"{index.train['person_id'].nunique():,} people, {len(index.train):,} training photos, "
                            f"{len(index.eval):,} eval photos; the largest class is "
                            f"{charts.imbalance_ratio(table['images']):.1f}x the smallest. A random image split would "
                            f"put {leak:,} people's photos on both sides (a leak); the person-level split puts none."),
                   ("figure", charts.class_count_figure(table), f"maskcls scan {root}")]
    for name, fig in charts.attribute_figures(index.train, bounds).items():
        sec.blocks.append(("figure", fig, f"maskcls scan {root} --json  # {name}"))
    return sec


def experiments_section(runs: list[dict], runs_root) -> Section:
    from maskcls.orchestration.compare import config_diff
    sec = Section("Experiments")
    if not runs:
        sec.blocks.append(("text", "No finished run with validation predictions."))
        return sec
    from maskcls.common.settings import own_member_name
    diff = config_diff(runs_root, [r["name"] for r in runs])
    me = own_member_name()
    rows = []
    for r in runs:
        changed = {k: diff.loc[k, r["name"]] for k in diff.index} if not diff.empty else {}
        rows.append({"run": r["name"], "member": r.get("member") or me, "model": r["model"],
                     "macro F1 [95 % interval]": f1_text(r["best macro F1"], [r["F1 low"], r["F1 high"]]),
                     "selection-free F1": f"{r['F1 selection-free']:.4f}" if r.get("F1 selection-free") else "-",
                     "config": config_text(changed, runs_root)})
    sec.blocks += [("text", "Each run's best-epoch validation macro F1 with its 95 % interval over people (all of a "
                            "person's photos resampled together); the config column lists the keys that differ "
                            "between the runs shown."),
                   ("table", pd.DataFrame(rows), "maskcls runs list --sort f1 --json")]
    return sec


def config_text(changed: dict, runs_root, limit: int = 300) -> str:
    """The keys that differ, as KEY=VALUE pairs a person reads: an augmentation spec by its name, other objects
    shortened, and cut between pairs (never in the middle of one) with a count of what did not fit."""
    import ast

    from maskcls.augment.spec import describe_augment
    pairs = []
    for k, v in changed.items():
        if k == "name":
            continue
        text = str(v)
        if text.startswith("{"):
            try:
                value = ast.literal_eval(text)
                text = describe_augment(value, runs_root) if k == "augment" else "{…}"
            except (ValueError, SyntaxError):
                text = "{…}"
        pairs.append(f"{k}={text}")
    out = []
    for i, pair in enumerate(pairs):
        if len(", ".join(out + [pair])) > limit:
            return ", ".join(out) + f", … (+{len(pairs) - i} more)"
        out.append(pair)
    return ", ".join(out)


def ladder_section(runs_root, ladders: list[str]) -> Section:
    from maskcls.wrapup import charts
    from maskcls.orchestration.ladder_report import ladder_status
    sec = Section("Ladders")
    if not ladders:
        sec.blocks.append(("text", "No ladder chosen."))
    for name in ladders:
        s = ladder_status(runs_root, name)
        rungs = pd.DataFrame([{"rung": r["rung"], "step": r["step"], "runs": len(r["runs"]),
                               "macro F1 [95 % interval]": f1_text(r["macro_f1"], r["interval"])} for r in s["rungs"]])
        steps = pd.DataFrame([{"step": x["step"], "verdict": x.get("verdict", "not trained yet"),
                               "gain": x.get("line", "-")} for x in s["steps"]])
        sec.blocks += [("text", f"Ladder {name} ({s['mode']}, {s['seeds']} seed(s) a rung)."
                                + (f" {s['caution']}" if s.get("caution") else "")),
                       ("table", rungs, f"maskcls ablate status {name}"), ("table", steps, f"maskcls ablate status {name}"),
                       ("figure", charts.waterfall_figure(s["steps"], s["rungs"][0]["macro_f1"], f"Ladder {name}"),
                        f"maskcls ablate status {name} --json")]
    return sec


def comparison_section(runs_root, compares: list[str]) -> Section:
    from maskcls.wrapup import charts
    from maskcls.data.labels import class_names
    from maskcls.orchestration.compare import compare_refs
    from maskcls.train.comparison import explain
    sec = Section("Comparisons")
    if not compares:
        sec.blocks.append(("text", "No comparison chosen."))
    for pair in compares:
        a, sep, b = pair.partition(":")
        if not sep or not a or not b:
            raise ValueError(f"--compare is A:B (two runs or groups), got {pair!r}")
        c = compare_refs(runs_root, a, b)
        sec.blocks += [("text", f"**{b} against {a}**: {c['verdict']}. " + " ".join(explain(c))),
                       ("figure", charts.class_difference_figure(c["per_class"], class_names(), f"{b} - {a}"),
                        f"maskcls compare {a} {b}")]
    return sec


def best_model_section(runs: list[dict], runs_root) -> Section:
    from maskcls.wrapup import charts
    from maskcls.data.labels import class_names, short_class_names
    from maskcls.infer.evaluation import report
    sec = Section("Best model")
    best = preds = None
    skipped = []
    for r in runs:  # the best run whose predictions can be read; the others named, never "Not built"
        try:
            preds = RunFolder.open(runs_root, r["name"]).read_predictions()
        except (OSError, ValueError) as e:
            skipped.append(f"{r['name']} ({e})")
            continue
        if preds is not None:
            best = r
            break
        skipped.append(f"{r['name']} (no validation predictions)")
    if skipped:
        sec.blocks.append(("text", "Skipped for the best model: " + "; ".join(skipped)[:1500]))
    if best is None:
        sec.blocks.append(("text", "No run with validation predictions."))
        return sec
    r = report(preds)
    from maskcls.infer.evaluation import prediction_intervals
    intervals = prediction_intervals(RunFolder.open(runs_root, best["name"]), preds)  # these predictions' own
    exp = intervals.get("expected_test_f1")
    sec.blocks += [("text", f"{best['name']}: macro F1 {f1_text(best['best macro F1'], [best['F1 low'], best['F1 high']])}"
                            f" on {preds['person_id'].nunique()} validation people"
                            + (f"; expected eval macro F1 [{exp[0]:.4f}, {exp[1]:.4f}] (an unseen set the eval "
                               f"set's size)" if exp else "") + "."),
                   ("figure", charts.confusion_figure(r["confusion"], short_class_names(), False,
                                                      f"Confusion of {best['name']}", class_names()),
                    f"maskcls evaluate {best['name']}"),
                   ("figure", charts.per_class_f1_figure(r["per_class"], class_names(),
                                                         intervals.get("per_class_f1_ci")),
                    f"maskcls evaluate {best['name']} --json")]
    sec.blocks += worst_errors(runs_root, best["name"], preds)
    return sec


def worst_errors(runs_root, name: str, preds, n: int = 3) -> list:
    """Grad-CAM of the run's `n` most confident errors (the photo, the map of the predicted class, of the true
    class), when the photos and best.pt are on this machine; otherwise a line saying why not."""
    from maskcls.common.checkpoints import CheckpointError, load_checkpoint
    from maskcls.data.imageio import ImageError, resolve_image
    from maskcls.data.labels import class_names
    from maskcls.infer.members import build_model
    from maskcls.models.cam import explain_image
    from maskcls.train.config import RunConfig, run_config
    probs = preds[[f"p{i}" for i in range(18)]].to_numpy()
    wrong = preds.assign(predicted=probs.argmax(1), confidence=probs.max(1))
    wrong = wrong[wrong["predicted"] != wrong["label"]].sort_values("confidence", ascending=False).head(n)
    if wrong.empty:
        return [("text", "No validation error to explain.")]
    try:
        run = RunFolder.open(runs_root, name)
        data_root = run_config(run).data_root  # this machine's data root (a pulled run's is re-based)
        ckpt = load_checkpoint(run.best_path)
        cfg = RunConfig.from_dict(ckpt["config"])
        model, names = build_model(ckpt, cfg, f"{name}:best.pt"), class_names()
        out = [("text", f"Grad-CAM of {name}'s {len(wrong)} most confident errors (left to right: the photo as the "
                        f"model sees it, the map of the predicted class, of the true class).")]
        for row in wrong.itertuples():
            views, captions = explain_image(model, cfg, resolve_image(data_root, row.path),
                                            [(int(row.predicted), "predicted"), (int(row.label), "true")])
            out.append(("images", views, f"{row.path.split('/')[-2]}/{row.path.split('/')[-1]}: predicted "
                                         f"{names[int(row.predicted)]} ({row.confidence:.2f}), true "
                                         f"{names[int(row.label)]}", f"the Evaluate page: {name}, its confusion cell"))
        return out
    except (CheckpointError, ImageError, OSError, ValueError) as e:
        return [("text", f"No Grad-CAM of the worst errors: {e}")]


def review_section(runs_root, runs: list[dict] | None = None) -> Section:
    """The corrections files: the runs root's own (the review queue's) and each one a run in the report trained
    with (a pulled run's travels with it), with what each accepted and rejected."""
    from maskcls.data.corrections import list_saved_corrections, load_corrections, reviewed_ids
    sec = Section("Label review")
    files = {Path(p).resolve(): Path(p).stem for p in list_saved_corrections(runs_root)}
    for r in runs or []:
        used = (r.get("config") or {}).get("corrections")
        if used and used not in ("none", "community") and Path(used).is_file():
            files.setdefault(Path(used).resolve(), f"{Path(used).stem} (used by {r['name']})")
    rows = []
    for path, name in files.items():
        try:
            accepted, rejected = reviewed_ids(path)
            table = load_corrections(path)
        except (OSError, ValueError) as e:
            sec.blocks.append(("text", f"Corrections file {name} cannot be read, left out: {e}"))
            continue
        rows.append({"corrections file": name, "accepted": len(accepted), "rejected": len(rejected),
                     "gender changed": int((table["gender"] != "").sum()), "age changed": int((table["age"] != "").sum()),
                     "mask swapped": int((table["swap_mask"] == "1").sum())})
    sec.blocks.append(("table", pd.DataFrame(rows), "maskcls review RUN --json") if rows else
                      ("text", "No corrections file: no label was reviewed."))
    return sec


def submission_section(runs_root, names: list[str]) -> Section:
    from maskcls.orchestration.submissions import list_submissions
    sec = Section("Submissions")
    subs = [s for s in list_submissions(runs_root) if not names or s.get("name") in names]
    rows = []
    for s in subs:
        score = s.get("score") or {}
        rows.append({"submission": s.get("name"), "state": s.get("state"), "method": s.get("method"),
                     "TTA": "flip" if s.get("tta") else "none", "members": ", ".join(s.get("members", [])),
                     "demo score (macro F1 [95 % interval])": f1_text(score.get("macro_f1"), score.get("macro_f1_ci"))
                     if score else "-"})
    sec.blocks.append(("table", pd.DataFrame(rows), "maskcls submissions --json") if rows else
                      ("text", "No submission chosen or made."))
    for s in subs:
        for m in s.get("members", [])[:1]:
            try:
                exp = (RunFolder.open(runs_root, m.split(":")[0]).read_intervals() or {})
            except ValueError:
                continue  # a member run since deleted: the submission's row says what it was
            if exp.get("expected_test_f1"):
                lo, hi = exp["expected_test_f1"]
                sec.blocks.append(("text", f"{s.get('name')}: its first member's expected eval macro F1 [{lo:.4f}, "
                                           f"{hi:.4f}]; the public and private halves can differ by up to "
                                           f"{exp.get('public_private_gap_abs', float('nan')):.4f}."))
    sec.blocks += leaderboard_blocks(runs_root, names)
    return sec


def leaderboard_blocks(runs_root, names: list[str]) -> list:
    """The leaderboard log: validation F1 with its interval beside each recorded public score, the expected private
    range, and the two finals with the reasons."""
    from maskcls.wrapup import charts
    from maskcls.orchestration.leaderboard import leaderboard
    board = leaderboard(runs_root)
    rows = [r for r in board["rows"] if (not names or r["name"] in names) and r.get("public") is not None]
    if not rows:
        return [("text", "Leaderboard log: no public score recorded (`maskcls submissions score NAME 0.7812`).")]
    table = pd.DataFrame([{"submission": r["name"], "validation macro F1 [95 % interval]": f1_text(r["val_f1"],
                                                                                                   r["val_ci"]),
                           "public": f"{r['public']:.4f}",
                           "expected private [95 % range]": f1_text(r["private"]["expected"], r["private"]["range"])
                           if r["private"] else "-"} for r in rows])
    finals = " ".join(f"{'Not chosen' if f.get('not_chosen') else 'Final'}: **{f['name']}**, {f['why']}."
                      for f in board["finals"])
    return [("text", f"Leaderboard log ({board['public_people']} of the {board['eval_people']} eval people on the "
                     f"public board). {finals}"),
            ("table", table, "maskcls submissions leaderboard --json"),
            ("figure", charts.leaderboard_figure(rows), "maskcls submissions leaderboard --json")]


def environment_section(runs: list[dict], runs_root) -> Section:
    import timm
    import torch

    from maskcls import __version__
    sec = Section("Environment")
    prints = {}
    for r in runs[:20]:
        origin = RunFolder.open(runs_root, r["name"]).pulled() or {}
        prints[r["name"]] = (origin.get("data_fingerprint") or "-", origin.get("split_fingerprint") or "-")
    sec.blocks.append(("table", pd.DataFrame([{"maskcls": __version__, "torch": torch.__version__,
                                               "timm": timm.__version__, "python": platform.python_version(),
                                               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                                               else "CPU"}]), "maskcls --help"))
    if any(v != ("-", "-") for v in prints.values()):
        sec.blocks.append(("table", pd.DataFrame([{"run": k, "data fingerprint": v[0], "split fingerprint": v[1]}
                                                  for k, v in prints.items()]), "maskcls team list --json"))
    return sec


def check_request(runs_root, request: ReportRequest) -> None:
    """What the request names exists, before any section is built: an unknown submission, ladder or a comparison
    that is not A:B is refused by name (never a report that quietly leaves it out)."""
    from maskcls.orchestration.ladder import list_ladders
    from maskcls.orchestration.submissions import list_submissions
    known = {s.get("name") for s in list_submissions(runs_root)} if request.submissions else set()
    unknown = [n for n in request.submissions if n not in known]
    if unknown:
        raise ValueError(f"no submission named {', '.join(map(repr, unknown))} in {runs_root} (submissions: "
                         f"{', '.join(sorted(map(str, known))) or 'none yet'})")
    ladders = set(list_ladders(runs_root)) if request.ladders else set()
    missing = [n for n in request.ladders if n not in ladders]
    if missing:
        raise ValueError(f"no ladder named {', '.join(map(repr, missing))} in {runs_root} (ladders: "
                         f"{', '.join(sorted(ladders)) or 'none yet'})")
    for pair in request.compares:
        a, sep, b = pair.partition(":")
        if not sep or not a or not b:
            raise ValueError(f"--compare is A:B (two runs or groups), got {pair!r}")


def build_report(runs_root, request: ReportRequest) -> list[Section]:
    """Every section, in the order the team's wrap-up uses."""
    check_request(runs_root, request)
    runs = _runs(runs_root, request)
    return [data_section(runs, runs_root), experiments_section(runs, runs_root),
            ladder_section(runs_root, request.ladders), comparison_section(runs_root, request.compares),
            best_model_section(runs, runs_root), review_section(runs_root, runs),
            submission_section(runs_root, request.submissions), environment_section(runs, runs_root)]
