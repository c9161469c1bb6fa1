"""The hostile-input harness: every file kind the project reads, mutated every way a hostile or broken input comes,
against every command that reads it (docs/reliability.md, "Trust boundaries").

The matrix is two lists: KINDS (where a file lives in a sandbox, its format, the commands that read it) and
COMMANDS (argv in the sandbox). A new command is covered by adding its row to COMMANDS and its name to the kinds it
reads; a new file kind by adding its row to KINDS. Every case must end in a clear message (exit 2, one short
error) or a skip (exit 0), never a traceback, a hang, a planted figure shown as real, or a write outside the
sandbox.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PLANT = 7.123456  # an out-of-range figure a mutation plants: it must never be shown as a real one
FORBIDDEN = (re.compile(r"7\.123"), re.compile(r"\bnan\b", re.I), re.compile(r"\binf(inity)?\b", re.I))
# a line that says what is wrong may quote the bad value ("progress must be from 0 to 1, found 7.123456")
EXPLAINS = re.compile(r"damaged|must be|is not|not a|expected|not shown|claim|refused|cannot|found", re.I)
CASE_SECONDS = 30  # a case that takes longer is a hang
MB = 2 ** 20


@dataclass(frozen=True)
class Kind:
    """One kind of file: where it lives in the sandbox, its format, the commands that read it, and whether it sits
    in a run folder (then a link out of the folder is refused, not followed)."""

    name: str
    path: str  # relative to the sandbox
    format: str  # json | jsonl | csv | text | checkpoint
    commands: tuple[str, ...]
    confined: bool = True
    limit: int = 16 * MB  # the reader's bound for this kind (a 'huge' file is one byte more)


@dataclass(frozen=True)
class Command:
    name: str
    argv: tuple[str, ...] = ()  # {R} runs root, {D} data root, {U} user files, {O} outputs, {I} an image
    slow: bool = False  # trains, predicts or builds a report: left out of the inner loop
    page: str = ""  # a studio page (AppTest) instead of a command line: the pages' library calls


COMMANDS = {c.name: c for c in [
    Command("runs list", ("runs", "list", "--sort", "f1", "--runs-root", "{R}")),
    Command("runs list --json", ("runs", "list", "--json", "--runs-root", "{R}")),
    Command("runs du", ("runs", "du", "--runs-root", "{R}")),
    Command("runs prune --dry-run", ("runs", "prune", "--dry-run", "--runs-root", "{R}")),
    Command("evaluate", ("evaluate", "done", "--runs-root", "{R}")),
    Command("evaluate pulled", ("evaluate", "alice/done", "--runs-root", "{R}")),
    Command("compare", ("compare", "done", "other", "--runs-root", "{R}")),
    Command("compare pulled", ("compare", "other", "alice/done", "--runs-root", "{R}")),
    Command("review", ("review", "done", "--runs-root", "{R}")),
    Command("submissions", ("submissions", "list", "--runs-root", "{R}")),
    Command("jobs list", ("jobs", "list", "--runs-root", "{R}")),
    Command("ablate status", ("ablate", "status", "lad", "--runs-root", "{R}")),
    Command("ablate list", ("ablate", "list", "--runs-root", "{R}")),
    Command("scan", ("scan", "{D}")),
    Command("scan --corrections", ("scan", "{D}", "--corrections", "{U}/corrections.csv")),
    Command("train --config", ("train", "--config", "{U}/config.json", "--runs-root", "{R}", "--name", "t1",
                               "--quiet")),
    Command("ablate create", ("ablate", "create", "lad2", "--base", "{U}/base.json", "--steps", "{U}/steps.json",
                              "--runs-root", "{R}")),
    Command("sweep create", ("sweep", "create", "sw", "--base", "{U}/base.json", "--space", "{U}/space.json",
                             "--runs-root", "{R}")),
    Command("augment save", ("augment", "save", "sp", "{U}/spec.json", "--runs-root", "{R}")),
    Command("augment preview", ("augment", "preview", "{I}", "--spec", "{U}/spec.json", "--n", "2", "--out",
                                "{O}/grid.png")),
    Command("predict", ("predict", "--data", "{D}", "--members", "done", "--tuned", "--out", "{O}/sub.csv",
                        "--runs-root", "{R}", "--quiet", "--device", "cpu"), slow=True),
    Command("report", ("report", "--runs", "done", "other", "--no-markdown", "--out", "{O}/r.html", "--runs-root",
                       "{R}"), slow=True),
    Command("report --notes", ("report", "--runs", "done", "--notes", "{U}/notes.md", "--no-markdown", "--out",
                               "{O}/r.html", "--runs-root", "{R}"), slow=True),
    Command("Runs page", page="pages/runs.py", slow=True),
    Command("Evaluate page", page="pages/evaluate.py", slow=True),
    Command("Ensemble page", page="pages/ensemble.py", slow=True),
    Command("Ladders page", page="pages/ladders.py", slow=True),
]}
PAGE_SHARE = 3  # a page draw costs seconds: each page row takes every third mutation (rotating over the kinds)

RUN = "runs/done"
KINDS = [
    Kind("config", f"{RUN}/config.json", "json", ("runs list", "evaluate", "compare", "review", "predict", "report",
                                                  "Runs page", "Evaluate page")),
    Kind("status", f"{RUN}/status.json", "json", ("runs list", "runs prune --dry-run", "compare", "jobs list",
                                                  "report", "Runs page")),
    Kind("metrics", f"{RUN}/metrics.jsonl", "jsonl", ("runs list", "runs list --json", "report", "Runs page"),
         limit=32 * MB),
    Kind("intervals", f"{RUN}/intervals.json", "json", ("runs list", "runs list --json", "evaluate", "report",
                                                        "Runs page", "Evaluate page")),
    Kind("predictions", f"{RUN}/val_predictions.csv", "csv", ("evaluate", "compare", "review", "report",
                                                              "Evaluate page"), limit=64 * MB),
    Kind("history", f"{RUN}/val_history.csv", "csv", ("evaluate", "report", "Evaluate page"), limit=64 * MB),
    Kind("class bias", f"{RUN}/class_bias.json", "json", ("predict",)),
    Kind("checkpoint", f"{RUN}/best.pt", "checkpoint", ("predict", "report"), limit=4 * 2 ** 30),
    Kind("used_by", f"{RUN}/used_by.json", "json", ("runs prune --dry-run",)),
    Kind("fingerprints", f"{RUN}/fingerprints.json", "json", ("compare", "runs list")),
    Kind("pulled marker", "runs/team/alice/done/.team.json", "json", ("runs list", "compare pulled",
                                                                       "evaluate pulled", "Runs page")),
    Kind("pulled predictions", "runs/team/alice/done/val_predictions.csv", "csv", ("compare pulled",
                                                                                   "evaluate pulled"), limit=64 * MB),
    Kind("run index", "runs/.run-index.json", "json", ("runs list", "runs du", "runs prune --dry-run", "Runs page",
                                                       "Ensemble page"), limit=64 * MB),
    Kind("accepted corrections", "runs/corrections/reviewed.csv", "csv", ("review",), limit=64 * MB),
    Kind("submission status", "runs/submissions/sub1/status.json", "json", ("submissions", "report",
                                                                             "Ensemble page")),
    Kind("submission request", "runs/submissions/sub1/request.json", "json", ("submissions", "report",
                                                                               "Ensemble page")),
    Kind("ladder", "runs/ladders/lad/ladder.json", "json", ("ablate status", "ablate list", "Ladders page")),
    Kind("info.csv", "data/eval/info.csv", "csv", ("predict", "scan"), confined=False, limit=64 * MB),
    Kind("labels.csv", "data/eval/labels.csv", "csv", ("predict",), confined=False, limit=64 * MB),
    Kind("corrections file", "user/corrections.csv", "csv", ("scan --corrections",), confined=False, limit=64 * MB),
    Kind("run config file", "user/config.json", "json", ("train --config",), confined=False),
    Kind("steps", "user/steps.json", "json", ("ablate create",), confined=False),
    Kind("space", "user/space.json", "json", ("sweep create",), confined=False),
    Kind("augment spec", "user/spec.json", "json", ("augment save", "augment preview"), confined=False),
    Kind("notes", "user/notes.md", "text", ("report --notes",), confined=False, limit=4 * MB),
]


# -- mutations: each takes (path, original bytes, kind) and leaves the hostile thing at `path` -----------------------
def _numbers(obj, new):
    """`obj` with every number (not bool) replaced by new() (a nested JSON value)."""
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, (int, float)):
        return new()
    if isinstance(obj, dict):
        return {k: _numbers(v, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_numbers(v, new) for v in obj]
    return obj


def _json_rows(data: bytes, fmt: str) -> list:
    text = data.decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()] if fmt == "jsonl" else [json.loads(text)]


def _dump(rows: list, fmt: str) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in rows).encode()
    return json.dumps(rows[0]).encode()


def _csv_cells(data: bytes, value: str) -> bytes:
    """Every numeric cell of the table's data rows set to `value` (the header kept)."""
    lines = data.decode("utf-8").splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        out.append(",".join(value if re.fullmatch(r"-?\d+(\.\d*)?(e-?\d+)?", c) else c for c in line.split(",")))
    return ("\n".join(out) + "\n").encode()


def _replace(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)  # never write through a hard link into the template
    path.write_bytes(data)


def _numbers_to(value):
    def apply(path, data, kind):
        if kind.format in ("json", "jsonl"):
            rows = [_numbers(r, lambda: value) for r in _json_rows(data, kind.format)]
            _replace(path, _dump(rows, kind.format))
        elif kind.format == "csv":
            _replace(path, _csv_cells(data, str(value).lower()))
        else:
            raise NotApplicable(f"a {kind.format} file holds no numbers to replace")
    return apply


def _wrong_types(path, data, kind):
    if kind.format in ("json", "jsonl"):
        rows = [({k: [v] for k, v in r.items()} if isinstance(r, dict) else {"x": r})
                for r in _json_rows(data, kind.format)]
        _replace(path, _dump(rows, kind.format))
    elif kind.format == "csv":
        _replace(path, b"alpha,beta\n1,2\nthree,4\n")
    elif kind.format == "checkpoint":
        import torch
        buf = io.BytesIO()
        torch.save({"format": "maskcls-checkpoint-1", "model": {"w": [1, 2]}, "config": [], "epoch": "x"}, buf)
        _replace(path, buf.getvalue())
    else:
        raise NotApplicable(f"a {kind.format} file has no types")


def _wrong_shape(path, data, kind):
    if kind.format not in ("json", "jsonl"):
        raise NotApplicable(f"a {kind.format} file has no JSON shape")
    _replace(path, b'[1, "two", null]\n' if kind.format == "json" else b'[1]\n"x"\n3\n')


def _huge(path, data, kind):
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(kind.limit + 1)  # sparse: no disk used


def _deep(path, data, kind):
    if kind.format not in ("json", "jsonl"):
        raise NotApplicable(f"a {kind.format} file does not nest")
    _replace(path, b"[" * 200_000 + b"]" * 200_000)


def _fifo(path, data, kind):
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _link(target):
    def apply(path, data, kind):
        path.unlink(missing_ok=True)
        path.symlink_to(target(path, data))
    return apply


def _outside(path: Path, data: bytes) -> Path:
    """A copy of the valid file outside the sandbox's roots (a run's file that is a link out of its folder)."""
    out = _sandbox_of(path).parent / "outside" / path.name
    out.parent.mkdir(exist_ok=True)
    if not out.exists():
        out.write_bytes(data)
    return out


def _sandbox_of(path: Path) -> Path:
    for p in path.parents:
        if p.name == "box":
            return p
    raise AssertionError(f"{path} is not in a sandbox")


def _out_of_root(path, data, kind):
    if not kind.confined:
        raise NotApplicable("a user's own file may be a link to anywhere: that is not hostile")
    _link(_outside)(path, data, kind)


def _unicode(path, data, kind):
    _replace(path, b"\xff\xfe\x00\xc3(" + "é\u202e\U0001f600 ".encode() + data[:64])


def _folder(path, data, kind):
    path.unlink(missing_ok=True)
    path.mkdir()


class NotApplicable(Exception):
    """This mutation means nothing for this format."""


MUTATIONS = {
    "truncated": lambda p, d, k: _replace(p, d[: max(1, len(d) // 2)]),
    "empty": lambda p, d, k: _replace(p, b""),
    "wrong types": _wrong_types,
    "wrong shape": _wrong_shape,
    "NaN": _numbers_to(float("nan")),
    "infinity": _numbers_to(float("inf")),
    "out of range": _numbers_to(PLANT),
    "huge": _huge,
    "deep nesting": _deep,
    "FIFO": _fifo,
    "/dev/zero": _link(lambda p, d: Path("/dev/zero")),
    "link out of the root": _out_of_root,
    "dangling link": _link(lambda p, d: p.parent / "no-such-file"),
    "unicode": _unicode,
    "a folder": _folder,
}


def cases(slow: bool):
    """(kind, mutation, command) of the matrix. The inner loop (`slow` False) takes a third of it, every kind and
    every mutation at least once, each against the kind's first fast command; the suite takes the rest."""
    for k, kind in enumerate(KINDS):
        fast = [c for c in kind.commands if not COMMANDS[c].slow]
        for m, mutation in enumerate(MUTATIONS):
            for command in kind.commands:
                inner = bool(fast) and command == fast[0] and (k + m) % 3 == 0
                if COMMANDS[command].page and (k + m) % PAGE_SHARE:
                    continue
                if inner != slow:
                    yield kind.name, mutation, command


# -- the sandbox -------------------------------------------------------------------------------------------------
def build_template(root: Path, tiny_run: tuple, demo_root: Path) -> Path:
    """Everything every kind's commands need, valid: runs done and other (another lr), a pulled alice/done, a
    1-rung ladder, a submission, accepted corrections, the run index, class biases, user files."""
    from dataclasses import asdict

    from maskcls.cli import main
    from maskcls.common.fileio import write_json
    from maskcls.common.runfolder import RunFolder
    from maskcls.data.labels import AgeBounds
    from maskcls.orchestration.ladder import Ladder, ladder_path
    from maskcls.orchestration.submissions import SubmissionRequest, create_submission
    from maskcls.orchestration.team.verify import verify_pulled
    runs, data, user = root / "runs", root / "data", root / "user"
    shutil.copytree(demo_root, data)
    src = tiny_run[0] / tiny_run[1]
    skip = shutil.ignore_patterns(".*.lock")
    shutil.copytree(src, runs / "done", ignore=skip)
    cfg = {**RunFolder(runs, "done").read_config(), "data_root": str(data), "cache_dir": ""}
    write_json(runs / "done" / "config.json", cfg)
    shutil.copytree(runs / "done", runs / "other")
    write_json(runs / "other" / "config.json", {**cfg, "lr": 0.002})
    partial = runs / "team" / "alice" / ".done.partial"
    shutil.copytree(runs / "done", partial)
    checked = verify_pulled(partial, data_root=str(data), corrections="none", bounds=AgeBounds(30, 60),
                            cfg=json.loads((partial / "config.json").read_text()))
    write_json(partial / ".team.json", {"member": "alice", "run": "done", "version": "v1", **checked})
    os.replace(partial, runs / "team" / "alice" / "done")
    ladder = Ladder("lad", cfg, "cumulative", [{"name": "lr up", "set": {"lr": 0.002}}], seeds=1)
    for n, _ in ladder.planned():
        shutil.copytree(runs / "done", runs / n)
    write_json(ladder_path(runs, "lad"), asdict(ladder))
    create_submission(SubmissionRequest(str(data), ["done"], "soft", cache_dir=str(root / "cache")), runs,
                      "sub1").run_here()
    write_json(runs / "done" / "class_bias.json", {"bias": [0.0] * 18, "macro_f1_before": 0.5,
                                                   "macro_f1_after": 0.5, "checkpoint": "best.pt"})
    person = RunFolder(runs, "done").read_predictions()["person_id"].iloc[0]
    (runs / "corrections").mkdir()
    (runs / "corrections" / "reviewed.csv").write_text(f"id,gender,age,swap_mask,note\n{person},female,,0,looked\n")
    user.mkdir()
    (user / "corrections.csv").write_text(f"id,gender,age,swap_mask,note\n{person},male,,0,looked\n")
    write_json(user / "config.json", {**cfg, "epochs": 1})
    write_json(user / "base.json", cfg)
    write_json(user / "steps.json", {"mode": "cumulative", "steps": [{"name": "smooth", "set": {"loss": "smooth"}}]})
    write_json(user / "space.json", {"lr": {"type": "log_float", "low": 0.0003, "high": 0.01}})
    write_json(user / "spec.json", json.loads(_spec_json()))
    (user / "notes.md").write_text("## Data\nour notes\n")
    assert main(["runs", "list", "--runs-root", str(runs)]) == 0  # writes the run index
    return root


def _spec_json() -> str:
    from maskcls.augment.spec import create_preset
    return create_preset("strong").to_json()


def sandbox(template: Path, where: Path) -> Path:
    """A fresh copy of the template in `where/box` (hard links: a mutation replaces, never writes through)."""
    box = where / "box"
    for part in ("runs", "data", "user"):
        shutil.copytree(template / part, box / part, copy_function=os.link, symlinks=True)
    (box / "out").mkdir()
    return box


# -- one case ----------------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    code: int | None
    out: str
    err: str
    seconds: float
    problems: list = field(default_factory=list)


def run_case(box: Path, kind: Kind, mutation: str, command: str, capsys, image: Path) -> Outcome:
    """Mutate the kind's file in `box`, run the command in this process (a hang is cut off by an alarm and, should
    a C loop ignore it, by a watchdog that ends the worker), and judge what came out."""
    from maskcls.cli import main
    path = box / kind.path
    data = path.read_bytes() if path.is_file() else b""
    MUTATIONS[mutation](path, data, kind)
    outside = box.parent / "outside"
    before_outside = {p.name: p.read_bytes() for p in outside.iterdir()} if outside.is_dir() else {}
    before_parent = set(os.listdir(box.parent))
    argv = [a.replace("{R}", str(box / "runs")).replace("{D}", str(box / "data")).replace("{U}", str(box / "user"))
            .replace("{O}", str(box / "out")).replace("{I}", str(image)) for a in COMMANDS[command].argv]
    if COMMANDS[command].page:
        code, trace = _timed(lambda: draw_page(COMMANDS[command].page, box))
        captured = capsys.readouterr()
        code, shown = code if isinstance(code, tuple) else (None, "")
        # a page speaks on the page (its st.error); Streamlit's own "missing ScriptRunContext" log lines are not ours
        o = Outcome(code, shown, shown if code else "", trace.pop("seconds"))
    else:
        code, trace = _timed(lambda: main(argv))
        captured = capsys.readouterr()
        o = Outcome(code, captured.out, captured.err, trace.pop("seconds"))
    if "error" in trace:
        o.problems.append(f"raised {trace['error']}")
    if code not in (0, 2):
        o.problems.append(f"exit code {code}")
    if "Traceback" in o.err or len(o.err.strip().splitlines()) > 8:
        o.problems.append("a traceback or a long error instead of one clear message")
    shown = "\n".join(line for line in o.out.splitlines() if not EXPLAINS.search(line))
    for pattern in FORBIDDEN:
        if pattern.search(shown):
            o.problems.append(f"showed {pattern.pattern!r} as a figure")
    after_outside = {p.name: p.read_bytes() for p in outside.iterdir()} if outside.is_dir() else {}
    if after_outside != before_outside:
        o.problems.append("wrote outside its roots")
    if set(os.listdir(box.parent)) - before_parent:
        o.problems.append(f"left {sorted(set(os.listdir(box.parent)) - before_parent)} beside the sandbox")
    return o


def draw_page(page: str, box: Path) -> tuple[int, str]:
    """(0, what the page shows as text and tables) of a studio page drawn in AppTest on the sandbox, or (1, the
    exception) when the page raised; a page's st.error is its clear message."""
    from conftest import app_test
    at = app_test(page, runs_root=str(box / "runs"), data_root=str(box / "data"))
    if at.exception:
        return 1, "\n".join(str(e.value) for e in at.exception)
    parts = [m.value for m in at.markdown] + [str(m.value) for m in at.metric] + [c.value for c in at.caption]
    for frame in at.dataframe:
        parts.append(frame.value.to_string(na_rep="-"))  # an empty cell, not a figure
    return 0, "\n".join(parts)


def _timed(fn):
    """(return value, {"seconds", "error"?}) of fn() with SIGALRM after CASE_SECONDS and a watchdog that ends the
    process (os._exit) after twice that, should the alarm not reach a C loop."""
    done = threading.Event()

    def watchdog():
        if not done.wait(2 * CASE_SECONDS):
            os.write(2, b"hostile harness: a case hung past its alarm; ending the worker\n")
            os._exit(3)

    def alarm(signum, frame):
        raise TimeoutError(f"hung: over {CASE_SECONDS} s")
    old = signal.signal(signal.SIGALRM, alarm)
    threading.Thread(target=watchdog, daemon=True).start()
    signal.alarm(CASE_SECONDS)
    t0 = time.monotonic()
    info = {}
    value = None
    try:
        value = fn()
    except SystemExit as e:  # argparse's own refusal of what is not an argument: exit 2 with its usage line
        value = e.code
    except BaseException as e:  # noqa: BLE001 - the harness reports every escape as a problem
        info["error"] = f"{type(e).__name__}: {str(e)[:300]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        done.set()
    info["seconds"] = time.monotonic() - t0
    return value, info


# -- names: every command that takes a name, every reserved or invalid name ----------------------------------------
NAMES = ("team", "corrections", "submissions", "sweeps", "ladders", "augment-specs", "mlflow", "Team", "x-oof.csv",
         "../escape", ".hidden", "a/b/c", "x" * 101, "-dash", "used_by.json")
NAME_COMMANDS = {
    "train --name": ("train", "--preset", "demo-cpu", "--data", "{D}", "--name", "{N}", "--runs-root", "{R}"),
    "train --seeds --name": ("train", "--preset", "demo-cpu", "--data", "{D}", "--seeds", "2", "--name", "{N}",
                             "--runs-root", "{R}"),
    "train --folds --name": ("train", "--preset", "demo-cpu", "--data", "{D}", "--folds", "2", "--name", "{N}",
                             "--runs-root", "{R}"),
    "jobs submit --name": ("jobs", "submit", "--preset", "demo-cpu", "--data", "{D}", "--name", "{N}", "--runs-root",
                           "{R}"),
    "ablate create": ("ablate", "create", "{N}", "--base", "{U}/base.json", "--steps", "{U}/steps.json",
                      "--runs-root", "{R}"),
    "sweep create": ("sweep", "create", "{N}", "--base", "{U}/base.json", "--space", "{U}/space.json", "--runs-root",
                     "{R}"),
    "augment save": ("augment", "save", "{N}", "{U}/spec.json", "--runs-root", "{R}"),
    "review --into": ("review", "done", "--into", "{N}", "--runs-root", "{R}"),
    "predict --background": ("predict", "--data", "{D}", "--members", "done", "--background", "{N}", "--runs-root",
                             "{R}"),
    "team pull MEMBER/RUN": ("team", "pull", "{N}/done", "--runs-root", "{R}"),
    "team pull member/NAME": ("team", "pull", "alice/{N}", "--runs-root", "{R}"),
    "team rm MEMBER/RUN": ("team", "rm", "{N}/done"),
    "team add-member": ("team", "add-member", "{N}"),
    "group --claims": ("group", "{N}", "--claims", "postgresql://x@127.0.0.1:9/db", "--runs-root", "{R}"),
}


REFUSED = re.compile(r"reserved|invalid|expected MEMBER/RUN|expected one argument|arguments are required|unrecognized")


def name_cases(slow: bool):
    """(command, name); the inner loop takes each name once, against a rotating command."""
    for c, command in enumerate(NAME_COMMANDS):
        for n, name in enumerate(NAMES):
            if "/" in name and command.startswith(("team pull", "team rm")):
                continue  # a slash splits MEMBER/RUN: the other row covers it
            if ((c + n) % len(NAME_COMMANDS) == 0) != slow:
                yield command, name


def run_name_case(box: Path, command: str, name: str, capsys) -> Outcome:
    """A reserved or invalid name: refused (exit 2, one line naming it) before anything is made in the runs root."""
    from maskcls.cli import main
    runs = box / "runs"
    before = {p.name for p in runs.iterdir()}
    argv = [a.replace("{R}", str(runs)).replace("{D}", str(box / "data")).replace("{U}", str(box / "user"))
            .replace("{N}", name) for a in NAME_COMMANDS[command]]
    code, trace = _timed(lambda: main(argv))
    captured = capsys.readouterr()
    o = Outcome(code, captured.out, captured.err, trace.pop("seconds"))
    if "error" in trace:
        o.problems.append(f"raised {trace['error']}")
    if code != 2:
        o.problems.append(f"exit code {code}, expected 2 (refused)")
    if not REFUSED.search(o.err):
        o.problems.append("the message does not say the name is reserved or invalid")
    made = {p.name for p in runs.iterdir()} - before - {".run-index.json", ".locks"}
    if made:
        o.problems.append(f"made {sorted(made)} in the runs root")
    if (box.parent / "escape").exists() or (runs.parent / "escape").exists():
        o.problems.append("wrote outside the runs root")
    return o
