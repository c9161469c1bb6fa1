"""Label corrections: a CSV of per-person overrides applied when the data is indexed.

Columns: id (person id, e.g. 001498-1), gender (male/female or empty), age (int or empty),
swap_mask (1 to swap the incorrect_mask and normal labels), note (free text).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd

from maskcls.common.fileio import LIMITS, check_name, inside, locked, read_text_file, read_user_csv, write_text

from maskcls.data.labels import GENDER_KEYS, parse_gender

COLUMNS = ["id", "gender", "age", "swap_mask", "note"]
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
    path = Path(path)
    new = _validate(pd.DataFrame([{k: row.get(k, "") for k in COLUMNS}]), "the accepted correction")
    with locked(path):  # read, change, replace: a concurrent accept waits instead of being overwritten
        table = load_corrections(path) if path.is_file() else _validate(pd.DataFrame(columns=COLUMNS), str(path))
        table = pd.concat([table[table["id"] != new["id"].iloc[0]], new], ignore_index=True)
        write_text(path, to_csv_text(table))
    return table


def reject_suggestion(path: str | os.PathLike, person_id: str) -> None:
    """Remember that a suggestion for this person was looked at and turned down (it is not shown again)."""
    path = Path(path)
    person_id = str(person_id).strip()
    if not person_id or any(c.isspace() for c in person_id):
        raise ValueError(f"cannot reject a suggestion for person id {person_id!r}: expected an id such as 000001, "
                         f"with no spaces")
    with locked(path):  # the same lock as accepts: one reviewer's decision never drops another's
        _, rejected = reviewed_ids(path)
        write_text(path.with_suffix(".rejected"), "\n".join(sorted(rejected | {str(person_id)})) + "\n")
