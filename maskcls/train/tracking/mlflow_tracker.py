"""MLflow: a tracking URI from the config or MLFLOW_TRACKING_URI, else a SQLite file in <runs root>/mlflow/ (a local
folder); a group is a parent run whose children are its runs; the best checkpoint only when asked (it is large)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from maskcls.train.tracking.base import TrackContext, Tracker, confusion_image, flat_config, scalars


def tracking_uri(ctx: TrackContext) -> str:
    if ctx.uri:
        return ctx.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    folder = Path(ctx.runs_root).resolve() / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def check_uri(uri: str) -> None:
    """Refuse a file-backed tracking URI whose folder does not exist: MLflow would create the whole path (a typo
    makes folders at the filesystem root) and report success."""
    from urllib.parse import urlparse
    if not uri:
        return
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
        if not path or path == ":memory:":
            raise ValueError(f"MLflow tracking URI {uri!r} names no database file: expected sqlite:///path/to/mlflow.db")
    elif parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else uri
    else:
        return  # a server (http, https, databricks, postgresql ...): its own errors name it
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise ValueError(f"MLflow tracking URI {uri!r}: the folder {str(folder)!r} does not exist; create it first or "
                         f"give a path in an existing folder")


class MlflowTracker(Tracker):
    name = "mlflow"

    def start(self, ctx: TrackContext) -> None:
        # a server that went away must fail a call in seconds, not retry for minutes (the user's own settings win)
        from maskcls.common.settings import mlflow_requests, quiet_mlflow
        mlflow_requests(10)
        quiet_mlflow()
        from mlflow.tracking import MlflowClient
        self.ctx = ctx
        uri = tracking_uri(ctx)
        check_uri(uri)
        self.client = MlflowClient(uri)
        exp = self.client.get_experiment_by_name(ctx.project)
        if exp is None:
            # a SQLite store keeps artifacts beside its file: MLflow's default is ./mlruns in whatever the cwd is
            location = (Path(uri[len("sqlite:///"):]).parent / "artifacts").as_uri() if uri.startswith("sqlite:///") \
                else None
            exp_id = self.client.create_experiment(ctx.project, artifact_location=location)
        else:
            exp_id = exp.experiment_id
        tags = {"maskcls.run": ctx.run_name, "maskcls.run_dir": str(ctx.run_dir)}
        if ctx.group:
            tags["mlflow.parentRunId"] = self._parent(exp_id, ctx.group)
            tags["maskcls.group"] = ctx.group
        self.run_id = self.client.create_run(exp_id, run_name=ctx.run_name, tags=tags).info.run_id
        from mlflow.entities import Param
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in flat_config(ctx.config).items()])

    def _parent(self, exp_id: str, group: str) -> str:
        """The group's parent run, made by its first member (a fold group, repeat group, sweep or ladder)."""
        found = self.client.search_runs([exp_id], filter_string=f"tags.`maskcls.parent` = '{group}'", max_results=1)
        if found:
            return found[0].info.run_id
        return self.client.create_run(exp_id, run_name=group, tags={"maskcls.parent": group}).info.run_id

    def epoch(self, row: dict) -> None:
        from mlflow.entities import Metric
        import time
        now = int(time.time() * 1000)
        metrics = [Metric(k.replace("/", "_"), v, now, int(row["epoch"])) for k, v in scalars(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def best(self, confusion, epoch: int) -> None:
        from PIL import Image
        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "confusion.csv"
            table.write_text("\n".join(",".join(str(int(v)) for v in r) for r in confusion) + "\n")
            Image.fromarray(confusion_image(confusion)).save(Path(tmp) / "confusion.png")
            self.client.log_artifacts(self.run_id, tmp, "best_epoch")

    def finish(self, summary: dict, checkpoint) -> None:
        for k, v in summary.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.client.log_metric(self.run_id, f"summary_{k}", float(v))
        if checkpoint is not None and self.ctx.artifacts:
            self.client.log_artifact(self.run_id, str(checkpoint), "checkpoint")
        status = {"completed": "FINISHED", "pruned": "FINISHED", "cancelled": "KILLED"}.get(summary.get("state"),
                                                                                          "FAILED")
        self.client.set_terminated(self.run_id, status=status)
