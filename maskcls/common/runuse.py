"""What uses a run's checkpoints: the marks a submission, soup or review leaves (used_by.json, which a prune
keeps), and the lease a live command holds while it loads and uses them (a prune skips a run in use)."""
from __future__ import annotations

import fcntl
import time
from contextlib import contextmanager

from maskcls.common.fileio import check_name, read_json

USED_FILE = "used_by.json"  # {checkpoint: [what uses it]}: a submission, a soup, a review; prune keeps these


class RunUse:
    """Mixed into RunFolder: needs `path`, `name` and `pulled()`."""

    def mark_used(self, checkpoint: str, by: str) -> None:
        """Record that `by` (a submission, a soup, a review) uses `checkpoint`, so that a prune keeps it; one lock
        around read-change-replace, as several predictions may end at once."""
        from maskcls.common.fileio import locked, write_json
        path = self.local_dir / USED_FILE
        with locked(path):
            marks = self.used_marks()
            if by not in marks.setdefault(check_name(checkpoint, "checkpoint name"), []):
                marks[checkpoint].append(by)
                write_json(path, marks)

    def used_marks(self) -> dict[str, list[str]]:
        """{checkpoint: [what uses it]}; a damaged file reads as every checkpoint used (nothing is pruned)."""
        try:
            marks = read_json(self.local_dir / USED_FILE, USED_FILE, root=self.local_dir)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {"*": [f"{USED_FILE} could not be read"]}
        if not isinstance(marks, dict) or not all(isinstance(v, list) for v in marks.values()):
            return {"*": [f"{USED_FILE} is not a table of checkpoints"]}
        return marks

    use_lock_path = property(lambda self: self.path / ".use.lock")

    @contextmanager
    def lease(self, timeout: float = 60.0):
        """Hold this run's checkpoints for a live command (a prediction, a soup, a scoring, a review) until it
        ends: a shared lock on `.use.lock` that `runs prune` must take exclusively before it removes a file, so a
        prune skips a run in use, and a command starting during a prune waits for it (then finds what is left).
        A teammate's pulled run is never pruned and is not written to: no lease there."""
        if self.pulled() or not self.path.is_dir():
            yield
            return
        with open(self.use_lock_path, "a+") as f:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"run {self.name!r} has been held by a prune for over {timeout:.0f} s; "
                                           f"try again when it ends") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def try_exclusive_use(self):
        """For a prune: an open file holding this run's use lock exclusively, or None while a live command holds
        its lease (the kernel releases a dead holder's lock)."""
        f = open(self.use_lock_path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return None
        return f

