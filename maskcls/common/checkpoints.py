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
    return f"the writer failed ({first_line(error, 160)})"


def first_line(error: BaseException, limit: int = 200) -> str:
    """An error's first line for a message (its type's name when it has no text: EOFError() says nothing)."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load with weights_only=True: a checkpoint carrying code is refused, a damaged one is named."""
    import torch

    from maskcls.common.fileio import LIMITS, open_bounded
    path = Path(path)
    try:  # a regular file of a sane size, checked on the descriptor torch then reads (no FIFO, device, swap)
        fd = open_bounded(path, "checkpoint", LIMITS["checkpoint"])
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist") from None
    except ValueError as e:  # FileRefused: its message names the file and what it is
        raise CheckpointError(f"{e}: not loaded") from None
    except OSError as e:
        raise CheckpointError(e.strerror if isinstance(e, IsADirectoryError) else
                              f"checkpoint {str(path)!r} cannot be opened ({e.strerror})") from None
    try:
        with os.fdopen(fd, "rb") as f:
            head = f.read(4)
            if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch's zip, or a legacy pickle
                raise CheckpointError(f"{str(path)!r} is not a checkpoint (it starts with {head!r}: "
                                      f"{'text, e.g. JSON' if head[:1] in (b'{', b'[') else 'another kind of file'}); "
                                      f"expected a .pt file a run wrote")
            f.seek(0)
            ckpt = torch.load(f, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} refused: it holds objects other than tensors and plain "
                              f"data, which could run code when loaded ({first_line(e)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, IndexError, KeyError, ValueError, TypeError,
            AttributeError) as e:  # what torch's reader raises on an empty, cut or foreign file
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged or incomplete ({type(e).__name__}: "
                              f"{first_line(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a maskcls checkpoint (expected format {CKPT_FORMAT})")
    why = shape_problem(ckpt, torch.Tensor)
    if why:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: {why}")
    return ckpt


def shape_problem(ckpt: dict, tensor_type) -> str | None:
    """What is wrong with a loaded checkpoint's contents, in words (None when every reader can use it): the
    weights under "model" as named tensors, the config a dict, the epoch a whole number."""
    from maskcls.common.fileio import json_kind
    model = ckpt.get("model")
    if model is None:
        return f"it holds no 'model' weights (keys: {', '.join(sorted(map(str, ckpt))) or 'none'})"
    if not isinstance(model, dict) or not model:
        return f"'model' must map parameter names to tensors, found {json_kind(model)}"
    odd = next((k for k, v in model.items() if not isinstance(k, str) or not isinstance(v, tensor_type)), None)
    if odd is not None:
        return f"'model' must map parameter names to tensors; {odd!r} holds {type(model[odd]).__name__}"
    if "config" in ckpt and not isinstance(ckpt["config"], dict):
        return f"'config' must be a JSON object of run-config keys, found {json_kind(ckpt['config'])}"
    if "epoch" in ckpt and (isinstance(ckpt["epoch"], bool) or not isinstance(ckpt["epoch"], int)):
        return f"'epoch' must be a whole number, found {ckpt['epoch']!r}"
    return None
