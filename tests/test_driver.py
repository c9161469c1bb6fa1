"""Tests of driver."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import config_file, REPO, run_cli, TINY, tiny
from maskcls.cli import main
from maskcls.common.checkpoints import load_checkpoint
from maskcls.common.fileio import write_text
from maskcls.common.procs import proc_start
from maskcls.common.runfolder import RunFolder
from maskcls.train.config import RunConfig
from maskcls.train.driver import train_run


# 1 ------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("state", ["running", "queued"])
def test_resume_of_a_queued_or_running_run_is_refused(tiny_run, capsys, state):
    runs, name = tiny_run
    run = RunFolder(runs, name)
    before = (run.status_path.read_text(), run.metrics_path.read_text())
    status = json.loads(before[0])
    run.write_status(state=state, pid=os.getpid(), pid_start=proc_start(os.getpid()))  # a live process
    try:
        code, _, err = run_cli(capsys, "train", "--resume", name, "--runs-root", str(runs), "--quiet")
        assert code == 2 and f"it is {state}" in err and "cancel it first" in err
        assert run.metrics_path.read_text() == before[1]
    finally:
        write_text(run.status_path, json.dumps(status))


@pytest.mark.slow
def test_resume_while_another_process_trains_the_folder_is_refused(tiny_run, capsys):
    runs, name = tiny_run
    run = RunFolder(runs, name)
    held = run.acquire_lock()  # what a trainer holds while it trains
    try:
        code, _, err = run_cli(capsys, "train", "--resume", name, "--runs-root", str(runs), "--quiet")
        assert code == 2 and "another process" in err
    finally:
        held.close()


# 2 ------------------------------------------------------------------------------------------------------------
def test_train_into_an_existing_name_is_refused(tiny_run, demo_root, tmp_path, capsys):
    runs, name = tiny_run
    run = RunFolder(runs, name)
    before = {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()}
    code, _, err = run_cli(capsys, "train", "--config", config_file(demo_root, tmp_path), "--runs-root", str(runs),
                           "--name", name, "--quiet")
    assert code == 2 and f"a run named {name!r} already exists" in err and "--resume" in err
    assert {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()} == before


# 10 -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [["--set", "epochs=5"], ["--data", "/tmp"], ["--config", "x.json"]])
def test_resume_refuses_settings_it_cannot_apply(tiny_run, capsys, extra):
    runs, name = tiny_run
    code, _, err = run_cli(capsys, "train", "--resume", name, "--runs-root", str(runs), *extra)
    assert code == 2 and f"{extra[0]} cannot apply" in err


@pytest.mark.slow
def test_resume_from_an_earlier_checkpoint_does_not_double_metrics_rows(demo_root, tmp_path):
    runs = tmp_path / "runs"
    train_run(tiny(demo_root, tmp_path, epochs=3), runs, "r")
    run = RunFolder(runs, "r")
    (run.path / "last.pt").unlink()
    (run.path / "epoch_003.pt").unlink()  # as if killed before epoch 3's files landed
    run.write_status(state="failed")
    train_run(RunConfig(), runs, "r", resume=True)
    assert [m["epoch"] for m in run.read_metrics()] == [1, 2, 3]
    assert "dropped 1 metrics row" in run.log_path.read_text()


# -- the terminal hears about training as it goes --------------------------------------------------------------
@pytest.mark.slow
def test_train_prints_each_epoch_as_it_ends(demo_root, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "epochs": 3, "data_root": str(demo_root), "cache_dir": str(tmp_path / "c")}))
    proc = subprocess.Popen([sys.executable, "-m", "maskcls", "train", "--config", str(cfg), "--runs-root",
                             str(tmp_path / "runs"), "--name", "talk"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    run = RunFolder(tmp_path / "runs", "talk")
    seen_during = None
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith("epoch 1/3:") and seen_during is None:
            seen_during = len(run.read_metrics())  # epoch 2 has not ended when epoch 1's line arrives
            assert proc.poll() is None
    assert proc.wait(120) == 0
    assert seen_during == 1, lines
    epoch_lines = [x for x in lines if re.match(r"epoch \d/3: train loss", x)]
    assert len(epoch_lines) == 3 and "ETA" in epoch_lines[0] and "val macro F1" in epoch_lines[0]
    assert json.loads(lines[-1])["state"] == "completed"


def test_train_quiet_prints_only_the_summary(demo_root, tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "data_root": str(demo_root), "cache_dir": str(tmp_path / "c")}))
    assert main(["train", "--config", str(cfg), "--runs-root", str(tmp_path / "runs"), "--name", "q", "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and json.loads(out[0])["state"] == "completed"


@pytest.mark.slow
def test_ddp_two_processes_see_as_many_samples_as_one(demo_root, tmp_path):
    base = {**TINY, "data_root": str(demo_root), "cache_dir": str(tmp_path / "cache"), "device": "cpu",
            "batch_size": 16}
    train_run(RunConfig.from_dict(base), tmp_path / "runs", "single")
    single = RunFolder(tmp_path / "runs", "single").read_metrics()[0]["train_images"]
    run = RunFolder(tmp_path / "runs", "ddp")
    run.path.mkdir(parents=True)
    write_text(run.config_path, json.dumps(base))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "maskcls.orchestration.worker", "train-rank", str(run.path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = run.read_metrics()[0]
    assert run.read_status()["state"] == "completed"
    assert m["train_images_all"] == single
    assert m["train_images"] == single // 2
    assert "world 2" in run.log_path.read_text()


def test_one_epoch_writes_every_file(demo_root, tmp_path):
    status = train_run(tiny(demo_root, tmp_path, head="multi"), tmp_path / "runs", "one")
    run = RunFolder(tmp_path / "runs", "one")
    for f in ("config.json", "status.json", "metrics.jsonl", "log.txt", "epoch_001.pt", "best.pt", "last.pt",
              "val_predictions.csv"):
        assert (run.path / f).exists(), f
    assert status["state"] == "completed" and status["progress"] == 1.0
    m = run.read_metrics()[0]
    for key in ("train_loss", "val_loss", "val_accuracy", "val_macro_f1", "val_per_class_f1",
                "val_attribute_accuracy", "lr", "seconds", "images_per_s"):
        assert key in m, key
    assert len(m["val_per_class_f1"]) == 18
    preds = run.read_predictions()
    assert list(preds.columns[:3]) == ["path", "person_id", "label"] and preds.shape[1] == 21
    assert abs(preds[[f"p{i}" for i in range(18)]].sum(axis=1) - 1).max() < 1e-4
    ckpt = torch.load(run.best_path, map_location="cpu", weights_only=True)
    assert ckpt["config"]["model"] == "test_resnet" and len(ckpt["classes"]) == 18
    assert load_checkpoint(run.last_path)["epoch"] == 1


@pytest.mark.slow
def test_resume_continues_the_epoch_count(demo_root, tmp_path):
    runs = tmp_path / "runs"
    assert main(["train", "--data", str(demo_root), "--name", "r", "--runs-root", str(runs),
                 *sum([["--set", f"{k}={json.dumps(v)}"] for k, v in TINY.items()], []),
                 "--set", f"cache_dir={tmp_path / 'cache'}"]) == 0
    run = RunFolder(runs, "r")
    cfg = run.read_config()
    cfg["epochs"] = 2
    run.config_path.write_text(json.dumps(cfg))
    assert main(["train", "--resume", "r", "--runs-root", str(runs)]) == 0
    assert [m["epoch"] for m in run.read_metrics()] == [1, 2]
    assert "resumed from last.pt at epoch 1" in run.log_path.read_text()
    assert load_checkpoint(run.last_path)["epoch"] == 2


def test_unknown_model_is_refused_before_a_run_folder_exists(demo_root, tmp_path):
    with pytest.raises(ValueError, match="unknown model 'resnet_999'"):
        train_run(tiny(demo_root, tmp_path, model="resnet_999"), tmp_path / "runs", "bad")
    assert not (tmp_path / "runs" / "bad").exists()


@pytest.mark.parametrize("kw,msg", [
    ({"batch_size": 5000}, "batch_size 5000 is larger than the"),
    ({"lr": 10.0, "loss": "nan"}, "the loss became"),  # an lr too high to train (1e30 is refused by the config)
])
def test_failures_land_in_status_and_log(demo_root, tmp_path, monkeypatch, kw, msg):
    if kw.pop("loss", None) == "nan":  # what a diverging lr ends in, without waiting for it to diverge
        import maskcls.train.learner
        real = maskcls.train.learner.create_loss

        class Nan(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, logits, y):
                return self.inner(logits, y) * float("nan")
        monkeypatch.setattr(maskcls.train.learner, "create_loss", lambda *a, **k: Nan(real(*a, **k)))
    cfg = tiny(demo_root, tmp_path, **kw)
    with pytest.raises(Exception):
        train_run(cfg, tmp_path / "runs", "bad")
    run = RunFolder(tmp_path / "runs", "bad")
    st = run.read_status()
    assert st["state"] == "failed" and msg in st["error"]
    assert msg in run.log_path.read_text()


def test_nan_after_a_good_epoch_keeps_checkpoints_loadable(demo_root, tmp_path, monkeypatch):
    import maskcls.train.learner
    from maskcls.train.engine import TrainingError
    real = maskcls.train.learner.create_loss

    class NanLater(torch.nn.Module):
        """Cross entropy for the first epoch, NaN afterwards."""

        def __init__(self, inner, good_calls):
            super().__init__()
            self.inner, self.calls, self.good = inner, 0, good_calls

        def forward(self, logits, target):
            self.calls += 1
            loss = self.inner(logits, target)
            return loss if self.calls <= self.good else loss * float("nan")

    monkeypatch.setattr(maskcls.train.learner, "create_loss", lambda *a, **k: NanLater(real(*a, **k), good_calls=3))
    cfg = tiny(demo_root, tmp_path, epochs=2, limit_batches=3)
    with pytest.raises(TrainingError, match="the loss became nan or inf"):
        train_run(cfg, tmp_path / "runs", "n")
    run = RunFolder(tmp_path / "runs", "n")
    assert run.read_status()["state"] == "failed" and "nan" in run.read_status()["error"]
    assert run.list_checkpoints()  # epoch 1 was written before the NaN
    for name in run.list_checkpoints():
        assert load_checkpoint(run.path / name)["epoch"] == 1


def test_freeze_head_then_unfreeze(demo_root, tmp_path):
    runs = tmp_path / "runs"
    train_run(tiny(demo_root, tmp_path, freeze="head", unfreeze_after=1, epochs=2, ema=0.9), runs, "f")
    run = RunFolder(runs, "f")
    e1 = load_checkpoint(run.epoch_path(1))["model"]
    e2 = load_checkpoint(run.epoch_path(2))["model"]
    backbone_keys = [k for k, v in e1.items() if k.startswith("backbone.") and "running" not in k
                     and v.is_floating_point()]
    assert backbone_keys and any(k.startswith("head.") for k in e1)  # the EMA copy is what was saved
    assert any(not torch.equal(e1[k], e2[k]) for k in backbone_keys)  # unfrozen in epoch 2
    assert "epoch 2: backbone unfrozen" in run.log_path.read_text()


def _garbled_copy(demo_root, tmp_path, which) -> str:
    """A copy of the demo whose images of `which(person_id) -> bool` have a JPEG header and nothing decodable."""
    import shutil
    root = tmp_path / "data"
    shutil.copytree(demo_root / "train", root / "train")
    for folder in (root / "train" / "images").iterdir():
        if which(folder.name.split("_")[0]):
            for f in folder.iterdir():
                f.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    return str(root)


def test_no_decodable_training_image_fails_the_run(demo_root, tmp_path):
    root = _garbled_copy(demo_root, tmp_path, lambda pid: True)
    with pytest.raises(Exception, match=r"no training images could be decoded \(420 skipped: .*\.jpg: cannot decode image"):
        train_run(tiny(demo_root, tmp_path, data_root=root), tmp_path / "runs", "none")
    st = RunFolder(tmp_path / "runs", "none").read_status()
    assert st["state"] == "failed" and st["error"].startswith("no training images could be decoded")
    assert not RunFolder(tmp_path / "runs", "none").best_path.exists()


def test_no_decodable_validation_image_fails_a_validated_run(demo_root, tmp_path):
    from maskcls.data.splits import split_by_person
    from maskcls.data.index import index_data
    train = index_data(demo_root).train
    val = set(train.loc[split_by_person(train, 0.2, 42), "person_id"])
    root = _garbled_copy(demo_root, tmp_path, lambda pid: pid in val)
    with pytest.raises(Exception, match="no validation images could be decoded"):
        train_run(tiny(demo_root, tmp_path, data_root=root), tmp_path / "runs", "noval")
    assert RunFolder(tmp_path / "runs", "noval").read_status()["state"] == "failed"
