"""The trackers teams already read, fed as a run trains, each read back with its own tools; a tracker whose
backend goes away mid-run never fails the run."""
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port, run_cli, tiny, wait_until
from maskcls.common.runfolder import RunFolder
from maskcls.train.driver import train_run

pytestmark = pytest.mark.slow
for package in ("tensorboard", "mlflow", "wandb"):
    pytest.importorskip(package, reason="the trackers come with the README's install: pip install -r requirements.txt -e .")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No W&B login and no MLflow server from the environment: each test says where its data goes."""
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: W&B goes offline
    monkeypatch.setenv("WANDB_SILENT", "true")


def f1_by_epoch(run: RunFolder) -> dict[int, float]:
    return {r["epoch"]: r["val_macro_f1"] for r in run.read_metrics()}


def test_tensorboard_event_files_hold_every_epoch(demo_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    train_run(tiny(demo_root, tmp_path, epochs=3, track=["tensorboard"]), tmp_path / "runs", "tb")
    run = RunFolder(tmp_path / "runs", "tb")
    acc = EventAccumulator(str(run.path / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    logged = {e.step: e.value for e in acc.Scalars("val_macro_f1")}
    assert logged == pytest.approx(f1_by_epoch(run), abs=1e-6) and len(logged) == 3
    assert "val_f1/class_17" in acc.Tags()["scalars"] and acc.Tags()["images"]  # per class, and the confusion


def test_mlflow_local_store_holds_the_config_and_each_epoch(demo_root, tmp_path):
    import mlflow
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train_run(tiny(demo_root, tmp_path, epochs=2, track=["mlflow"], track_uri=uri), tmp_path / "runs", "m1")
    assert (tmp_path / "artifacts").is_dir() and not (Path.cwd() / "mlruns").exists()  # beside the store, not in cwd
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["maskcls"])
    row = runs[runs["tags.maskcls.run"] == "m1"].iloc[0]
    assert row["params.model"] == "test_resnet" and row["params.epochs"] == "2" and row["status"] == "FINISHED"
    history = mlflow.tracking.MlflowClient(uri).get_metric_history(row["run_id"], "val_macro_f1")
    assert {m.step: m.value for m in history} == pytest.approx(f1_by_epoch(RunFolder(tmp_path / "runs", "m1")))


def test_wandb_offline_run_keeps_its_history_in_the_run_folder(demo_root, tmp_path):
    from maskcls.train.tracking.wandb_tracker import read_history
    train_run(tiny(demo_root, tmp_path, epochs=2, track=["wandb"]), tmp_path / "runs", "w1")
    run = RunFolder(tmp_path / "runs", "w1")
    assert list((run.path / "wandb").glob("offline-run-*"))  # offline: `wandb sync` uploads it later
    history = [h for h in read_history(run.path) if "val_macro_f1" in h]
    assert {h["epoch"]: h["val_macro_f1"] for h in history} == pytest.approx(f1_by_epoch(run))
    assert "WARNING" not in run.log_path.read_text()


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1, SQLite behind it, started (and stopped) by the test."""
    import urllib.request
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--workers", "1",
                             "--default-artifact-root", str(tmp_path / "artifacts")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def up():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200
        except OSError:
            return False
    try:
        wait_until(up, 120, "the MLflow server to answer")
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_a_team_server_gets_the_run_and_its_fold_group(demo_root, tmp_path, capsys, mlflow_server):
    import mlflow
    uri, _ = mlflow_server
    cfg = tmp_path / "cfg.json"
    cfg.write_text(tiny(demo_root, tmp_path, limit_batches=2).to_json())
    code, _, err = run_cli(capsys, "train", "--config", cfg, "--folds", "2", "--name", "grp", "--track", "mlflow",
                           "--set", f"track_uri={uri}", "--runs-root", tmp_path / "runs", "--quiet")
    assert code == 0, err
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["maskcls"])
    parent = runs[runs["tags.maskcls.parent"] == "grp"]
    children = runs[runs["tags.maskcls.group"] == "grp"]
    assert len(parent) == 1 and sorted(children["tags.maskcls.run"]) == ["grp-fold1", "grp-fold2"]
    assert set(children["tags.mlflow.parentRunId"]) == {parent["run_id"].iloc[0]}  # an MLflow parent run


def test_a_server_that_goes_away_leaves_the_run_completed_with_a_warning(demo_root, tmp_path, mlflow_server):
    uri, server = mlflow_server
    run = RunFolder(tmp_path / "runs", "fault")

    def kill_after_first_epoch():
        if run.read_metrics():
            os.killpg(server.pid, signal.SIGKILL)
            return True
    import threading
    killer = threading.Thread(target=lambda: wait_until(kill_after_first_epoch, 300, "epoch 1", poll=0.05))
    killer.start()
    status = train_run(tiny(demo_root, tmp_path, epochs=4, track=["mlflow"], track_uri=uri), tmp_path / "runs", "fault")
    killer.join()
    assert status["state"] == "completed" and len(run.read_metrics()) == 4
    assert re.search(r"WARNING: tracker mlflow (failed|could not start)", run.log_path.read_text())


def test_a_tracker_that_is_not_installed_is_named_before_training(demo_root, tmp_path, capsys, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = tmp_path / "cfg.json"
    cfg.write_text(tiny(demo_root, tmp_path).to_json())
    code, _, err = run_cli(capsys, "train", "--config", cfg, "--track", "wandb", "--name", "x",
                           "--runs-root", tmp_path / "runs")
    assert code == 2 and "tracker 'wandb' needs the wandb package, which is not installed" in err
    assert "pip install -r requirements.txt -e ." in err and not (tmp_path / "runs" / "x").exists()


def test_an_old_run_exported_to_tensorboard(demo_root, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    train_run(tiny(demo_root, tmp_path, epochs=2), tmp_path / "runs", "old")
    code, out, err = run_cli(capsys, "export", "old", "--to", "tensorboard", "--json", "--runs-root", tmp_path / "runs")
    assert code == 0, err
    assert json.loads(out) == {"run": "old", "to": "tensorboard", "epochs": 2, "confusion": True, "group": None,
                               "replaced": []}
    acc = EventAccumulator(str(tmp_path / "runs" / "old" / "tensorboard"))
    acc.Reload()
    assert {e.step: e.value for e in acc.Scalars("val_macro_f1")} == pytest.approx(
        f1_by_epoch(RunFolder(tmp_path / "runs", "old")))
    first = sorted((tmp_path / "runs" / "old" / "tensorboard").glob("events.out.tfevents.*"))
    code, out, err = run_cli(capsys, "export", "old", "--to", "tensorboard", "--json", "--runs-root", tmp_path / "runs")
    assert code == 0 and json.loads(out)["replaced"] == [p.name for p in first]
    again = sorted((tmp_path / "runs" / "old" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(again) == 1 and again != first  # exported twice: one file, each curve once


@pytest.mark.parametrize("uri", ["sqlite:////nonexistent-maskcls/dir/x.db", "file:///nonexistent-maskcls/dir/mlruns",
                                 "/nonexistent-maskcls/mlruns"])
def test_a_tracking_uri_in_a_missing_folder_is_refused_and_nothing_is_created(demo_root, tmp_path, capsys, uri):
    """Issue 35 #11: `export --to mlflow --uri sqlite:////nonexistent/dir/x.db` created /nonexistent/dir/ at the
    filesystem root and reported success; training with that URI is refused before a run folder exists too."""
    from maskcls.common.runfolder import RunFolder
    runs = tmp_path / "runs"
    run = RunFolder(runs, "old")
    run.path.mkdir(parents=True)
    run.config_path.write_text(tiny(demo_root, tmp_path).to_json())
    (run.path / "metrics.jsonl").write_text('{"epoch": 1, "val_macro_f1": 0.5}\n')
    run.write_status(state="completed")
    code, _, err = run_cli(capsys, "export", "old", "--to", "mlflow", "--uri", uri, "--runs-root", runs)
    assert code == 2 and "does not exist; create it first" in err and "goes on without it" not in err, err
    cfg = tmp_path / "cfg.json"
    cfg.write_text(tiny(demo_root, tmp_path, track=["mlflow"], track_uri=uri).to_json())
    code, _, err = run_cli(capsys, "train", "--config", cfg, "--name", "x", "--runs-root", runs)
    assert code == 2 and "does not exist; create it first" in err and not (runs / "x").exists()
    assert not os.path.exists("/nonexistent-maskcls")


def test_an_export_that_fails_uses_exports_wording(demo_root, tmp_path):
    from maskcls.train.tracking import Tracking
    from maskcls.train.tracking.base import TrackContext
    said = []
    t = Tracking(["nonesuch-tracker-for-the-test"], TrackContext("r", tmp_path, tmp_path, {}, None, "p", "", False),
                 said.append, after="nothing more was sent")
    t.close({})
    assert said and said[0].endswith("; nothing more was sent")
