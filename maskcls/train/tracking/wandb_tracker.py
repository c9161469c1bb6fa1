"""W&B: online when the user has logged in (an API key in WANDB_API_KEY or ~/.netrc), else offline with its files in
the run folder (<run>/wandb/; `wandb sync` uploads them later); project and entity from the config or W&B's own
environment variables; a group is a W&B group."""
from __future__ import annotations

import netrc
import os
from pathlib import Path

from maskcls.train.tracking.base import TrackContext, Tracker, confusion_image, scalars


def logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class WandbTracker(Tracker):
    name = "wandb"

    def start(self, ctx: TrackContext) -> None:
        import wandb
        self.ctx = ctx
        mode = os.environ.get("WANDB_MODE") or ("online" if logged_in() else "offline")
        project = os.environ.get("WANDB_PROJECT") or ctx.project
        self.run = wandb.init(project=project, entity=os.environ.get("WANDB_ENTITY"), group=ctx.group,
                              name=ctx.run_name, config=ctx.config, dir=str(ctx.run_dir), mode=mode,
                              reinit="create_new", settings=wandb.Settings(silent=True, console="off"))

    def epoch(self, row: dict) -> None:
        self.run.log({**scalars(row), "epoch": int(row["epoch"])}, step=int(row["epoch"]))

    def best(self, confusion, epoch: int) -> None:
        import wandb
        k = len(confusion)
        table = wandb.Table(columns=["true", "predicted", "images"],
                            data=[[t, p, int(confusion[t][p])] for t in range(k) for p in range(k)])
        self.run.log({"confusion_table": table, "confusion": wandb.Image(confusion_image(confusion))}, step=epoch)

    def finish(self, summary: dict, checkpoint) -> None:
        import wandb
        for k, v in summary.items():
            if isinstance(v, (int, float, str)) and not isinstance(v, bool):
                self.run.summary[k] = v
        if checkpoint is not None and self.ctx.artifacts:
            art = wandb.Artifact(f"{self.ctx.run_name}-best", type="model")
            art.add_file(str(checkpoint))
            self.run.log_artifact(art)
        self.run.finish(exit_code=0 if summary.get("state") in ("completed", "pruned") else 1)


def read_history(run_dir) -> list[dict]:
    """The per-step history of a W&B run's .wandb file(s) under `run_dir`, read with W&B's own record protobufs
    (what `wandb sync` uploads): a check that offline runs hold what was logged."""
    import json
    import struct

    from wandb.proto import wandb_internal_pb2 as pb
    out = []
    for path in sorted(Path(run_dir).rglob("*.wandb")):
        data, pos, parts, records = path.read_bytes(), 7, b"", []
        while pos + 7 <= len(data):  # LevelDB log blocks: 7-byte headers, records split over 32 KiB blocks
            left = 32768 - pos % 32768
            if left < 7:
                pos += left
                continue
            _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
            if length == 0 and kind == 0:
                pos += left
                continue
            chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
            parts = chunk if kind in (1, 2) else parts + chunk
            if kind in (1, 4):
                records.append(parts)
        for raw in records:
            rec = pb.Record()
            rec.ParseFromString(raw)
            if rec.WhichOneof("record_type") == "history":
                out.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
    return out


__all__ = ["WandbTracker", "logged_in", "read_history"]
