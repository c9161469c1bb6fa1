"""The real dataset's public file listing (training paths, eval ids), carried so tests need nothing outside the repo.

See README.md here for the source of each file and the facts they show.
"""
from __future__ import annotations

import gzip
from pathlib import Path

HERE = Path(__file__).resolve().parent
LISTINGS = ("train_image_paths.txt", "eval_image_ids.txt")


def listing_path(name: str) -> Path:
    """The gzipped file of a listing named in LISTINGS."""
    if name not in LISTINGS:
        raise ValueError(f"unknown reference listing {name!r}; expected one of {', '.join(LISTINGS)}")
    return HERE / f"{name}.gz"


def read_lines(path: str | Path) -> list[str]:
    """Non-empty, stripped lines of a text file, gzipped (*.gz) or plain."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [line.strip() for line in raw.decode("utf-8").splitlines() if line.strip()]


def read_listing(name: str) -> list[str]:
    """The lines of a carried listing: 18,900 training paths or 12,600 eval ids in info.csv order."""
    return read_lines(listing_path(name))
