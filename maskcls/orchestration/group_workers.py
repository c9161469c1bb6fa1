"""Background workers of a named group (a sweep or a ladder): <runs root>/<area>/<GROUP>/workers/<wNN>/, each a
job folder of its own. Several workers, here or on machines sharing the runs root, serve one group; a worker's
folder is claimed by an atomic mkdir, so two launches never share a name.
"""
from __future__ import annotations

import os
from pathlib import Path

from maskcls.common.fileio import check_name, inside
from maskcls.common.jobfolder import JobFolder, now


class GroupWorker(JobFolder):
    """One worker of one group; subclasses name the `area` folder, the `group_word` (for messages) and `work`."""

    area = ""
    group_word = "group"

    def finish(self, all_failed: bool, error: str, **fields) -> None:
        """The worker's last status: failed (with `error`) when everything it ran failed, else just `fields`."""
        if all_failed:
            self.write_status(state="failed", ended=now(), pid=None, error=error, **fields)
        else:
            self.write_status(**fields)

    def __init__(self, runs_root, group: str, name: str):
        self.name = check_name(name, "worker name")
        self.group = check_name(group, f"{self.group_word} name")
        self.root = Path(runs_root)
        self.path = inside(self.root / self.area, self.group, "workers", self.name)

    @classmethod
    def at(cls, path) -> "GroupWorker":
        path = Path(path)  # <runs root>/<area>/<group>/workers/<name>
        return cls(path.parents[3], path.parents[1].name, path.name)

    @classmethod
    def claim_next(cls, runs_root, group: str) -> "GroupWorker":
        """The group's next worker folder (w01, w02, ...), created for the caller."""
        folder = Path(runs_root) / cls.area / check_name(group, f"{cls.group_word} name") / "workers"
        folder.mkdir(parents=True, exist_ok=True)
        n = 1 + max([int(p.name[1:]) for p in folder.iterdir() if p.name[1:].isdigit()] or [0])
        while True:
            worker = cls(runs_root, group, f"w{n:02d}")
            try:
                os.mkdir(worker.path)
                return worker
            except FileExistsError:
                n += 1

    @classmethod
    def states(cls, runs_root, group: str) -> list[dict]:
        """Every worker's state (as `jobs list` shows a job's), oldest first."""
        folder = Path(runs_root) / cls.area / check_name(group, f"{cls.group_word} name") / "workers"
        if not folder.is_dir():
            return []
        return [cls(runs_root, group, p.name).state() for p in sorted(folder.iterdir()) if p.is_dir()]
