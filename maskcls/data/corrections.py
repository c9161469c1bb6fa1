"""Label corrections: a CSV of per-person overrides applied when the data is indexed.

Columns: id (person id, e.g. 001498-1), gender (male/female or empty), age (int or empty),
swap_mask (1 to swap the incorrect_mask and normal labels), note (free text).
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pandas as pd

from maskcls.common.fileio import LIMITS, check_name, inside, locked, read_text_file, read_user_csv, write_text

from maskcls.data.labels import GENDER_KEYS, parse_gender

COLUMNS = ["id", "gender", "age", "swap_mask", "note"]
PERSON_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # the <id> of <id>_<gender>_<race>_<age> folders
MAX_AGE = 120

# Community-reported corrections for the real competition data (opt-in preset "community").
COMMUNITY_CSV = """id,gender,age,swap_mask,note
001498-1,female,,0,gender male -> female
004432,female,,0,gender male -> female
006359,male,,0,gender female -> male
006360,male,,0,gender female -> male
006361,male,,0,gender female -> male
006362,male,,0,gender female -> male
006363,male,,0,gender female -> male
006364,male,,0,gender female -> male
000020,,,1,incorrect_mask and normal swapped
004418,,,1,incorrect_mask and normal swapped
005227,,,1,incorrect_mask and normal swapped
"""
PRESETS = {"none": "id,gender,age,swap_mask,note\n", "community": COMMUNITY_CSV}


def list_presets() -> list[str]:
    return list(PRESETS)


def _validate(table: pd.DataFrame, source: str) -> pd.DataFrame:
    if "id" not in table.columns:
        raise ValueError(f"{source}: corrections need an 'id' column, found columns {list(table.columns)}")
    unknown = [c for c in table.columns if c not in COLUMNS]
    if unknown:
        raise ValueError(f"{source}: unknown correction column(s) {unknown}, expected {COLUMNS}")
    out = table.reindex(columns=COLUMNS).astype(object).fillna("").astype(str)
    for i, row in out.iterrows():
        line = i + 2  # header is line 1
        if row["gender"].strip():
            try:
                parse_gender(row["gender"])
            except ValueError as e:
                raise ValueError(f"{source}, line {line}: {e}") from None
        age = row["age"].strip()
        if age and not (age.isdigit() and 0 <= int(age) <= MAX_AGE):
            raise ValueError(f"{source}, line {line}: age must be a whole number from 0 to {MAX_AGE}, got {row['age']!r}")
        if row["swap_mask"].strip() not in ("", "0", "1"):
            raise ValueError(f"{source}, line {line}: swap_mask must be 0 or 1, got {row['swap_mask']!r}")
        if not row["id"].strip():
            raise ValueError(f"{source}, line {line}: id is empty; expected a person id such as 000001")
        if not PERSON_ID.match(row["id"].strip()):
            raise ValueError(f"{source}, line {line}: id {row['id'].strip()[:40]!r} is no person id (letters, digits "
                             f"and '-', such as 000001 or 001498-1)")
    ids = out["id"].str.strip()
    repeated = ids[ids.duplicated()]
    if len(repeated):
        i = int(repeated.index[0])
        first = int(ids[ids == repeated.iloc[0]].index[0])
        raise ValueError(f"{source}, line {i + 2}: id {repeated.iloc[0]} repeats line {first + 2}; give each person "
                         f"one row")
    out["id"] = ids
    return out


def load_corrections(source: str | os.PathLike) -> pd.DataFrame:
    """A preset name ('none', 'community') or a CSV path -> validated corrections table."""
    if str(source) in PRESETS:
        return _validate(pd.read_csv(io.StringIO(PRESETS[str(source)]), dtype=str), f"preset {source}")
    if not os.path.isfile(source):
        raise ValueError(f"corrections {str(source)!r}: not a preset ({', '.join(PRESETS)}) and no such file")
    try:
        table = read_user_csv(source, dtype=str, keep_default_na=False)
    except ValueError as e:
        raise ValueError(f"corrections {str(source)!r} is {e}; expected a CSV with columns {', '.join(COLUMNS)} "
                         f"(id required), one row per person") from None
    return _validate(table, str(source))


def apply_corrections(train: pd.DataFrame, corrections: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of the train table with gender/age overrides and incorrect<->normal swaps applied.

    `attrs["corrections"]` says what happened: rows, applied, and each id that matches no person (with the likely
    id when a spreadsheet stripped its leading zeros), so a silent no-op never passes for a correction.
    """
    out = train.copy()
    out["corrected"] = False
    people = set(out["person_id"].astype(str))
    unmatched = []
    for line, row in enumerate(corrections.itertuples(index=False), start=2):
        pid = str(row.id).strip()
        hit = out["person_id"] == pid
        if not hit.any():
            unmatched.append({"line": line, "id": pid, "reason": unmatched_reason(pid, people)})
            continue
        if str(row.gender).strip():
            out.loc[hit, "gender"] = GENDER_KEYS.index(str(row.gender).strip().lower())
        if str(row.age).strip():
            out.loc[hit, "age"] = int(row.age)
        if str(row.swap_mask).strip() == "1":
            m = out.loc[hit, "mask"]
            out.loc[hit, "mask"] = m.where(~m.isin([1, 2]), 3 - m)
        out.loc[hit, "corrected"] = True
    out.attrs["corrections"] = {"rows": len(corrections), "applied": len(corrections) - len(unmatched),
                                "unmatched": unmatched}
    return out


def unmatched_reason(pid: str, people: set[str]) -> str:
    """Why a correction's id matched nobody, with the id it most likely meant."""
    head, _, tail = pid.partition("-")
    if head.isdigit() and len(head) < 6:
        padded = head.zfill(6) + (f"-{tail}" if tail else "")
        if padded in people:
            return f"no person has id {pid!r}; {padded!r} does (a spreadsheet may have stripped the leading zeros)"
    return f"no person has id {pid!r} in this data root"


def corrections_summary(info: dict | None) -> str | None:
    """One line for logs and pages: rows applied and ids matched by no person."""
    if not info:
        return None
    text = f"label corrections: {info['applied']} of {info['rows']} row(s) applied"
    if info["unmatched"]:
        text += (f"; {len(info['unmatched'])} id(s) match no person: "
                 + "; ".join(f"line {u['line']}: {u['reason']}" for u in info["unmatched"][:5])
                 + (" …" if len(info["unmatched"]) > 5 else ""))
    return text


def to_csv_text(table: pd.DataFrame) -> str:
    """Every field quoted: a note holding a lone carriage return would otherwise end its line on reading (its
    tail became a row of its own, with an id such as '0')."""
    import csv
    return table.reindex(columns=COLUMNS).astype(object).fillna("").to_csv(index=False, quoting=csv.QUOTE_ALL)


# -- named corrections files: what the studio's relabelling review writes ---------------------------------
CORRECTIONS_DIR = "corrections"


def corrections_path(runs_root, name: str) -> Path:
    """<runs_root>/corrections/<name>.csv: a named corrections file the sidebar and training can use."""
    return inside(runs_root, CORRECTIONS_DIR, check_name(name, "corrections name") + ".csv")


def list_saved_corrections(runs_root) -> list[str]:
    """Absolute paths of the named corrections files in the runs root (what a run config stores)."""
    folder = Path(runs_root) / CORRECTIONS_DIR
    return sorted(str(p.resolve()) for p in folder.glob("*.csv")) if folder.is_dir() else []


def reviewed_ids(path: str | os.PathLike) -> tuple[set[str], set[str]]:
    """(accepted, rejected) person ids of a named corrections file (rejections live beside it, .rejected)."""
    path = Path(path)
    accepted = set(load_corrections(path)["id"]) if os.path.lexists(path) else set()  # a FIFO or link: refused
    rej = path.with_suffix(".rejected")
    rejected = set(read_text_file(rej, "rejections", LIMITS["table"], errors="replace").split()) \
        if os.path.lexists(rej) else set()
    return accepted, rejected


def accept_correction(path: str | os.PathLike, row: dict) -> pd.DataFrame:
    """Add (or replace) one person's correction in the file, atomically; returns the whole table."""
    return decide(path, accept=[row])


def reject_suggestion(path: str | os.PathLike, person_id: str) -> None:
    """Remember that a suggestion for this person was looked at and turned down (it is not shown again)."""
    decide(path, reject=[person_id])


def _person(person_id) -> str:
    person_id = str(person_id).strip()
    if not person_id or any(c.isspace() for c in person_id):
        raise ValueError(f"expected a person id such as 000001, with no spaces, got {person_id!r}")
    return person_id


def decide(path: str | os.PathLike, *, accept: list[dict] = (), reject: list[str] = ()) -> pd.DataFrame:
    """Accept some people's corrections and reject others' suggestions in one step (one lock, one write of each
    file), and journal what each replaced so `undo_last` can put it back. Returns the accepted table."""
    path = Path(path)
    new = _validate(pd.DataFrame([{k: r.get(k, "") for k in COLUMNS} for r in accept], columns=COLUMNS),
                    "the accepted corrections") if accept else None
    rejects = [_person(p) for p in reject]
    with locked(path):  # read, change, replace: a concurrent decision waits instead of being overwritten
        table = load_corrections(path) if os.path.lexists(path) else \
            _validate(pd.DataFrame(columns=COLUMNS), str(path))
        _, rejected = reviewed_ids(path)
        ids = (list(new["id"]) if new is not None else []) + rejects
        before = {i: table[table["id"] == i].iloc[0].to_dict() if (table["id"] == i).any() else None for i in ids}
        _journal(path, {"ids": ids, "before": before, "rejected_before": sorted(set(ids) & rejected)})
        if new is not None:  # an accept replaces the person's row; a reject is remembered apart (both are kept)
            table = pd.concat([table[~table["id"].isin(new["id"])], new], ignore_index=True)
            write_text(path, to_csv_text(table))
        if rejects:
            _write_rejected(path, rejected | set(rejects))
    return table


def undo_last(path: str | os.PathLike) -> list[str]:
    """Put back what the last decision (an accept or a reject, one or many people) replaced; returns its people."""
    path = Path(path)
    journal = path.with_suffix(".journal")
    with locked(path):
        lines = read_text_file(journal, "decision journal", LIMITS["table"]).splitlines() \
            if os.path.lexists(journal) else []
        if not lines:
            raise ValueError(f"nothing to undo in {path.name}: no decision was made since it was created")
        from maskcls.common.fileio import loads
        last = loads(lines[-1])
        table = load_corrections(path) if os.path.lexists(path) else _validate(pd.DataFrame(columns=COLUMNS),
                                                                                 str(path))
        table = table[~table["id"].isin(last["ids"])]
        restored = [r for r in last["before"].values() if r]
        if restored:
            table = pd.concat([table, _validate(pd.DataFrame(restored, columns=COLUMNS), "the journal")],
                              ignore_index=True)
        _, rejected = reviewed_ids(path)
        write_text(path, to_csv_text(table.reset_index(drop=True)))
        _write_rejected(path, (rejected - set(last["ids"])) | set(last["rejected_before"]))
        write_text(journal, "".join(line + "\n" for line in lines[:-1]))
    return list(last["ids"])


def _journal(path: Path, entry: dict) -> None:
    from maskcls.common.fileio import dumps
    journal = path.with_suffix(".journal")
    old = read_text_file(journal, "decision journal", LIMITS["table"]) if os.path.lexists(journal) else ""
    write_text(journal, old + dumps(entry) + "\n")


def _write_rejected(path: Path, ids: set[str]) -> None:
    write_text(path.with_suffix(".rejected"), "".join(f"{i}\n" for i in sorted(ids)))
