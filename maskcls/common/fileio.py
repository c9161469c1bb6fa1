"""Atomic writes and root-confined paths: a crash or a full disk never leaves a half file behind."""
from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# What the runs root itself holds beside run folders: no run, group, member or file name may take one of these
# (`train --name corrections` would put accepted corrections inside a run and delete them with it).
RESERVED = ("team", "corrections", "submissions", "sweeps", "ladders", "augment-specs", "mlflow",
            "run-index.json", "used_by.json")
RESERVED_SUFFIXES = ("-oof.csv",)  # a fold group's out-of-fold table, <runs root>/NAME-oof.csv

MB = 2 ** 20
# The most one file of each kind may hold: far above any real one (a season's run index is ~4 MB, the real data's
# out-of-fold table ~6 MB), far below what would exhaust memory. /dev/zero, a FIFO or a 466 MB metrics file is
# refused by size or kind before it is read.
LIMITS = {"json": 16 * MB, "notes": 4 * MB, "metrics": 32 * MB, "table": 64 * MB, "index": 64 * MB,
          "text": 16 * MB, "checkpoint": 4 * 2 ** 30, "image": 64 * MB}


class FileRefused(ValueError):
    """A file a command was given or found that it will not read: not a regular file, too large, outside its root."""


def _kind_of_mode(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_bounded(path: str | os.PathLike, what: str = "file", limit: int = LIMITS["text"], *,
                 root: str | os.PathLike | None = None) -> int:
    """An open descriptor of `path`, only if it is a regular file of at most `limit` bytes (and, with `root`, one
    that resolves inside that folder). The checks are made on the opened descriptor: a FIFO cannot hang the open
    (O_NONBLOCK), a device cannot stream without end, a swap after a check changes nothing."""
    if root is not None:
        base, real = os.path.realpath(root), os.path.realpath(path)
        if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
            raise FileRefused(f"{what} {os.fspath(path)!r} leads outside its folder {base!r} (to {real!r}): not read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            raise FileRefused(f"{what} {os.fspath(path)!r} is a dangling symbolic link (to "
                              f"{os.readlink(path)!r}, which does not exist)") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, f"{what} {os.fspath(path)!r} is a folder, expected a file")
        raise FileRefused(f"{what} {os.fspath(path)!r} is {_kind_of_mode(st.st_mode)}, expected a regular file")
    if st.st_size > limit:
        os.close(fd)
        raise FileRefused(f"{what} {os.fspath(path)!r} holds {st.st_size / MB:,.1f} MB, more than the "
                          f"{limit / MB:,.0f} MB such a file may hold: not read")
    return fd


def read_bounded(path: str | os.PathLike, what: str = "file", limit: int = LIMITS["text"], *,
                 root: str | os.PathLike | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (see open_bounded): the one way a file a user gives,
    a run holds or a teammate sent is read."""
    fd = open_bounded(path, what, limit, root=root)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileRefused(f"{what} {os.fspath(path)!r} grew past {limit / MB:,.0f} MB while it was read: not read")
    return data


def read_text_file(path: str | os.PathLike, what: str = "file", limit: int = LIMITS["text"], *,
                   root: str | os.PathLike | None = None, errors: str = "strict") -> str:
    """A bounded regular file's UTF-8 text (UnicodeDecodeError when it is not UTF-8 and `errors` is strict)."""
    return read_bounded(path, what, limit, root=root).decode("utf-8", errors)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600: give the mode a plain open() would
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            why = e.strerror or str(e)
            raise OSError(e.errno, f"could not write {path}: {why}; the previous version of the file is intact") from e
        raise


def current_umask() -> int:
    """The process umask, read without changing it (os.umask sets it too, which races other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def locked(path: str | os.PathLike, timeout: float = 30.0) -> Iterator[None]:
    """Hold an exclusive lock for `path` (a `.<name>.lock` file beside it) while the caller reads, changes and
    rewrites it: several writers (two studio tabs, the CLI) then never lose each other's change. The kernel frees
    the lock if the holder dies; a holder that never lets go is named after `timeout` seconds."""
    import fcntl
    import time
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a+") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} is being changed by another process that has held its lock for over "
                                       f"{timeout:.0f} s; try again when it is done") from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """`obj` with NaN and infinities as None and numpy scalars as Python numbers: what strict JSON can hold (bare
    NaN is not JSON; jq, JavaScript and teammates' tools refuse it)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "shape", None) == ():  # numpy scalar
        return json_safe(obj.item())
    return obj


def dumps(obj: Any, **kw) -> str:
    """Strict JSON text of `obj` (see json_safe); anything else JSON cannot hold is written as its text."""
    return json.dumps(json_safe(obj), allow_nan=False, default=str, **kw)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, dumps(obj, indent=2, sort_keys=False) + "\n")


def loads(text: str) -> Any:
    """The one JSON parser of the project: json.loads, and a JSONDecodeError (with where it is) for what json
    takes silently or fails on with a traceback: a key given twice in one object (the last would win unseen),
    NaN or Infinity (not JSON), and nesting too deep for the parser."""
    def pairs(items):
        seen = {}
        for k, v in items:
            if k in seen:
                first = text.find(json.dumps(k))
                raise json.JSONDecodeError(f"the key {k!r} is given twice in one object (which one is meant?)", text,
                                           max(text.find(json.dumps(k), first + 1), 0))
            seen[k] = v
        return seen
    def constant(name):  # NaN, Infinity, -Infinity: not JSON, never written here (json_safe), so never a figure
        raise json.JSONDecodeError(f"{name} is not a JSON number (a figure must be finite)", text,
                                   max(text.find(name), 0))
    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply (arrays or objects inside one another more than about "
                                   "a thousand levels)", text, 0) from None


def read_json(path: str | os.PathLike, what: str = "JSON file", limit: int = LIMITS["json"], *,
              root: str | os.PathLike | None = None) -> Any:
    """A bounded regular file's JSON (FileRefused, UnicodeDecodeError or JSONDecodeError, all ValueErrors)."""
    return loads(read_text_file(path, what, limit, root=root))


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame atomically (no index column)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_user_csv(path: str | os.PathLike, *, limit: int = LIMITS["table"], root: str | os.PathLike | None = None,
                  **kw):
    """`pandas.read_csv` of a table a user gives or a run holds, read through the bounded reader; one it cannot
    read raises ValueError saying why in words ("empty", "not UTF-8 text", "a named pipe", "holds 466 MB", or the
    parser's complaint) for the caller to name the file and what it expected."""
    import io

    import pandas as pd
    source = io.BytesIO(read_bounded(path, "table", limit, root=root)) if isinstance(path, (str, os.PathLike)) \
        else path  # a buffer already in memory
    try:
        return pd.read_csv(source, **kw)
    except pd.errors.EmptyDataError:
        raise ValueError("empty") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except pd.errors.ParserError as e:
        raise ValueError(f"not a CSV table: {str(e).strip()}") from None


def is_reserved(name: str) -> bool:
    """A name the runs root keeps for itself (any case: a case-insensitive disk would collide too)."""
    return name.lower() in RESERVED or name.lower().endswith(RESERVED_SUFFIXES)


def check_name(name: str, what: str = "run name") -> str:
    """The one name check: one path component of letters, digits, '.', '_', '-' (no leading dot), and none of the
    names the runs root keeps for itself (RESERVED, or ending as an out-of-fold table does)."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise ValueError(
            f"invalid {what} {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if is_reserved(name):
        raise ValueError(f"invalid {what} {name!r}: it is reserved (the runs root keeps {', '.join(RESERVED)} and "
                         f"NAME-oof.csv tables for itself); choose another name")
    return name


def inside(root: str | os.PathLike, *parts: str) -> Path:
    """Join `parts` under `root` and refuse any result that escapes it (.., absolute parts, links)."""
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"path {'/'.join(parts)!r} escapes its root {str(base)!r}")
    return target


def json_kind(value) -> str:
    """The JSON name of a parsed value's type, for messages that say what was found ("array", "null", ...)."""
    return {list: "array", dict: "object", str: "string", type(None): "null", bool: "boolean", int: "number",
            float: "number"}.get(type(value), type(value).__name__)
