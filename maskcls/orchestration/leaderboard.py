"""The leaderboard log: each submission's public score beside its validation score, the private range the two give
(maskcls.infer.leaderboard), and which two to choose as final. The CLI (`maskcls submissions score|leaderboard`),
the Ensemble page and the wrap-up report call these.

In each submission's folder: public.json (the public score, when and how it was recorded) and validation.json (the
ensemble's macro F1 on its members' validation people with its interval, computed once when first needed).
"""
from __future__ import annotations

import math
import os
import time

from maskcls.common.fileio import LIMITS, read_json, read_user_csv, write_json
from maskcls.infer.leaderboard import Entry, choose_finals, private_range
from maskcls.orchestration.submissions import SubmissionFolder, list_submissions

PUBLIC_FILE, VALIDATION_FILE = "public.json", "validation.json"
PUBLIC_SHARE = 0.5  # the competition scored the public board on half of the eval people
NAME_COLUMNS = ("submission", "name", "file", "file_name", "filename")
SCORE_COLUMNS = ("public", "public_score", "score", "f1", "macro_f1", "public f1")


def check_score(score) -> float:
    """A public macro F1: a finite number from 0 to 1 (a percentage such as 78.12 is refused, naming it)."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        raise ValueError(f"a public score is a macro F1 from 0 to 1 such as 0.7812, got {score!r}") from None
    if not math.isfinite(value) or not 0 <= value <= 1:
        hint = " (a percentage? give it as 0.7812)" if math.isfinite(value) and 1 < value <= 100 else ""
        raise ValueError(f"a public score is a macro F1 from 0 to 1 such as 0.7812, got {score!r}{hint}")
    return value


def record_public(runs_root, name: str, score, *, source: str = "typed") -> dict:
    """Write NAME's public score into its folder; a submission that has not written its CSV yet is refused."""
    job = SubmissionFolder(runs_root, name)
    if not job.csv_path.is_file():
        known = ", ".join(s["name"] for s in list_submissions(runs_root) if s.get("state") == "completed")
        raise ValueError(f"no finished submission named {name!r} in {runs_root} (finished: {known or 'none yet'})")
    entry = {"score": check_score(score), "recorded": time.time(), "source": source}
    write_json(job.path / PUBLIC_FILE, entry)
    return entry


def read_public(job: SubmissionFolder) -> float | None:
    try:
        return check_score(read_json(job.path / PUBLIC_FILE, PUBLIC_FILE, root=job.path)["score"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def import_platform_csv(runs_root, path) -> dict:
    """Public scores from the platform's CSV of submissions: a column naming each submission (its name here, or
    its file name, NAME.csv) and a column of public scores. Returns what was recorded and what matched nothing."""
    table = read_user_csv(path, limit=LIMITS["table"], dtype=str, keep_default_na=False)
    cols = {c.strip().lower(): c for c in table.columns}
    name_col = next((cols[c] for c in NAME_COLUMNS if c in cols), None)
    score_col = next((cols[c] for c in SCORE_COLUMNS if c in cols), None)
    if name_col is None or score_col is None:
        raise ValueError(f"{os.fspath(path)!r}: expected a column naming the submission ({', '.join(NAME_COLUMNS)}) "
                         f"and one of public scores ({', '.join(SCORE_COLUMNS)}); found {', '.join(table.columns)}")
    known = {s["name"] for s in list_submissions(runs_root)}
    recorded, unmatched = [], []
    for text, score in zip(table[name_col], table[score_col]):
        name = os.path.basename(str(text).strip())
        name = name[:-4] if name.lower().endswith(".csv") and name[:-4] in known else name
        if name not in known or not str(score).strip():
            unmatched.append(str(text))
            continue
        record_public(runs_root, name, score, source=f"platform CSV {os.path.basename(os.fspath(path))}")
        recorded.append(name)
    return {"recorded": recorded, "unmatched": unmatched}


def submission_validation(runs_root, name: str, *, device="cpu", progress=None) -> dict:
    """The ensemble's validation macro F1 with its interval (scored once, kept in validation.json)."""
    from maskcls.infer.ensemble import score_members
    from maskcls.infer.members import Member
    job = SubmissionFolder(runs_root, name)
    try:
        stored = read_json(job.path / VALIDATION_FILE, VALIDATION_FILE, root=job.path)
        if isinstance(stored, dict) and "macro_f1" in stored:
            return stored
    except (OSError, ValueError):
        pass
    from maskcls.common.devices import resolve_device
    from maskcls.common.settings import default_cache_dir
    req = job.read_request()
    table, notes, _ = score_members(runs_root, [Member.parse(m) for m in req.members], req.method,
                                    resolve_device(device), default_cache_dir(req.data_root, req.cache_dir),
                                    tta=req.tta, progress=progress)
    ens = table.iloc[-1]
    out = {"macro_f1": float(ens["macro_f1"]), "macro_f1_ci": [float(ens["F1 low"]), float(ens["F1 high"])],
           "people": int(table.attrs.get("people", 0)), "notes": notes}
    write_json(job.path / VALIDATION_FILE, out)
    return out


def eval_people_of(data_root) -> int:
    from maskcls.infer.evaluation import eval_people
    return eval_people(data_root) if data_root else 0


def leaderboard(runs_root, *, public_share: float = PUBLIC_SHARE, eval_people: int | None = None) -> dict:
    """Every finished submission's row (validation F1 and interval, public score, expected private score and
    range) and the two finals with the reasons."""
    if not 0 < public_share < 1:
        raise ValueError(f"the public share is the part of the eval people the public board scores, from 0 to 1 "
                         f"(exclusive), got {public_share}")
    entries, people = [], eval_people
    for s in list_submissions(runs_root):
        if s.get("state") != "completed":
            continue
        job = SubmissionFolder(runs_root, s["name"])
        try:
            val = read_json(job.path / VALIDATION_FILE, VALIDATION_FILE, root=job.path)
        except (OSError, ValueError):
            val = {}
        if people is None:
            people = eval_people_of(job.read_request().data_root)
        ci = val.get("macro_f1_ci") if isinstance(val, dict) else None
        entries.append(Entry(s["name"], val.get("macro_f1") if isinstance(val, dict) else None,
                             tuple(ci) if isinstance(ci, list) and len(ci) == 2 else None,
                             int(val.get("people") or 0) if isinstance(val, dict) else 0, read_public(job),
                             {"submitted": s.get("submitted"), "members": s.get("members"), "method": s.get("method")}))
    people = people or 0
    public = max(1, round(people * public_share))
    rows = [{"name": e.name, "val_f1": e.val_f1, "val_ci": list(e.val_ci) if e.val_ci else None, "public": e.public,
             **e.extra, "private": private_range(e, entries, public_people=public, private_people=max(1, people - public))
             if people else None} for e in entries]
    return {"rows": rows, "finals": choose_finals(rows), "eval_people": people, "public_people": public,
            "private_people": max(0, people - public)}
