"""Read a data root in the competition layout into tables, reporting (never dying on) what it cannot use.

<root>/train/images/<id>_<gender>_<race>_<age>/{mask1..5,incorrect_mask,normal}.<jpg|jpeg|png>
<root>/train/train.csv (optional, cross-checked) · <root>/eval/info.csv + <root>/eval/images/
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls.common.fileio import read_user_csv
from maskcls.data.imageio import IMAGE_EXTS, header_problem, link_problem, not_a_file_reason
from maskcls.data.labels import DEFAULT_BOUNDS, GENDER_KEYS, MASK_FILES, AgeBounds, age_band, encode

FOLDER_RE = re.compile(r"^(?P<id>\d+(?:-\d+)?)_(?P<gender>male|female)_(?P<race>[A-Za-z]+)_(?P<age>\d{1,3})$")
FOLDER_EXAMPLE = "<id>_<gender>_<race>_<age>, e.g. 000001_female_Asian_45"
MAX_AGE = 120
TRAIN_COLUMNS = ["path", "person_id", "folder", "file", "gender", "race", "age", "mask", "age_band", "label"]


class DataRootError(ValueError):
    """The data root is not usable at all (missing, empty, not the competition layout)."""


@dataclass
class DataIndex:
    """Everything found under one data root; `problems` lists what was skipped, missing or inconsistent."""

    root: Path
    train: pd.DataFrame
    eval: pd.DataFrame | None
    problems: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "kind", "reason"]))
    bounds: AgeBounds = DEFAULT_BOUNDS
    seconds: float = 0.0

    @property
    def skipped(self) -> pd.DataFrame:
        return self.problems[self.problems["kind"] == "skipped"]

    def summary(self) -> dict:
        """The figures `maskcls scan` prints."""
        counts = np.bincount(self.train["label"].to_numpy(), minlength=18) if len(self.train) else np.zeros(18, int)
        return {
            "root": str(self.root),
            "people": int(self.train["folder"].nunique()),
            "images": int(len(self.train)),
            "class_counts": [int(c) for c in counts],
            "eval_images": int(len(self.eval)) if self.eval is not None else 0,
            "eval_missing": int((~self.eval["exists"]).sum()) if self.eval is not None else 0,
            "skipped": self.skipped[["path", "reason"]].to_dict("records"),
            "missing": self.problems[self.problems["kind"] == "missing"][["path", "reason"]].to_dict("records"),
            "inconsistent": self.problems[self.problems["kind"].isin(["csv", "duplicate"])][["path", "reason"]
                                                                                           ].to_dict("records"),
            "corrections": self.train.attrs.get("corrections"),
            "seconds": round(self.seconds, 3),
        }


def _check_root(root: Path) -> Path:
    if not str(root).strip():
        raise DataRootError("no data root given: expected a folder holding train/images/ (and optionally eval/)")
    if not root.exists():
        raise DataRootError(f"data root {str(root)!r} does not exist")
    if not root.is_dir():
        raise DataRootError(f"data root {str(root)!r} is a file, expected a folder holding train/images/")
    images = root / "train" / "images"
    if not images.is_dir():
        found = "an empty folder" if not any(root.iterdir()) else "no train/images folder in it"
        raise DataRootError(
            f"{str(root)!r} is not in the competition layout: expected {str(images)!r} with one folder per "
            f"person named {FOLDER_EXAMPLE}; found {found}"
        )
    return images


def entry_kind(entry: os.DirEntry) -> str:
    """"dir", "file", or why the entry is neither (a named pipe, a dangling link, a link loop ...): a link loop
    makes `is_dir()` raise, which must skip one entry, never stop the scan."""
    try:
        if entry.is_dir():
            return "dir"
        if entry.is_file():
            return "file"
        return not_a_file_reason(entry.stat().st_mode)
    except OSError as e:
        return link_problem(entry.path) or f"unreadable ({e.strerror})"


def _scan_person(entry: os.DirEntry, verify: bool, rows: list, problems: list) -> None:
    """One person folder -> rows for its images, problems for anything else."""
    m = FOLDER_RE.match(entry.name)
    why = folder_problem(entry.name)
    if m is None or why:
        problems.append((entry.path, "skipped", f"folder name does not parse: {why or 'unexpected form'}; expected "
                                                f"{FOLDER_EXAMPLE}"))
        return
    gender = GENDER_KEYS.index(m["gender"])
    age = int(m["age"])
    seen: set[str] = set()
    try:
        files = list(os.scandir(entry.path))
    except OSError as e:
        problems.append((entry.path, "skipped", f"cannot list this person folder ({e.strerror})"))
        return
    for f in files:
        stem, ext = os.path.splitext(f.name)
        if f.name.startswith("._") or f.name.startswith("."):
            problems.append((f.path, "skipped", "hidden or macOS AppleDouble file, not an image"))
            continue
        if ext.lower() not in IMAGE_EXTS:
            problems.append((f.path, "skipped", f"not an image file (extension {ext or 'none'!r}, expected .jpg/.jpeg/.png)"))
            continue
        if stem not in MASK_FILES:
            problems.append((f.path, "skipped", f"unknown file name {stem!r}, expected one of {', '.join(MASK_FILES)}"))
            continue
        if stem in seen:
            problems.append((f.path, "skipped", f"second file for {stem!r} in this folder"))
            continue
        kind = entry_kind(f)  # only regular files are ever opened: a named pipe would hang the reader
        if kind == "file":
            why = header_problem(f.path) if verify else None
        else:
            why = "not a regular file: a folder" if kind == "dir" else kind
        if why:
            problems.append((f.path, "skipped", why))
            continue
        seen.add(stem)
        rows.append((f.path, m["id"], entry.name, f.name, gender, m["race"], age, MASK_FILES[stem]))
    for stem in MASK_FILES:
        if stem not in seen:
            problems.append((os.path.join(entry.path, stem + ".*"), "missing", f"no usable {stem} image in this folder"))


def folder_problem(name: str) -> str | None:
    """Which part of a person folder's name is wrong, in words (None when every part is right)."""
    parts = name.split("_")
    if len(parts) != 4:
        return f"{len(parts)} part(s) separated by '_', expected 4"
    pid, gender, race, age = parts
    if not re.fullmatch(r"\d+(?:-\d+)?", pid):
        return f"id {pid!r} is not digits (e.g. 000001 or 001498-1)"
    if gender not in GENDER_KEYS:
        hint = " (lowercase, as the competition writes it)" if gender.lower() in GENDER_KEYS else ""
        return f"gender {gender!r} is not 'male' or 'female'{hint}"
    if not race.isalpha():
        return f"race {race!r} is not a word of letters"
    if not age.isdigit() or int(age) > MAX_AGE:
        return f"age {age!r} is not a whole number from 0 to {MAX_AGE}"
    return None


def printable(path: str) -> str:
    """A path safe to show and store: undecodable bytes (non-UTF-8 file names) become U+FFFD."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def assign_labels(train: pd.DataFrame, bounds: AgeBounds) -> pd.DataFrame:
    """(Re)compute age band and class from age, gender and mask: how new age bounds flow everywhere."""
    out = train.copy()
    out["age_band"] = age_band(out["age"].to_numpy(), bounds) if len(out) else np.zeros(0, np.int64)
    out["label"] = encode(out["mask"].to_numpy(), out["gender"].to_numpy(), out["age_band"].to_numpy()) if len(out) else np.zeros(0, np.int64)
    return out


def report_shared_ids(train: pd.DataFrame, problems: list) -> None:
    """A person id in several folders is one person to the split; say so, and name labels that disagree."""
    folders = train.groupby("person_id")["folder"].unique()
    for pid, names in folders[folders.map(len) > 1].items():
        rows = train[train["person_id"] == pid].drop_duplicates("folder")
        differ = [k for k in ("gender", "age") if rows[k].nunique() > 1]
        what = f"with different {' and '.join(differ)}" if differ else "with the same labels"
        problems.append((", ".join(sorted(names)), "duplicate",
                         f"person id {pid} names {len(names)} folders {what}: kept as one person in splits, each "
                         f"folder's images keep their own labels"))


def _cross_check_csv(csv_path: Path, train: pd.DataFrame, problems: list) -> None:
    try:
        table = read_user_csv(csv_path, dtype=str)
    except Exception as e:  # pandas raises many types for malformed files
        problems.append((str(csv_path), "csv", f"cannot read train.csv ({e})"))
        return
    if "path" not in table.columns:
        problems.append((str(csv_path), "csv", f"train.csv has no 'path' column (columns: {list(table.columns)})"))
        return
    on_disk = set(train["folder"].unique())
    listed = set(table["path"].astype(str))
    for folder in sorted(listed - on_disk)[:200]:
        problems.append((folder, "csv", "listed in train.csv but no usable folder on disk"))
    for folder in sorted(on_disk - listed)[:200]:
        problems.append((folder, "csv", "folder on disk but not listed in train.csv"))
    report_disagreements(table, problems)


def report_disagreements(table: pd.DataFrame, problems: list) -> None:
    """train.csv rows whose id, gender or age differ from their folder's name: the folder is what the labels come
    from, so a row that says otherwise is named (a hand edit in one of the two places)."""
    def same(col: str, listed, named: str) -> bool:
        text = str(listed).strip()
        return (text.lstrip("0") or "0") == (named.lstrip("0") or "0") if col == "age" else text == named
    columns = [c for c in ("id", "gender", "age") if c in table.columns]
    found = 0
    for row in table[["path", *columns]].itertuples(index=False):
        m = FOLDER_RE.match(str(row.path))
        differ = [f"{c} {str(getattr(row, c))!r} (the folder says {m[c]!r})" for c in columns
                  if m and not same(c, getattr(row, c), m[c])]
        if differ:
            problems.append((str(row.path), "csv", f"train.csv disagrees with the folder name: {', '.join(differ)}; "
                                                   f"the labels come from the folder name"))
            found += 1
            if found == 200:
                return


def scan_eval(root: Path, problems: list) -> pd.DataFrame | None:
    info = root / "eval" / "info.csv"
    images = root / "eval" / "images"
    if not info.exists():
        if images.is_dir():
            problems.append((str(info), "missing", "eval/images exists but eval/info.csv is missing"))
        return None
    try:
        table = read_user_csv(info, dtype=str, keep_default_na=False)
    except Exception as e:
        problems.append((str(info), "csv", f"cannot read eval/info.csv ({e})"))
        return None
    if "ImageID" not in table.columns:
        problems.append((str(info), "csv", f"eval/info.csv has no 'ImageID' column (columns: {list(table.columns)})"))
        return None
    kinds = {e.name: entry_kind(e) for e in os.scandir(images)} if images.is_dir() else {}
    present = {name for name, kind in kinds.items() if kind == "file"}
    ids = table["ImageID"].astype(str)
    repeated = ids[ids.duplicated()].unique()
    for image_id in repeated[:200]:
        problems.append((str(info), "csv", f"ImageID {image_id} is listed {int((ids == image_id).sum())} times in "
                                           f"eval/info.csv: the submission repeats its answer on each row"))
    out = pd.DataFrame({"image_id": ids, "path": [str(images / i) for i in ids], "exists": ids.isin(present)})
    for image_id, p in out.loc[~out["exists"], ["image_id", "path"]].head(200).itertuples(index=False):
        kind = kinds.get(image_id)
        problems.append((p, "missing", "named in eval/info.csv but not found in eval/images" if kind is None else
                         f"named in eval/info.csv but unusable: {'a file' if kind == 'dir' else kind}"))
    return add_hidden_truth(out, root / "eval" / "labels.csv", problems)


def add_hidden_truth(out: pd.DataFrame, labels: Path, problems: list) -> pd.DataFrame:
    """The demo's hidden truth (eval/labels.csv: ImageID, ans, person) as `label` and `person` columns. A damaged
    file is reported and left out: it only scores the demo, so it never stops the data from being used."""
    if not labels.exists():
        return out
    try:
        truth = read_user_csv(labels, dtype=str, keep_default_na=False)
        missing = [c for c in ("ImageID", "ans") if c not in truth.columns]
        if missing:
            raise ValueError(f"no {' or '.join(repr(c) for c in missing)} column (columns: {list(truth.columns)})")
        ans = pd.to_numeric(truth["ans"], errors="coerce")
        bad = ans.isna() | ~ans.between(0, 17) | (ans % 1 != 0)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} row(s) hold no class 0-17 in 'ans' (e.g. "
                             f"{truth.loc[bad, 'ans'].iloc[0]!r} on line {int(bad.idxmax()) + 2})")
    except (OSError, ValueError) as e:
        problems.append((str(labels), "csv", f"cannot read the demo's hidden truth eval/labels.csv ({e}); "
                                             f"predictions of the eval set get no demo score"))
        return out
    out["label"] = out["image_id"].map(dict(zip(truth["ImageID"], ans.astype(int)))).astype("Int64")
    if "person" in truth.columns:  # demos generated since 2026-12-02
        out["person"] = out["image_id"].map(dict(zip(truth["ImageID"], truth["person"].mask(truth["person"] == ""))))
    return out


def index_data(root: str | os.PathLike, bounds: AgeBounds = DEFAULT_BOUNDS, corrections: pd.DataFrame | None = None,
               verify: bool = True) -> DataIndex:
    """Scan `root` into a DataIndex. `verify` reads each file's header to catch empty or non-image files."""
    t0 = time.perf_counter()
    root = Path(root).expanduser()
    images = _check_root(root)
    rows: list = []
    problems: list = []
    for entry in sorted(os.scandir(images), key=lambda e: e.name):
        kind = entry_kind(entry)
        if kind == "dir":
            _scan_person(entry, verify, rows, problems)
        else:
            what = "a file" if kind == "file" else kind
            problems.append((entry.path, "skipped", f"{what} where a person folder was expected"))
    train = pd.DataFrame(rows, columns=TRAIN_COLUMNS[:8])
    if train.empty and not any(k == "skipped" for _, k, _ in problems):
        raise DataRootError(f"{str(images)!r} holds no person folders: expected folders named {FOLDER_EXAMPLE}")
    if train.empty:
        raise DataRootError(f"{str(images)!r} holds no usable images: all {len(problems)} entries were skipped "
                            f"(first: {problems[0][0]}: {problems[0][2]})")
    applied = None
    if corrections is not None and len(corrections):
        from maskcls.data.corrections import apply_corrections
        train = apply_corrections(train, corrections)
        applied = train.attrs["corrections"]
        problems += [(f"corrections line {u['line']}", "corrections", u["reason"]) for u in applied["unmatched"]]
    train = assign_labels(train, bounds)
    train.attrs["corrections"] = applied
    report_shared_ids(train, problems)
    csv_path = root / "train" / "train.csv"
    if csv_path.exists():
        _cross_check_csv(csv_path, train, problems)
    eval_table = scan_eval(root, problems)
    problems = [(printable(p), k, r) for p, k, r in problems]
    return DataIndex(root=root, train=train, eval=eval_table,
                     problems=pd.DataFrame(problems, columns=["path", "kind", "reason"]),
                     bounds=bounds, seconds=time.perf_counter() - t0)


def with_bounds(index: DataIndex, bounds: AgeBounds) -> DataIndex:
    """The same index under other age bounds, without rescanning."""
    train = assign_labels(index.train, bounds)
    train.attrs["corrections"] = index.train.attrs.get("corrections")
    return DataIndex(root=index.root, train=train, eval=index.eval,
                     problems=index.problems, bounds=bounds, seconds=index.seconds)
