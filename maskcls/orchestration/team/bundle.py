"""A run as one file for the team store: an uncompressed tar of its files (checkpoints do not compress) with a
manifest of each file's size and sha256, so a push is one upload, a pull one download, and what arrives is checked
file by file against what was sent before anything of it is used."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from maskcls.common.fileio import LIMITS

MANIFEST = "manifest.json"
BUNDLE = "run.tar"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_bundle(files: dict[str, Path], out: Path) -> dict[str, dict]:
    """Write `out` (a tar of `files`: archive name -> path) and return its manifest {name: {size, sha256}}."""
    manifest = {name: {"size": path.stat().st_size, "sha256": sha256_of(path)} for name, path in files.items()}
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for name, path in files.items():
            tar.add(path, arcname=name, recursive=False)
    return manifest


def limit_of(name: str) -> int:
    return {"metrics.jsonl": LIMITS["metrics"], "val_predictions.csv": LIMITS["table"],
            "val_history.csv": LIMITS["table"], "corrections.csv": LIMITS["table"],
            "best.pt": LIMITS["checkpoint"]}.get(name, LIMITS["json"])


def extract_bundle(bundle: Path, into: Path, allowed: tuple[str, ...], expected_sha256: str | None = None) -> dict:
    """The bundle's files into `into`, each checked: a plain file of an allowed name, within its size bound, and
    matching the manifest's size and sha256 (and the whole bundle its recorded digest). Returns the manifest."""
    if expected_sha256 and sha256_of(bundle) != expected_sha256:
        raise ValueError("the downloaded bundle does not match the digest its push recorded (damaged in transit, "
                         "or changed in the store)")
    with tarfile.open(bundle, "r:") as tar:
        members = tar.getmembers()
        if not members or members[0].name != MANIFEST or not members[0].isfile() or members[0].size > LIMITS["json"]:
            raise ValueError("the bundle holds no manifest first")
        try:
            manifest = json.loads(tar.extractfile(members[0]).read())
        except ValueError:
            raise ValueError("the bundle's manifest is not JSON") from None
        if not isinstance(manifest, dict):
            raise ValueError("the bundle's manifest is not a table of files")
        for m in members[1:]:
            _check_member(m, manifest, allowed)
            target = into / m.name
            with tar.extractfile(m) as src, open(target, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    dst.write(chunk)
            if sha256_of(target) != manifest[m.name]["sha256"]:
                os.unlink(target)
                raise ValueError(f"{m.name} does not match its sha256 in the manifest")
        missing = set(manifest) - {m.name for m in members[1:]}
        if missing:
            raise ValueError(f"the bundle lacks {', '.join(sorted(missing))}, which its manifest lists")
    return manifest


def _check_member(m: tarfile.TarInfo, manifest: dict, allowed: tuple[str, ...]) -> None:
    if m.name not in allowed or "/" in m.name or m.name.startswith("."):
        raise ValueError(f"the bundle holds {m.name[:80]!r}, which is no file of a run")
    if not m.isfile():
        raise ValueError(f"{m.name} in the bundle is not a plain file (a link or a device): refused")
    entry = manifest.get(m.name)
    if not isinstance(entry, dict) or entry.get("size") != m.size:
        raise ValueError(f"{m.name} in the bundle does not match its manifest's size")
    if m.size > limit_of(m.name):
        raise ValueError(f"{m.name} holds {m.size / 1e6:.1f} MB, more than a run's {m.name} may hold")
