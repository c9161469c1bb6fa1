"""The training engine on small demo data: run folder contents, resume, and failures that explain themselves."""
import json

import pytest
import torch

from maskcls.cli import main
from maskcls.train.config import ConfigError, RunConfig, create_config
from maskcls.train.rundir import RunDir, load_checkpoint
from maskcls.train.driver import train_from_config

TINY = dict(model="test_resnet", pretrained=False, image_size=[64, 48], batch_size=16, epochs=1, lr=1e-3, workers=1)


def tiny(demo_root, tmp_path, **kw) -> RunConfig:
    return RunConfig.from_dict({**TINY, "data_root": str(demo_root), "cache_dir": str(tmp_path / "cache"), **kw})


def test_one_epoch_writes_every_file(demo_root, tmp_path):
    status = train_from_config(tiny(demo_root, tmp_path, head="multi"), tmp_path / "runs", "one")
    run = RunDir(tmp_path / "runs", "one")
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


def test_resume_continues_the_epoch_count(demo_root, tmp_path):
    runs = tmp_path / "runs"
    assert main(["train", "--data", str(demo_root), "--name", "r", "--runs-root", str(runs),
                 *sum([["--set", f"{k}={json.dumps(v)}"] for k, v in TINY.items()], []),
                 "--set", f"cache_dir={tmp_path / 'cache'}"]) == 0
    run = RunDir(runs, "r")
    cfg = run.read_config()
    cfg["epochs"] = 2
    run.config_path.write_text(json.dumps(cfg))
    assert main(["train", "--resume", "r", "--runs-root", str(runs)]) == 0
    assert [m["epoch"] for m in run.read_metrics()] == [1, 2]
    assert "resumed from last.pt at epoch 1" in run.log_path.read_text()
    assert load_checkpoint(run.last_path)["epoch"] == 2


def test_demo_cpu_preset_is_valid():
    cfg = create_config("demo-cpu")
    assert cfg.image_size == [128, 96] and not cfg.pretrained


@pytest.mark.parametrize("d,msg", [
    ({"lr": "fast"}, "'lr' must be float"),
    ({"lr": -1.0}, "lr must be > 0"),
    ({"epochs": 0}, "epochs must be > 0"),
    ({"colour": 1}, "unknown config key 'colour'"),
    ({"loss": "hinge"}, "loss must be one of"),
    ({"augment": {"mode": "sometimes"}}, "augment: mode"),
])
def test_bad_configs_name_the_key(d, msg):
    with pytest.raises(ConfigError, match=msg):
        RunConfig.from_dict(d)


def test_config_round_trips_and_overrides():
    cfg = RunConfig().with_overrides(["lr=0.01", "image_size=224,224", "model=efficientnet_b0", "amp=false"])
    assert (cfg.lr, cfg.image_size, cfg.model, cfg.amp) == (0.01, [224, 224], "efficientnet_b0", False)
    assert RunConfig.from_json(cfg.to_json()) == cfg


def test_unknown_model_is_refused_before_a_run_folder_exists(demo_root, tmp_path):
    with pytest.raises(ValueError, match="unknown model 'resnet_999'"):
        train_from_config(tiny(demo_root, tmp_path, model="resnet_999"), tmp_path / "runs", "bad")
    assert not (tmp_path / "runs" / "bad").exists()


@pytest.mark.parametrize("kw,msg", [
    ({"batch_size": 5000}, "batch_size 5000 is larger than the"),
    ({"lr": 1e30, "loss": "ce"}, "the loss became"),
])
def test_failures_land_in_status_and_log(demo_root, tmp_path, kw, msg):
    cfg = tiny(demo_root, tmp_path, **kw)
    with pytest.raises(Exception):
        train_from_config(cfg, tmp_path / "runs", "bad")
    run = RunDir(tmp_path / "runs", "bad")
    st = run.read_status()
    assert st["state"] == "failed" and msg in st["error"]
    assert msg in run.log_path.read_text()


def test_nan_after_a_good_epoch_keeps_checkpoints_loadable(demo_root, tmp_path, monkeypatch):
    import maskcls.train.driver
    from maskcls.train.engine import TrainingError
    real = maskcls.train.driver.create_loss

    class NanLater(torch.nn.Module):
        """Cross entropy for the first epoch, NaN afterwards."""

        def __init__(self, inner, good_calls):
            super().__init__()
            self.inner, self.calls, self.good = inner, 0, good_calls

        def forward(self, logits, target):
            self.calls += 1
            loss = self.inner(logits, target)
            return loss if self.calls <= self.good else loss * float("nan")

    monkeypatch.setattr(maskcls.train.driver, "create_loss", lambda *a, **k: NanLater(real(*a, **k), good_calls=3))
    cfg = tiny(demo_root, tmp_path, epochs=2, limit_batches=3)
    with pytest.raises(TrainingError, match="the loss became nan or inf"):
        train_from_config(cfg, tmp_path / "runs", "n")
    run = RunDir(tmp_path / "runs", "n")
    assert run.read_status()["state"] == "failed" and "nan" in run.read_status()["error"]
    assert run.list_checkpoints()  # epoch 1 was written before the NaN
    for name in run.list_checkpoints():
        assert load_checkpoint(run.path / name)["epoch"] == 1


def test_freeze_head_then_unfreeze(demo_root, tmp_path):
    runs = tmp_path / "runs"
    train_from_config(tiny(demo_root, tmp_path, freeze="head", unfreeze_after=1, epochs=2, ema=0.9), runs, "f")
    run = RunDir(runs, "f")
    e1 = load_checkpoint(run.epoch_path(1))["model"]
    e2 = load_checkpoint(run.epoch_path(2))["model"]
    backbone_keys = [k for k, v in e1.items() if k.startswith("backbone.") and "running" not in k
                     and v.is_floating_point()]
    assert backbone_keys and any(k.startswith("head.") for k in e1)  # the EMA copy is what was saved
    assert any(not torch.equal(e1[k], e2[k]) for k in backbone_keys)  # unfrozen in epoch 2
    assert "epoch 2: backbone unfrozen" in run.log_path.read_text()
