"""The run index: one small summary per run, kept in `<runs root>/.run-index.json` and refreshed from a run's files
only when they change, so a page draw or a listing of thousands of runs reads one table instead of every folder.

A row is reused while the run's watched files (config, status, metrics, intervals, the pulled marker) and its
folder (checkpoints added or removed) keep their sizes and change times. A run whose state is not final (queued,
running) is summarised again on every read: its liveness is checked, not remembered. A damaged or foreign index
file is ignored and rebuilt; writers replace it atomically, so two readers at once both see a whole index.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from maskcls.common.fileio import LIMITS, NAME_RE, is_reserved, read_json, write_json
from maskcls.common.runfolder import PULLED_FILE, RunFolder, list_pulled
from maskcls.orchestration.run_filters import SORTS, filter_rows, parse_where, sort_rows, split_filters  # noqa: F401

INDEX_FILE = ".run-index.json"
VERSION = 6  # 6: the augmentation by name; 4: pulled runs carry only the figures recomputed at pull; 5: list-valued config keys
WATCHED = ("config.json", "status.json", "metrics.jsonl", "intervals.json", PULLED_FILE)
FINAL = {"completed", "failed", "cancelled", "pruned"}
KINDS = ("lone", "sweep", "ladder", "repeat", "folds", "team")


def checked_config(run: RunFolder) -> tuple[dict, str | None]:
    """(the run's config as written, None) when it passes the schema, else ({}, why): a damaged config's values
    are never shown as the run's."""
    from maskcls.train.config import RunConfig
    try:
        cfg = run.read_config()
        RunConfig.from_dict(cfg)  # one read, then the schema
        return cfg, None
    except (OSError, ValueError) as e:
        return {}, f"config.json cannot be used: {e}"[:300]


def run_row(run: RunFolder, ref: str | None = None, checked: tuple | None = None) -> dict:
    """One run's summary; `ref` names a teammate's pulled run (MEMBER/RUN); `checked` is checked_config's answer
    when the caller has it."""
    import pandas as pd  # here, not at the top: a listing from the index needs neither pandas nor the jobs

    from maskcls.augment.spec import describe_augment
    from maskcls.orchestration.jobs import job_info
    info = job_info(run)
    cfg, damaged = checked or checked_config(run)
    metrics = run.read_metrics()
    scored = [m for m in metrics if m.get("val_macro_f1") is not None]  # full-data runs have no validation
    best = max(scored, key=lambda m: m["val_macro_f1"]) if scored else {}
    aug = cfg.get("augment")
    end = info.ended or (time.time() if info.state == "running" else None)
    figures = {"best macro F1": best.get("val_macro_f1"), **_interval_columns(run.read_intervals()),
               "best accuracy": max((m["val_accuracy"] for m in scored if m.get("val_accuracy") is not None),
                                    default=None)}
    error = info.error or damaged
    if ref:  # a teammate's run: only the figures recomputed from its predictions at pull, never its own claims
        figures, error = pulled_figures(run.pulled() or {})
        error = damaged or error
    return {"name": ref or run.name, "member": ref.split("/")[0] if ref else "", "state": info.state,
            "model": cfg.get("model"), "head": cfg.get("head"),
            "loss": cfg.get("loss"), "sampler": cfg.get("sampler"),
            "augmentation": describe_augment(aug, run.root if not ref else None) if aug is not None else None,
            **figures,
            "epochs": len(metrics), "of": cfg.get("epochs"), "device": info.device,
            "duration s": round(end - info.started, 1) if (end and info.started) else None,
            "started": pd.to_datetime(info.started, unit="s") if info.started else None, "error": error}


def pulled_figures(origin: dict) -> tuple[dict, str | None]:
    """(figure columns, note) of a pulled run from what maskcls recomputed at pull (`.team.json`'s verified)."""
    verified = origin.get("verified") if isinstance(origin.get("verified"), dict) else None
    if verified is None:
        return ({"best macro F1": None, "F1 low": None, "F1 high": None, "F1 selection-free": None,
                 "best accuracy": None}, "pulled before its figures were recomputed at pull: pull it again")
    ci = verified.get("macro_f1_ci") or [None, None]
    unit = lambda v: v if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 else None  # noqa: E731
    if not isinstance(ci, list) or len(ci) != 2:
        ci = [None, None]
    disagree = origin.get("disagreements") or []
    return ({"best macro F1": unit(verified.get("macro_f1")), "F1 low": unit(ci[0]), "F1 high": unit(ci[1]),
             "F1 selection-free": unit(verified.get("selection_free")), "best accuracy": unit(verified.get("accuracy"))},
            ("its own files claimed other figures: " + "; ".join(map(str, disagree))[:500]) if disagree else None)


def _interval_columns(intervals: dict | None) -> dict:
    ci = (intervals or {}).get("macro_f1_ci") or [None, None]
    free = (intervals or {}).get("selection_free") or {}
    return {"F1 low": ci[0], "F1 high": ci[1], "F1 selection-free": free.get("macro_f1")}


COLUMNS = ["name", "member", "state", "model", "head", "loss", "sampler", "augmentation", "best macro F1", "F1 low",
           "F1 high", "F1 selection-free", "seed sd", "best accuracy", "epochs", "of", "device", "duration s", "started",
           "kind", "group", "disk MB", "reclaimable MB", "error"]


def group_row(runs_root, name: str) -> dict:
    """A repeat group as one row: the seeds' mean macro F1, their standard deviation, the interval of the mean."""
    from maskcls.orchestration.repeats import repeat_runs, repeat_summary
    try:
        runs = repeat_runs(runs_root, name)
    except ValueError as e:  # runs named NAME-sK that are not one config's seeds: shown as such, never summarised
        return {"name": f"{name} (repeat of ?: not one config)", "state": "not a group", "error": str(e)}
    cfg = runs[0].read_config()
    base = {"name": f"{name} (repeat of {len(runs)})", "model": cfg.get("model"), "head": cfg.get("head"),
            "loss": cfg.get("loss"), "sampler": cfg.get("sampler"), "of": cfg.get("epochs")}
    try:
        s = repeat_summary(runs_root, name)
    except ValueError as e:
        return {**base, "state": "running", "error": str(e)}
    done = s["completed"] == s["seeds"]
    return {**base, "state": "completed" if done else f"{s['completed']}/{s['seeds']} done",
            "best macro F1": s["macro_f1_mean"], "F1 low": s["macro_f1_ci"][0], "F1 high": s["macro_f1_ci"][1],
            "seed sd": s["macro_f1_sd"]}


def signature(path: Path) -> list:
    """What says a run changed: the watched files' sizes and change times, and the folder's change time."""
    out, base = [], str(path)
    for name in WATCHED:
        try:
            st = os.stat(f"{base}/{name}")
            out.append([name, st.st_size, st.st_mtime_ns])
        except OSError:
            continue
    try:
        out.append([".", 0, os.stat(path).st_mtime_ns])
    except OSError:
        pass
    return out


def kind_of(ref: str) -> str:
    """The kind of group a run belongs to, read from its name as the trackers read it (team for a pulled run)."""
    from maskcls.train.tracking.base import GROUP_RE
    if "/" in ref:
        return "team"
    if GROUP_RE[0].match(ref):
        return "ladder"
    m = GROUP_RE[1].match(ref)
    if not m:
        return "lone"
    tail = ref[len(m["group"]) + 1:]
    return {"f": "folds", "s": "repeat", "t": "sweep"}[tail[0]]


def disk_bytes(path: Path) -> tuple[int, int]:
    """(all bytes in the run folder, bytes a prune could free: epoch checkpoints and last.pt)."""
    return folder_files(path)[:2]


def folder_files(path: Path) -> tuple[int, int, list[str]]:
    """(bytes in the folder, bytes in epoch files and last.pt, its checkpoints in the order pickers list them:
    best.pt, last.pt, then the epoch files)."""
    total = free = 0
    names = []
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0, 0, []
    for e in entries:
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            st = e.stat(follow_symlinks=False)
            size = min(st.st_size, st.st_blocks * 512)  # what the disk holds (a sparse file holds little)
        except OSError:
            continue
        total += size
        if e.name.endswith(".pt") and not e.name.startswith("."):
            names.append(e.name)
        if e.name == "last.pt" or (e.name.startswith("epoch_") and e.name.endswith(".pt")):
            free += size
    first = [n for n in ("best.pt", "last.pt") if n in names]
    return total, free, first + sorted(n for n in names if n.startswith("epoch_"))


def summarise(run: RunFolder, ref: str | None = None) -> dict:
    """One run's index row: the Runs table's columns, its group, its flat config and its size on disk."""
    from maskcls.train.tracking.base import group_of
    checked = checked_config(run)
    row = run_row(run, ref, checked)
    cfg = checked[0]
    total, reclaimable, checkpoints = folder_files(run.path)
    name = ref or run.name
    return {**row, "started": row["started"].timestamp() if row["started"] is not None else None,
            "kind": kind_of(name), "group": (name.split("/")[0] if ref else group_of(name)) or "",
            "disk MB": round(total / 1e6, 2), "reclaimable MB": round(reclaimable / 1e6, 2), "checkpoints": checkpoints,
            "config": {k: v for k, v in cfg.items() if isinstance(v, (str, int, float, bool)) or v is None
                       or (isinstance(v, list) and len(v) <= 16)}}


def _load(path: Path) -> dict:
    """The index as written, keeping only entries of the right shape: a damaged, foreign or hand-edited index (a
    string where a row belongs) is rebuilt from the folders, never trusted or fatal."""
    try:
        data = read_json(path, INDEX_FILE, LIMITS["index"], root=path.parent)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("runs"), dict) \
            or not isinstance(data.get("groups"), dict):
        return {}
    return {**data, "runs": {k: v for k, v in data["runs"].items() if _entry_ok(v)},
            "groups": {k: v for k, v in data["groups"].items() if _entry_ok(v, group=True)}}


UNIT_COLUMNS = ("best macro F1", "F1 low", "F1 high", "F1 selection-free", "seed sd", "best accuracy")


def _entry_ok(entry, group: bool = False) -> bool:
    """An index entry this version wrote: {"sig": [...], "row": {... "state": text ...}}."""
    if not isinstance(entry, dict) or not isinstance(entry.get("row"), dict):
        return False
    sig, row = entry.get("sig"), entry["row"]
    if not (sig is None and group) and not isinstance(sig, list):
        return False
    if not isinstance(row.get("state"), str) or not isinstance(row.get("name"), str):
        return False
    figures = [row.get(k) for k in UNIT_COLUMNS]
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1)
               for v in figures):
        return False
    low, high = row.get("F1 low"), row.get("F1 high")
    return low is None or high is None or low <= high


def _folders(root: Path):
    """(ref, folder path) of every run folder: this machine's, then pulled ones. A plain folder with a valid name
    is taken as it is; a link goes through RunFolder, which refuses one that leaves the runs root."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        entries = []
    for e in entries:
        if e.name.startswith(".") or not NAME_RE.match(e.name) or is_reserved(e.name):
            continue  # the runs root's own folders and files (team, submissions, corrections, ...)
        if e.is_symlink():
            try:
                path = RunFolder(root, e.name).path
            except ValueError:
                continue
        else:
            path = Path(e.path)
        yield e.name, path
    for ref, run in list_pulled(root):
        yield ref, run.path


def _open(root: Path, ref: str, path: Path) -> RunFolder:
    return RunFolder(path.parent, path.name) if "/" in ref else RunFolder(root, ref)


def index_rows(runs_root) -> list[dict]:
    """Every run's row (this machine's runs, then pulled ones), from the index where the run has not changed."""
    return index_tables(runs_root, groups=False)[0]


def index_tables(runs_root, groups: bool = True) -> tuple[list[dict], list[dict]]:
    """(every run's row, each repeat group's row: the seeds' mean, spread and interval), both from the index where
    nothing they read has changed. Without `groups` the group rows are neither read nor refreshed (a listing of
    runs needs none)."""
    root = Path(runs_root)
    data = _load(root / INDEX_FILE)
    cached, cached_groups = data.get("runs", {}), data.get("groups", {})
    fresh: dict[str, dict] = {}
    changed = False
    for ref, path in _folders(root):
        sig = signature(path)
        if {"config.json", "status.json"} - {name for name, *_ in sig}:
            continue  # not a run folder (someone's configs, a half-made folder)
        old = cached.get(ref)
        if old and old.get("sig") == sig and old["row"].get("state") in FINAL:
            fresh[ref] = old
            continue
        fresh[ref] = {"sig": sig, "row": summarise(_open(root, ref, path), ref if "/" in ref else None)}
        changed = changed or old is None or old != fresh[ref]
    found = _groups(root, fresh, cached_groups) if groups else cached_groups
    if (changed or set(fresh) != set(cached) or found != cached_groups) and root.is_dir():
        try:
            write_json(root / INDEX_FILE, {"version": VERSION, "written": time.time(), "runs": fresh,
                                           "groups": found})
        except OSError:
            pass  # a read-only runs root still lists its runs, from the folders
    return [e["row"] for e in fresh.values()], [g["row"] for g in found.values()] if groups else []


def _groups(root: Path, fresh: dict, cached: dict) -> dict:
    """Repeat groups (two or more seed runs NAME-sK) from the index's rows; a group is summarised again only when
    one of its runs changed."""
    from maskcls.orchestration.repeats import SEED_RE
    members: dict[str, list] = {}
    for ref, entry in fresh.items():
        if "/" not in ref and (m := SEED_RE.match(ref)):
            members.setdefault(m["name"], []).append([ref, entry["sig"], entry["row"]["state"]])
    out = {}
    deadline = time.monotonic() + GROUP_SECONDS
    for name, sigs in sorted(members.items()):
        if len(sigs) < 2:
            continue
        old = cached.get(name)
        final = all(state in FINAL for *_, state in sigs)
        if old and old["sig"] == sigs and final:
            out[name] = old
        elif time.monotonic() < deadline:
            out[name] = {"sig": sigs, "row": group_row(root, name)}
        else:  # a first look at a season: the rest is summarised on the next reads, the table drawn now
            out[name] = {"sig": None, "row": pending_group_row(name, [fresh[r]["row"] for r, *_ in sigs])}
    return out


GROUP_SECONDS = 1.5  # the most one read spends on repeat groups' intervals (their predictions, resampled)


def pending_group_row(name: str, rows: list[dict]) -> dict:
    """A repeat group's row before its interval is computed: the seeds' mean and spread from the index alone."""
    import statistics
    f1 = [r["best macro F1"] for r in rows if r.get("best macro F1") is not None]
    return {"name": f"{name} (repeat of {len(rows)})", "model": rows[0].get("model"), "state": "summarising",
            "best macro F1": statistics.mean(f1) if f1 else None,
            "seed sd": statistics.stdev(f1) if len(f1) > 1 else None,
            "error": "its interval over people is being computed: the next look shows it"}
