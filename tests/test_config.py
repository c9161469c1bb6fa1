"""Tests of config."""
import pytest

from conftest import config_file, run_cli
from maskcls.train.config import ConfigError, create_config, RunConfig


# 8 ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, found", [("[1, 2]", "array"), ('"lr"', "string"), ("null", "null")])
def test_config_that_is_not_an_object(tmp_path, capsys, text, found):
    (tmp_path / "c.json").write_text(text)
    code, _, err = run_cli(capsys, "train", "--config", str(tmp_path / "c.json"), "--runs-root", str(tmp_path))
    assert code == 2 and "must hold a JSON object of config keys" in err and f"found a JSON {found}" in err


def test_config_naming_a_folder(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--config", str(tmp_path), "--runs-root", str(tmp_path))
    assert code == 2 and "is a folder, expected a JSON file" in err


@pytest.mark.parametrize("value", ["Infinity", "NaN", "-Infinity"])
def test_non_finite_learning_rates_are_refused_in_the_config(demo_root, tmp_path, capsys, value):
    code, _, err = run_cli(capsys, "train", "--config", config_file(demo_root, tmp_path), "--set", f"lr={value}",
                           "--runs-root", str(tmp_path / "runs"), "--name", "x")
    assert code == 2 and "lr must be a finite number" in err and not (tmp_path / "runs" / "x").exists()


def test_a_vit_at_a_size_it_cannot_take_is_refused_before_training(demo_root, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--config", config_file(demo_root, tmp_path, model="vit_tiny_patch16_224"),
                           "--runs-root", str(tmp_path / "runs"), "--name", "vit")
    assert code == 2 and "fixed input size of 224x224" in err and "image_size=[224, 224]" in err
    assert not (tmp_path / "runs" / "vit").exists()


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
