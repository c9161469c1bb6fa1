"""The one entry point of detached job processes (never typed by a user): `python -m maskcls.orchestration.worker KIND FOLDER`.

JobFolder.start() spawns it; it opens the folder as its kind and runs the job's lifecycle (JobFolder.run).
Kinds are looked up by name, so this module imports only the kind it runs.
"""
from __future__ import annotations

import importlib
import sys

KINDS = {  # worker name -> "module:class" of its JobFolder
    "train": "maskcls.orchestration.jobs:TrainingJob",
    "train-rank": "maskcls.orchestration.jobs:TrainingRank",  # a torchrun rank under a multi-GPU job
    "submission": "maskcls.orchestration.submissions:SubmissionFolder",
    "sweep-worker": "maskcls.orchestration.sweeps.worker:WorkerFolder",
    "ladder-worker": "maskcls.orchestration.ladder_worker:LadderWorker",
    "demo": "maskcls.data.demo:DemoGeneration",
}


def job_class(kind: str):
    if kind not in KINDS:
        raise SystemExit(f"maskcls.orchestration.worker: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        raise SystemExit("usage: python -m maskcls.orchestration.worker KIND FOLDER (started by maskcls itself)")
    job = job_class(argv[0]).at(argv[1])
    status = job.run()
    return 0 if status.get("state") in ("completed", "pruned") else 1


if __name__ == "__main__":
    sys.exit(main())
