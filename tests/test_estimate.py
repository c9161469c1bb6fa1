"""Time estimates before a run, a ladder or a sweep starts, and the steady ETA while it trains (issue 44)."""
import json
import time

import pytest

from conftest import run_cli, tiny
from maskcls.orchestration.estimate import cache_seconds, duration_text, estimate_many, estimate_run
from maskcls.train.pace import THROUGHPUT_FILE, Pace, measured_speed, record_speed, speed_key


def test_duration_text_reads_like_a_person_would_say_it():
    assert [duration_text(s) for s in (9.4, 190, 3 * 3600 + 5 * 60 + 9)] == ["9 s", "3 min 10 s", "3 h 05 min"]


def test_the_pace_gives_a_steady_eta_from_the_epochs_second_step():
    pace = Pace(val_images=100, guess_val_ips=50)
    assert pace.figures(1, 0, 10, 3, 32) == {}  # nothing measured yet: no figure rather than a wild one
    pace.step(1)
    t = time.perf_counter()
    while time.perf_counter() - t < 0.05:
        pass
    pace.step(2)
    f = pace.figures(1, 2, 10, 3, 32)
    per = pace.per_step
    assert f["eta_s"] == pytest.approx((8 + 2 * 10) * per + 3 * 2.0, abs=0.05)  # 2 s a validation pass (100 / 50)
    assert f["images_per_s"] == pytest.approx(32 / per, rel=0.01)


def test_runs_record_their_speed_and_estimates_read_it(demo_root, tmp_path):
    cfg = tiny(demo_root, tmp_path, epochs=3)
    runs = tmp_path / "runs"
    assert estimate_run(cfg, runs) is None  # nothing measured here: no guess
    for ips in (100.0, 120.0, 110.0):
        record_speed(runs, cfg, "cpu", train_ips=ips, val_ips=300.0)
    speed = measured_speed(runs, cfg, "cpu")
    assert speed.train_ips == 110.0 and speed.val_ips == 300.0 and "3 epoch(s) of earlier runs" in speed.source
    e = estimate_run(cfg, runs)
    p = e.parts
    assert e.seconds == pytest.approx(p["startup"] + p["cache"] + 3 * (p["train_per_epoch"] + p["val_per_epoch"]))
    assert p["train_per_epoch"] == pytest.approx((p["train_images"] // cfg.batch_size) * cfg.batch_size / 110.0)
    assert p["val_per_epoch"] == pytest.approx(p["val_images"] / 300.0)
    other = tiny(demo_root, tmp_path, image_size=[96, 64])
    assert speed_key(other, "cpu") != speed_key(cfg, "cpu") and estimate_run(other, runs) is None
    many = estimate_many([cfg, cfg], runs)
    # the cache is built once (its decode probe is timed again, so the figures agree within its noise)
    assert many.seconds == pytest.approx(2 * e.seconds - e.parts["cache"], abs=e.parts["cache"] * 0.5 + 0.5)
    assert many.parts["each"][1] == pytest.approx(e.seconds - e.parts["cache"], rel=1e-6)
    data = json.loads((runs / THROUGHPUT_FILE).read_text())
    assert len(data[speed_key(cfg, "cpu")]) == 3


def test_a_built_cache_costs_nothing_in_the_estimate(tiny_run, demo_root, tmp_path):
    from maskcls.common.runfolder import RunFolder
    from maskcls.data.splits import prepare_split
    from maskcls.train.config import run_config
    runs, name = tiny_run
    cfg = run_config(RunFolder(runs, name))
    train, val, _ = prepare_split(cfg.split_spec())
    seconds, how = cache_seconds(cfg, list(train["path"]) + list(val["path"]))
    assert seconds == 0 and "built" in how
    fresh = tiny(demo_root, tmp_path / "fresh")
    seconds, how = cache_seconds(fresh, list(train["path"]) + list(val["path"]))
    assert seconds > 0 and "ms a photo" in how


def test_a_trained_run_leaves_its_speed_and_its_status_showed_a_steady_eta(tiny_run):
    from maskcls.common.runfolder import RunFolder
    from maskcls.train.config import run_config
    runs, name = tiny_run
    cfg = run_config(RunFolder(runs, name))
    assert measured_speed(runs, cfg, "cpu") is None or measured_speed(runs, cfg, "cpu").train_ips > 0
    metrics = RunFolder(runs, name).read_metrics()
    assert all(m["val_images"] > 0 and m["val_seconds"] > 0 for m in metrics)


@pytest.mark.slow
def test_train_estimate_measures_and_trains_nothing_and_train_says_it_before_it_starts(demo_root, tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(tiny(demo_root, tmp_path, epochs=2).to_json())
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "train", "--config", cfg, "--estimate", "--runs-root", runs)
    assert code == 0 and out.startswith("estimated time: about ") and "a probe of" in out, err
    assert not (runs / "tiny").exists() and not [p for p in runs.glob("*") if p.is_dir()] if runs.exists() else True
    code, out, err = run_cli(capsys, "train", "--config", cfg, "--folds", "2", "--name", "f", "--estimate",
                             "--runs-root", runs)
    assert code == 0 and "2 folds on one device" in out, err
    code, out, err = run_cli(capsys, "train", "--config", cfg, "--name", "first", "--runs-root", runs)
    assert code == 0 and "estimated time: none yet" in out  # nothing measured here before the first run
    code, out, err = run_cli(capsys, "train", "--config", cfg, "--name", "second", "--runs-root", runs)
    assert code == 0 and "estimated time: about" in out and "measured here by 2 epoch(s)" in out, err
