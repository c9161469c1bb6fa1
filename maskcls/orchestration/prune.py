"""Disk use of a runs root, and pruning what finished runs no longer need.

A finished run keeps best.pt (its model: evaluation, reviews, Grad-CAM, submissions by default), its predictions,
metrics and config. What a prune may remove is the rest of its checkpoints: the epoch files kept for soups and
last.pt, which holds the optimizer state for a resume. Never removed: best.pt; any checkpoint a submission, a soup
or a review recorded as used (`used_by.json`, written by every prediction and review) or that a queued or running
background submission names; any file of a run that is not finished (queued, running, or failed or cancelled and so
resumable from last.pt) or that a process holds; a teammate's pulled run.
"""
from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from maskcls.common.fileio import read_json
from maskcls.common.runfolder import RunFolder, list_runs
from maskcls.orchestration.run_index import disk_bytes, index_rows

FINISHED = {"completed", "pruned"}  # "pruned": a sweep trial Optuna stopped; it will not resume


@dataclass
class PrunePlan:
    """What a prune removes and keeps, run by run, with the reason for each kept checkpoint."""

    remove: list[tuple[str, str, int]] = field(default_factory=list)  # (run, file, bytes)
    keep: list[tuple[str, str, str]] = field(default_factory=list)  # (run, file or '*', why)

    @property
    def bytes(self) -> int:
        return sum(b for *_, b in self.remove)

    def as_dict(self) -> dict:
        return {"remove": [{"run": r, "file": f, "bytes": b} for r, f, b in self.remove],
                "keep": [{"run": r, "file": f, "why": w} for r, f, w in self.keep], "bytes": self.bytes}


def queued_submission_members(runs_root) -> dict[str, set[str]]:
    """{run: checkpoints} that background submissions not yet ended will load."""
    from maskcls.infer.members import Member
    out: dict[str, set[str]] = {}
    folder = Path(runs_root) / "submissions"
    for request in folder.glob("*/request.json") if folder.is_dir() else []:
        try:
            state = read_json(request.parent / "status.json").get("state")
            members = read_json(request).get("members", []) if state in ("queued", "running") else []
        except (OSError, ValueError, AttributeError):
            continue
        for text in members:
            try:
                m = Member.parse(text)
            except ValueError:
                continue
            out.setdefault(Path(m.run).name, set()).add(m.checkpoint)
    return out


def prune_candidates(run: RunFolder) -> list[str]:
    """The run's epoch files and last.pt that are regular files: a symbolic link (dangling or not) is not a
    checkpoint of the run's own, frees nothing and is left alone."""
    names = sorted(p.name for p in run.path.glob("epoch_*.pt")) + ["last.pt"]
    return [n for n in names if _regular(run.path / n)]


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def plan_prune(runs_root, keep_best: int = 0) -> PrunePlan:
    """What `prune` would do: every finished run's epoch files and last.pt, less what is used or kept."""
    plan = PrunePlan()
    pending = queued_submission_members(runs_root)
    finished = [r for r in index_rows(runs_root) if "/" not in r["name"]]
    ranked = sorted((r for r in finished if r["state"] in FINISHED and r.get("best macro F1") is not None),
                    key=lambda r: r["best macro F1"], reverse=True)
    best = {r["name"] for r in ranked[:max(keep_best, 0)]}
    for run in list_runs(runs_root):
        files = prune_candidates(run)
        if not files:
            continue
        state = run.state()["state"]
        if state not in FINISHED:
            plan.keep.append((run.name, "*", f"the run is {state}" + (" (it can resume from last.pt)" if
                                                                      state in ("failed", "cancelled") else "")))
            continue
        if run.is_locked():
            plan.keep.append((run.name, "*", "a process holds the run"))
            continue
        held = run.try_exclusive_use()
        if held is None:
            plan.keep.append((run.name, "*", "a live command (a prediction, soup, scoring or review) is using it"))
            continue
        held.close()
        if run.name in best:
            plan.keep.append((run.name, "*", f"one of the {keep_best} best runs (--keep-best)"))
            continue
        marks = run.used_marks()
        for name in files:
            users = marks.get(name, []) + marks.get("*", [])
            if name in pending.get(run.name, set()):
                users = users + ["a background submission not yet ended"]
            if users:
                plan.keep.append((run.name, name, "used by " + "; ".join(users)))
            else:
                try:
                    st = os.lstat(run.path / name)  # what removing it frees: the blocks it holds
                    plan.remove.append((run.name, name, min(st.st_size, st.st_blocks * 512)))
                except OSError:
                    continue  # gone since it was listed
    return plan


def prune(runs_root, keep_best: int = 0, dry_run: bool = False) -> PrunePlan:
    """Remove what `plan_prune` lists (nothing with `dry_run`). Each run's state and marks are read again just
    before its files go, so a run resumed or a submission started since the plan keeps its files."""
    plan = plan_prune(runs_root, keep_best)
    if dry_run:
        return plan
    done = PrunePlan(keep=list(plan.keep))
    for run_name in dict.fromkeys(r for r, _, _ in plan.remove):
        run = RunFolder(runs_root, run_name)
        try:
            lock = run.acquire_lock()  # a resume or a trainer starting now is refused while this holds the run
        except ValueError:
            done.keep.append((run_name, "*", "a process took the run since the plan"))
            continue
        use = run.try_exclusive_use()  # a prediction starting now waits; one already running keeps the run whole
        if use is None:
            lock.close()
            done.keep.append((run_name, "*", "a live command (a prediction, soup, scoring or review) started using "
                                             "it since the plan"))
            continue
        try:
            marks = run.used_marks()
            pending = queued_submission_members(runs_root).get(run_name, set())
            for r, name, size in plan.remove:
                if r != run_name:
                    continue
                if run.state()["state"] not in FINISHED or marks.get(name) or marks.get("*") or name in pending \
                        or not _regular(run.path / name):
                    done.keep.append((run_name, name, "used or resumed since the plan"))
                    continue
                (run.path / name).unlink(missing_ok=True)
                done.remove.append((r, name, size))
        finally:
            use.close()
            lock.close()
    return done


def disk_use(runs_root, plan: PrunePlan | None = None) -> dict:
    """Bytes per run and in total, what a prune would free, and the free space on the runs root's disk."""
    rows = [{"run": r["name"], "state": r["state"], "mb": r["disk MB"], "reclaimable_mb": r["reclaimable MB"]}
            for r in index_rows(runs_root)]
    root = Path(runs_root)
    other = 0
    for sub in ("submissions", "corrections", "sweeps", "ladders"):
        if (root / sub).is_dir():
            for dirpath, _, files in os.walk(root / sub):
                other += disk_bytes(Path(dirpath))[0]
    usage = shutil.disk_usage(root if root.is_dir() else root.parent)
    if plan is None:
        plan = plan_prune(runs_root) if root.is_dir() else PrunePlan()
    return {"runs": sorted(rows, key=lambda r: r["mb"], reverse=True),
            "total_mb": round(sum(r["mb"] for r in rows) + other / 1e6, 2), "other_mb": round(other / 1e6, 2),
            "prunable_mb": round(plan.bytes / 1e6, 2), "free_mb": round(usage.free / 1e6, 2),
            "disk_mb": round(usage.total / 1e6, 2)}
