"""Ladder workers: each claims the ladder's planned runs one by one and trains it, queued for its device like a
training job. The claim is an atomic mkdir in the runs root, or, for a ladder created with `--claims`, one row in
the claims database (maskcls.orchestration.team.claims), so workers on servers with no shared folder split one
ladder; none trains a run twice.
"""
from __future__ import annotations

from maskcls.orchestration.claimed import run_group
from maskcls.orchestration.group_workers import GroupWorker
from maskcls.orchestration.ladder import LADDERS_DIR, load_ladder


def run_ladder(runs_root, name: str, *, progress=None, log=print, claims: str = "", data_root: str = "") -> dict:
    """Claim and train the ladder's runs until every one has ended (here or on another worker); returns the runs
    this worker trained. `data_root`: this server's copy of the data (the ladder's path may differ here)."""
    ladder = load_ladder(runs_root, name, claims)
    planned = ladder.planned()
    if data_root:
        from maskcls.train.config import RunConfig
        planned = [(n, RunConfig.from_dict({**c.to_dict(), "data_root": data_root})) for n, c in planned]
    mine = run_group(runs_root, name, planned, claims=claims or ladder.claims, progress=progress, log=log)
    return {"ladder": name, "trained": mine}


class LadderWorker(GroupWorker):
    """One background worker of a ladder: <runs_root>/ladders/<NAME>/workers/<wNN>/."""

    kind = "ladder worker"
    worker = "ladder-worker"
    area = LADDERS_DIR
    group_word = "ladder"

    @property
    def ladder(self) -> str:
        return self.group

    def work(self) -> None:
        result = run_ladder(self.root, self.ladder, log=self.log)
        failed = [n for n, s in result["trained"].items() if s == "failed"]
        self.finish(bool(failed) and len(failed) == len(result["trained"]),
                    f"every run this worker trained failed: {', '.join(failed)}", trained=result["trained"])


def start_worker(runs_root, name: str) -> LadderWorker:
    """A detached worker that outlives the studio."""
    load_ladder(runs_root, name)
    worker = LadderWorker.claim_next(runs_root, name)
    worker.start()
    return worker


def list_workers(runs_root, name: str) -> list[dict]:
    return LadderWorker.states(runs_root, name)


__all__ = ["LadderWorker", "list_workers", "run_ladder", "start_worker"]
