"""Tests of bench."""
import json
import shutil

import pytest

from maskcls.cli import main


def assert_ratio_of_printed_rates(r: dict) -> None:
    """fast_to_limit is fast / limit: both rates are printed to 0.1 img/s and the ratio to 0.001, so on a slow
    machine the printed rates alone give the ratio only to within what their rounding allows. Its size is noise on a
    shared CPU (a clean CI run measured 1.506 for inference): how near the limit it is, is the budgets' question."""
    fast, limit = r["fast_img_per_s"], r["limit_img_per_s"]
    rounding = fast / limit * (0.05 / fast + 0.05 / limit) + 5e-4
    assert limit > 0 and fast > 0 and r["fast_to_limit"] == pytest.approx(fast / limit, abs=rounding + 1e-6)


@pytest.mark.slow
def test_bench_train_reports_the_models_own_limit(demo_root, tmp_path, capsys):
    assert main(["bench", "train", "--data", str(demo_root), "--size", "64,48", "--batch", "16", "--steps", "3",
                 "--warmup", "1", "--workers", "1", "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert_ratio_of_printed_rates(r)
    assert r["fast_to_limit"] > 0 and r["baseline_to_limit"] > 0  # how near the limit is a budget's question, not this test's


def test_bench_infer_reports_the_models_own_limit(demo_root, tmp_path, capsys):
    assert main(["bench", "infer", "--data", str(demo_root), "--size", "64,48", "--batch", "16", "--workers", "1",
                 "--device", "cpu", "--cache-dir", str(tmp_path / "c"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert_ratio_of_printed_rates(r)


@pytest.mark.slow
def test_bench_cache_checks_the_batched_pixels_on_the_cpu(demo_root, tmp_path, capsys):
    root = tmp_path / "d"
    shutil.copytree(demo_root, root, ignore=shutil.ignore_patterns(".maskcls-cache"))
    assert main(["bench", "cache", "--data", str(root), "--size", "64,48", "--device", "cpu", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["cpu_seconds"] > 0 and r["pixel_mean_abs_diff"] <= 1.5 and "pixel check only" in r["device_decoder"]


def test_budget_steps_are_named_and_a_wrong_name_is_refused(capsys):
    from maskcls.cli import main
    assert main(["bench", "budgets", "--only", "intervals,nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown budget step(s) nope" in err and "trackers" in err and "demo-cpu" in err
