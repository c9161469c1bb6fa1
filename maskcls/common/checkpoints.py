"""Checkpoint files: written atomically, loaded with weights_only=True, a damaged or unsafe one named.

torch is imported inside the functions: a listing of runs must not pay its import.
"""
from __future__ import annotations

import errno
import os
import pickle
import zipfile
from pathlib import Path

from maskcls.common.fileio import atomic_path

CKPT_FORMAT = "maskcls-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot or must not be loaded."""


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """torch.save to a temp file, then os.replace: a kill mid-write leaves the previous file intact."""
    import torch
    with atomic_path(path) as tmp:
        try:
            torch.save({"format": CKPT_FORMAT, **payload}, tmp)
        except RuntimeError as e:  # torch's writer reports a full disk as "inline_container.cc: unexpected pos"
            raise OSError(errno.EIO, write_failure_reason(tmp, e)) from e


def write_failure_reason(tmp: Path, error: BaseException) -> str:
    """Why a write failed, in words: a full disk or a file-size limit says so rather than torch's internals."""
    import resource
    import shutil
    try:
        free = shutil.disk_usage(tmp.parent).free
    except OSError:
        free = None
    size = tmp.stat().st_size if tmp.exists() else 0
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if free is not None and free < 64 * 2**20:
        return f"no space left on the device ({free / 2**20:.1f} MB free)"
    if limit != resource.RLIM_INFINITY and size >= limit - 4096:
        return f"file too large for this process's file-size limit ({limit:,} bytes)"
    return f"the writer failed ({str(error).splitlines()[0][:160]})"


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load with weights_only=True: a checkpoint carrying code is refused, a damaged one is named."""
    import torch
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} refused: it holds objects other than tensors and plain "
                              f"data, which could run code when loaded ({str(e).splitlines()[0][:200]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged or incomplete ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a maskcls checkpoint (expected format {CKPT_FORMAT})")
    return ckpt
