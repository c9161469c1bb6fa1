"""Fingerprints that say whether two machines' runs can be compared person by person.

- the **data fingerprint**: every usable photo (person folder / file name, not the machine's absolute path), the
  class it is labelled with after the corrections and under the run's age bounds. Two runs with the same one saw
  the same people with the same labels, wherever their data roots are.
- the **split fingerprint**: the validation people and the labels of their photos, from a run's validation
  predictions. Two runs with the same one can be paired.
"""
from __future__ import annotations

import hashlib
from pathlib import PurePath


def image_key(path: str) -> str:
    """A photo's name independent of where its data root is: `<person folder>/<file>` (unique in the layout)."""
    p = PurePath(str(path))
    return f"{p.parent.name}/{p.name}"


def image_keys(paths):
    """image_key of every path in a pandas Series, vectorised (a comparison keys thousands of photos per run)."""
    parts = paths.astype(str).str.rsplit("/", n=2)
    return parts.str[-2].where(parts.str.len() > 1, "") + "/" + parts.str[-1]


def _digest(lines) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()[:16]


def data_fingerprint(cfg) -> str:
    """The data fingerprint of a run config's data root, corrections and age bounds on this machine."""
    from maskcls.data.corrections import load_corrections
    from maskcls.data.index import index_data
    from maskcls.data.labels import AgeBounds
    corr = load_corrections(cfg.corrections) if cfg.corrections != "none" else None
    return rows_fingerprint(index_data(cfg.data_root, AgeBounds(cfg.age_lower, cfg.age_upper), corr,
                                       verify=False).train)


def rows_fingerprint(train) -> str:
    """The data fingerprint of an index's labelled table (path, label): what a run fixes when it starts."""
    return _digest(sorted(f"{image_key(p)}|{int(c)}" for p, c in zip(train["path"], train["label"])))


def split_fingerprint(frame) -> str:
    """The split fingerprint of a validation predictions table (path, person_id, label, ...)."""
    return _digest(sorted(f"{image_key(p)}|{pid}|{int(c)}" for p, pid, c in
                          zip(frame["path"], frame["person_id"].astype(str), frame["label"])))
