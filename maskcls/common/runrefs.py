"""What a run reference names: a run of the runs root (NAME), a teammate's pulled run (MEMBER/RUN, under
<runs root>/team/), or a run folder given by its path, as a terminal user tab-completes it."""
from __future__ import annotations

import os
from pathlib import Path

from maskcls.common.fileio import NAME_RE

TEAM_DIR = "team"  # <runs root>/team/MEMBER/RUN: teammates' runs pulled from the team store


def run_folder_path(runs_root: str | os.PathLike, ref: str) -> Path | None:
    """The folder `ref` names when it is a path rather than a bare run name (None for a bare name).

    A path: it has a separator, starts with '.' or '~', or is not a run in `runs_root` but is a folder with a
    config.json here.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError("a run name or run folder path is needed, got an empty one")
    member, sep, name = ref.partition("/")
    if sep and NAME_RE.match(member) and NAME_RE.match(name) and \
            (Path(runs_root) / TEAM_DIR / member / name / "config.json").is_file():
        return (Path(runs_root) / TEAM_DIR / member / name).resolve()  # MEMBER/RUN: a teammate's pulled run
    if sep and NAME_RE.match(member) and NAME_RE.match(name) and not (Path(ref) / "config.json").is_file():
        pulled = Path(runs_root) / TEAM_DIR / member
        parts = sorted(p.name for p in pulled.glob(f"{name}-*") if (p / "config.json").is_file()) \
            if pulled.is_dir() else []
        if parts:
            raise ValueError(f"{ref!r} is a group pulled from {member}'s server, not one run: name one of its runs "
                             f"({', '.join(f'{member}/{p}' for p in parts[:4])})")
        raise ValueError(f"{ref!r} is not in this runs root: a teammate's run MEMBER/RUN is used once it is pulled "
                         f"(`maskcls team pull {ref}`, or Pull on the Runs page's Team section)")
    looks_like_path = os.sep in ref or (os.altsep and os.altsep in ref) or ref.startswith((".", "~"))
    if not looks_like_path:
        if (Path(runs_root) / ref).is_dir() or not (Path(ref) / "config.json").exists():
            return None
    path = Path(ref).expanduser().resolve()
    if path.name in ("", "/"):
        raise ValueError(f"run folder {ref!r} is not a run folder")
    return path
