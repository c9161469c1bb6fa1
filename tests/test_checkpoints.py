"""Tests of checkpoints."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import Payload, REPO, tiny, wait_job
from maskcls.common.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from maskcls.common.runfolder import RunFolder
from maskcls.infer.members import build_model
from maskcls.models.backbones import create_model
from maskcls.orchestration import jobs
from maskcls.train.config import RunConfig
from maskcls.train.driver import train_run


# 11 -----------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_epoch_files_hold_weights_only_and_only_the_newest_are_kept(demo_root, tmp_path):
    runs = tmp_path / "runs"
    train_run(tiny(demo_root, tmp_path, epochs=3, keep_epochs=2), runs, "k")
    run = RunFolder(runs, "k")
    assert sorted(p.name for p in run.path.glob("epoch_*.pt")) == ["epoch_002.pt", "epoch_003.pt"]
    assert load_checkpoint(run.epoch_path(3)).get("optimizer") is None
    assert load_checkpoint(run.best_path).get("optimizer") is None
    assert load_checkpoint(run.last_path)["optimizer"] is not None
    assert run.epoch_path(3).stat().st_size < 0.6 * run.last_path.stat().st_size


# -- models ---------------------------------------------------------------------------------------------------
def checkpoint_of(tmp_path, model="test_resnet", head="single"):
    cfg = RunConfig(model=model, head=head, pretrained=False)
    net, _ = create_model(model, head=head)
    path = tmp_path / f"{model}-{head}.pt"
    save_checkpoint(path, {"model": net.state_dict(), "config": cfg.to_dict(), "classes": [], "epoch": 1})
    return path


def test_checkpoint_of_another_architecture_or_class_count(tmp_path):
    ckpt = load_checkpoint(checkpoint_of(tmp_path, "test_resnet"))
    with pytest.raises(CheckpointError, match="does not fit model resnet10t"):
        build_model(ckpt, RunConfig(model="resnet10t"), "x.pt")
    multi = load_checkpoint(checkpoint_of(tmp_path, "test_resnet", "multi"))
    with pytest.raises(CheckpointError, match=r"does not fit model test_resnet \(single head\)"):
        build_model(multi, RunConfig(model="test_resnet", head="single"), "x.pt")


def test_truncated_checkpoint_is_named(tmp_path):
    path = checkpoint_of(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or incomplete"):
        load_checkpoint(path)


def test_checkpoint_carrying_code_is_refused_and_nothing_runs(tmp_path):
    if os.path.exists("/tmp/maskcls-pwned"):
        os.unlink("/tmp/maskcls-pwned")
    path = tmp_path / "evil.pt"
    torch.save({"format": "maskcls-checkpoint-1", "model": {}, "x": Payload()}, path, pickle_protocol=2)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not os.path.exists("/tmp/maskcls-pwned")
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError):
        load_checkpoint(plain)
    assert not os.path.exists("/tmp/maskcls-pwned")


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint(demo_root, tmp_path):
    """Kill the job the moment a checkpoint temp file exists; every checkpoint still loads; resume goes on."""
    runs = tmp_path / "runs"
    # resnet18 checkpoints (weights + Adam state) are ~130 MB: a write takes long enough to be caught
    cfg = tiny(demo_root, tmp_path, device="cpu", model="resnet18", image_size=[32, 32], batch_size=8, limit_batches=1,
                  epochs=30)
    jobs.submit(cfg, runs, "victim")
    run = RunFolder(runs, "victim")
    wait_job(runs, "victim", {"running"})
    deadline, killed = time.time() + 180, False
    while time.time() < deadline and not killed:
        temps = [p for p in os.listdir(run.path) if p.endswith(".tmp") and ".pt." in p]
        if temps and run.list_checkpoints():
            os.killpg(run.read_status()["pid"], signal.SIGKILL)
            killed = True
        time.sleep(0.005)
    assert killed, "never saw a checkpoint being written"
    info = wait_job(runs, "victim", {"failed"}, timeout=10)
    assert info.error.startswith("lost")
    epochs = {name: load_checkpoint(run.path / name)["epoch"] for name in run.list_checkpoints()}  # all load
    last = max(epochs.values())
    cfg_file = json.loads(run.config_path.read_text())
    cfg_file["epochs"] = last + 1
    run.config_path.write_text(json.dumps(cfg_file))
    proc = subprocess.run([sys.executable, "-m", "maskcls", "train", "--resume", "victim", "--runs-root", str(runs)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"at epoch {last} (best macro F1" in run.log_path.read_text()
    assert load_checkpoint(run.last_path)["epoch"] == last + 1
    assert run.read_status()["state"] == "completed"
