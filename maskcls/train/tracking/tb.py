"""TensorBoard: event files in the run folder (<run>/tensorboard/), so `tensorboard --logdir checkpoints/` shows every
run, grouped by the group's folder name prefix, with the configs in the hyper-parameters tab."""
from __future__ import annotations

from maskcls.train.tracking.base import TrackContext, Tracker, confusion_image, flat_config, scalars


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def start(self, ctx: TrackContext) -> None:
        from torch.utils.tensorboard import SummaryWriter
        self.ctx = ctx
        self.writer = SummaryWriter(log_dir=str(ctx.run_dir / "tensorboard"))
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in flat_config(ctx.config).items()))
        if ctx.group:
            self.writer.add_text("group", ctx.group)

    def epoch(self, row: dict) -> None:
        for key, value in scalars(row).items():
            self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def best(self, confusion, epoch: int) -> None:
        self.writer.add_image("confusion (best epoch)", confusion_image(confusion), epoch, dataformats="HWC")
        rows = ["| true \\ predicted | " + " | ".join(str(c) for c in range(len(confusion))) + " |",
                "|" + "---|" * (len(confusion) + 1)]
        rows += [f"| {t} | " + " | ".join(str(int(v)) for v in r) + " |" for t, r in enumerate(confusion)]
        self.writer.add_text("confusion (best epoch)", "\n".join(rows), epoch)

    def finish(self, summary: dict, checkpoint) -> None:
        from torch.utils.tensorboard.summary import hparams
        metrics = {f"summary/{k}": float(v) for k, v in summary.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        exp, ssi, sei = hparams(flat_config(self.ctx.config), metrics)
        for s in (exp, ssi, sei):  # in this run's own folder, not a sub-run: the hyper-parameters tab lists the run
            self.writer.file_writer.add_summary(s)
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, 0)
        self.writer.close()
