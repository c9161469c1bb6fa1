"""Tests of config."""
import pytest
from hypothesis import given, settings, strategies as st

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
    ({"lr": -1.0}, "lr must be a number above 0 to 10, got -1.0"),
    ({"epochs": 0}, "epochs must be a whole number from 1 to 10000, got 0"),
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


# -- every key checked (issue 35 #4, #6) ---------------------------------------------------------------------
HUGE_INT, HUGE = 10**30, 1e300
NAN, INF = float("nan"), float("inf")
# For each RunConfig field: bad values of each kind that applies (wrong type, negative, zero, NaN, inf, huge, and
# the key's own traps). A field added to RunConfig without a row here fails test_the_table_covers_every_field.
BAD = {
    "data_root": [5, None, "a\x00b"], "corrections": [[], "x\x00"],
    "age_lower": ["30", 30.5, -1, 0, HUGE_INT, True], "age_upper": [60.0, -5, 0, 121, HUGE_INT],
    "drop_borderline": [-1, 1.5, HUGE_INT, "3"], "val_ratio": ["0.2", 0, 1, -0.1, NAN, INF, HUGE],
    "split_seed": [-1, 2**32, 1.5, "42"], "fold": [-2, 5, HUGE_INT, 0.5], "full_data": [1, "true", None],
    "n_folds": [0, 1, -3, HUGE_INT, 2.5], "image_size": [[128], [128, 96, 3], ["a", "b"], [0, 96], [-128, 96],
                                                       [20000, 20000], [128.0, 96.0], [True, 96], "128x96", 128],
    "face_crop": [1, "yes"], "face_margin": [-0.1, 1.5, NAN, INF, "0.2"], "face_fallback": ["edge", 1],
    "face_borrow": [0, "no"], "face_second_look": [None], "remove_background": ["false"],
    "augment": ["nonesuch", 5, [], {"mode": "sometimes"}, None],
    "model": [5, "", "no_such_net_at_all"], "pretrained": ["yes"], "weights_file": [3, "w\x00"],
    "head": ["triple", 1], "freeze": ["all"], "unfreeze_after": [-1, HUGE_INT, 1.5], "drop_rate": [-0.5, 1.0, NAN, INF],
    "loss": ["hinge", None], "focal_gamma": [-1.0, NAN, INF, HUGE, "2"], "smoothing": [-0.1, 1.0, NAN, INF],
    "combo": [{"ce": "x"}, {"ce": -1.0}, {"ce": NAN}, {"ce": INF}, {"ce": HUGE}, {}, {"hinge": 1.0},
              {"ce": 0.0, "f1": 0.0}, {"ce": True}, [1, 2], "ce"],
    "class_weights": ["no"], "sampler": ["people"],
    "optimizer": ["lbfgs"], "lr": [0.0, -1e-3, NAN, INF, HUGE, "fast"], "weight_decay": [-1e-4, NAN, INF, HUGE],
    "momentum": [-0.1, 1.0, NAN, INF], "scheduler": ["onecycle"], "warmup_epochs": [-1.0, NAN, INF, HUGE, 11.0],
    "step_size": [0, -1, HUGE_INT, 2.5], "step_gamma": [0.0, -0.5, 1.5, NAN, INF],
    "grad_clip": [-1.0, NAN, INF, HUGE], "ema": [-0.1, 1.0, NAN, INF], "epochs": [0, -1, HUGE_INT, 2.5],
    "batch_size": [0, -4, HUGE_INT, 32.0], "amp": ["on"], "channels_last": [2], "compile": ["yes"],
    "loader": ["torch"], "workers": [-1, HUGE_INT, 1.5], "seed": [-1, 2**32, HUGE_INT, 0.5],
    "device": ["cuda:abc", "gpu", "cuda:", "cuda:-1", "cuda:0 ", "tpu", 0], "gpus": [0, -1, HUGE_INT],
    "cache_dir": [1, "c\x00"], "limit_batches": [-1, HUGE_INT, 0.5], "track": ["mlflow", ["x"], ["mlflow", "mlflow"],
                                                                          [{}], [1]],
    "track_project": [1, "p" * 500], "track_uri": [2], "track_artifacts": ["no"], "track_group": ["g" * 500],
    "keep_epochs": [-1, HUGE_INT, 1.5], "team": ["yes", 1, None],
}


def test_the_table_covers_every_field():
    from dataclasses import fields
    from maskcls.train.config_checks import RULES
    names = {f.name for f in fields(RunConfig)}
    assert set(BAD) == names and set(RULES) == names


@pytest.mark.parametrize("key, value", [(k, v) for k, vs in BAD.items() for v in vs],
                         ids=lambda x: repr(x)[:40])
def test_every_bad_value_is_refused_naming_the_key_and_the_value(key, value):
    """The config, the CLI's --set, the Train form, jobs, sweeps and ladders all build configs through from_dict."""
    base = {"model": "resnet10t", "epochs": 10}
    if key == "model" and value == "no_such_net_at_all":  # timm's names are checked when a run is started
        from maskcls.models.backbones import check_model
        with pytest.raises(ValueError, match="unknown model 'no_such_net_at_all'"):
            check_model(value, [128, 96])
        return
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict({**base, key: value})
    text = str(e.value)
    assert key in text, text
    assert "Traceback" not in text and len(text) < 600


@pytest.mark.parametrize("pair, msg", [
    ("image_size=a,b", "image_size must be [height, width] or HEIGHT,WIDTH in whole pixels (e.g. 128,96), got 'a,b'"),
    ("image_size=20000,20000", "each side from 16 to 1024 pixels"),
    ("step_size=0", "step_size must be a whole number from 1 to 10000 (epochs between decays), got 0"),
    ('combo={"ce":"x"}', "combo['ce'] must be a number (the weight of the ce loss), got str 'x'"),
    ('combo={"ce":-1}', "combo['ce'] must be a number from 0 to 1000 (0 leaves a loss out), got -1"),
    ("device=cuda:abc", "device must be auto, cpu, cuda or cuda:N"),
    ("seed=-1", "seed must be a whole number from 0 to 4,294,967,295, got -1"),
])
def test_set_values_are_checked_where_they_enter(pair, msg):
    with pytest.raises(ConfigError) as e:
        RunConfig().with_overrides([pair])
    assert msg in str(e.value), str(e.value)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3), max_leaves=6)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(BAD)), json_values)
def test_any_value_for_any_key_is_refused_by_name_or_round_trips(key, value):
    """The schema's property: whatever JSON a user puts under a key, the config either refuses it with a
    ConfigError naming that key, or holds a value that survives JSON and validates again."""
    try:
        cfg = RunConfig.from_dict({key: value})
    except ConfigError as e:
        assert key in str(e), (key, value, str(e))
        return
    assert RunConfig.from_json(cfg.to_json()) == cfg
    assert cfg.validate() is cfg


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(BAD)), st.text(max_size=12))
def test_any_set_text_is_refused_by_name_or_applied(key, raw):
    try:
        cfg = RunConfig().with_overrides([f"{key}={raw}"])
    except ConfigError as e:
        assert key in str(e), (key, raw, str(e))
        return
    assert RunConfig.from_json(cfg.to_json()) == cfg
