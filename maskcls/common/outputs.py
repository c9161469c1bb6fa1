"""The one output guard: every file a command writes where the user said (`--out`, the report's Markdown and
figures, a submission's probabilities) passes here before any work is done.

Refused, before anything is written: standard output where two files are written, a folder, a symbolic link (an
atomic write replaces the link, not what it points to, so what it seems to update is not), a file of a run or of
the runs root's own (config, checkpoints, predictions, the index, corrections, submissions), a table or image
folder of the data, a file the same command reads, and a folder that does not exist or cannot be written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DATA_FILES = ("eval/info.csv", "eval/labels.csv", "train/train.csv")  # the data's own tables, never an output
DATA_FOLDERS = ("eval/images", "train/images", ".maskcls-cache")


@dataclass
class OutputPlan:
    """Where a command will write: the main file the user named and the files that go with it."""

    path: Path
    companions: list[Path] = field(default_factory=list)  # written beside it (report.md, submission.probs.csv)
    folders: list[Path] = field(default_factory=list)  # folders it writes into (report_figures/)


def _run_folder_of(path: Path) -> Path | None:
    """The run folder `path` sits in (any ancestor holding a run's config.json and status.json), or None."""
    for parent in path.parents:
        if (parent / "config.json").is_file() and (parent / "status.json").is_file():
            return parent
    return None


def _runs_root_part(path: Path, runs_root: Path) -> str | None:
    """What of the runs root's own `path` would replace (None when it is none of them)."""
    from maskcls.common.fileio import RESERVED, RESERVED_SUFFIXES
    try:
        rel = path.relative_to(runs_root)
    except ValueError:
        return None
    first = rel.parts[0] if rel.parts else ""
    if first.startswith("."):
        return f"the runs root's own {first}"
    if first.lower() in RESERVED:
        return f"the runs root's {first}"
    if len(rel.parts) == 1 and first.lower().endswith(RESERVED_SUFFIXES):
        return f"a fold group's out-of-fold table {first}"
    return None


def _data_part(path: Path) -> str | None:
    """What of a data root `path` would replace, found from the layout itself (any data root, named or not): its
    train/images or eval/images folders, or its train.csv, eval/info.csv, eval/labels.csv."""
    for parent in path.parents:
        if parent.name == "images" and parent.parent.name in ("train", "eval") and \
                (parent.parent.parent / "train" / "images").is_dir():
            return f"the data's {parent.parent.name}/images folder ({parent})"
    table = {"train": ("train.csv",), "eval": ("info.csv", "labels.csv")}.get(path.parent.name, ())
    if path.name in table and (path.parent / "images").is_dir():
        return f"the data's own {path.parent.name}/{path.name}"
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def guard_output(out: str | os.PathLike, *, flag: str = "--out", example: str = "submission.csv",
                 companions: tuple[str, ...] = (), folders: tuple[str, ...] = (), reads=(), runs_root=None,
                 data_root=None) -> OutputPlan:
    """Check where a command will write (the file `out`, files named by `companions` from it, e.g. '{stem}.md',
    folders named by `folders`, e.g. '{stem}_figures') and return the plan; ValueError naming the flag, what was
    found and what is expected, before anything is written."""
    text = os.fspath(out) if isinstance(out, (str, os.PathLike)) else out
    if not isinstance(text, str) or text.strip() in ("", "-"):
        raise ValueError(f"{flag} {text!r}: expected a file name such as {example} (this command writes files, not "
                         f"standard output)")
    path = Path(text).expanduser()
    stem = path.with_suffix("")
    plan = OutputPlan(path, [Path(c.format(stem=stem, path=path)) for c in companions],
                      [Path(f.format(stem=stem, path=path)) for f in folders])
    read_paths = [Path(r) for r in reads if r]
    for target in [plan.path, *plan.companions]:
        _check_file(target, flag, example=example, reads=read_paths, runs_root=runs_root, data_root=data_root)
    for folder in plan.folders:
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise ValueError(f"{flag} {text!r}: it writes its figures into {str(folder)!r}, which is "
                             f"{'a symbolic link' if folder.is_symlink() else 'a file'}, expected a folder or nothing "
                             f"there; move it or choose another name")
        _check_place(folder, flag, text, runs_root=runs_root, data_root=data_root)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{flag} {text!r}: the folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {text!r}: the folder {str(parent)!r} is not writable")
    return plan


def _check_file(target: Path, flag: str, *, example: str, reads: list[Path], runs_root, data_root) -> None:
    shown = str(target)
    if target.is_symlink():
        raise ValueError(f"{flag} {shown!r} is a symbolic link (to {os.readlink(target)!r}); expected a new file name "
                         f"or a plain file such as {example}: a write would replace the link, not its target")
    if target.is_dir():
        raise ValueError(f"{flag} {shown!r} is a folder; expected a file there (move the folder away, or give "
                         f"{flag} another name such as {example})")
    if target.exists() and not target.is_file():
        raise ValueError(f"{flag} {shown!r} exists and is not a regular file (a FIFO or a device); expected a file "
                         f"name such as {example}")
    for r in reads:
        if _same_file(target, r) or target.resolve() == r.resolve():
            raise ValueError(f"{flag} {shown!r} is also a file this command reads ({str(r)!r}): writing it would "
                             f"replace what it reads; choose another name")
    _check_place(target, flag, shown, runs_root=runs_root, data_root=data_root)


def _check_place(target: Path, flag: str, shown: str, *, runs_root, data_root) -> None:
    """Not in a run folder, the runs root's own files or the data's tables and image folders."""
    resolved = target.resolve()
    run = _run_folder_of(resolved)
    if run is not None:
        raise ValueError(f"{flag} {shown!r} is inside the run folder {str(run)!r}, whose files belong to the run "
                         f"(config, checkpoints, predictions); write it outside the run folders")
    if runs_root:
        part = _runs_root_part(resolved, Path(runs_root).resolve())
        if part:
            raise ValueError(f"{flag} {shown!r} would write into {part} (in the runs root {str(runs_root)!r}); write "
                             f"it elsewhere")
    if data_root:
        root = Path(data_root).resolve()
        for rel in DATA_FILES:
            if resolved == root / rel:
                raise ValueError(f"{flag} {shown!r} would overwrite the data's own {rel}; expected a new file name "
                                 f"such as {str(root / 'eval' / 'submission.csv')!r}")
        for rel in DATA_FOLDERS:
            if resolved == root / rel or (root / rel) in resolved.parents:
                raise ValueError(f"{flag} {shown!r} is inside the data's {rel} folder, which holds only the data's "
                                 f"own files; expected a file name such as "
                                 f"{str(root / 'eval' / 'submission.csv')!r}")
    data = _data_part(resolved)
    if data:
        raise ValueError(f"{flag} {shown!r} would write into {data}, which holds only the data's own files; write "
                         f"it outside the data root")
