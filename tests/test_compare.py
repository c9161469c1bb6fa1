"""Is it really better? Paired comparison of runs, repeat groups of seeds, and the ablation ladder, from the CLI."""
import json

import pytest

from conftest import config_file, run_cli
from maskcls.orchestration.compare import compare_refs, runs_table

pytestmark = pytest.mark.slow  # trains; the create-only tests are quick but share the fixtures


@pytest.fixture(scope="module")
def runs(demo_root, tmp_path_factory):
    """Runs on one split (a, b: other seeds; b also a repeat group of two) and one on another split (c)."""
    base = tmp_path_factory.mktemp("compare")
    root = base / "runs"
    from maskcls.cli import main
    cfg = config_file(demo_root, base, epochs=2)
    for name, extra in (("a", []), ("c", ["--set", "split_seed=7"])):
        assert main(["train", "--config", cfg, "--name", name, "--runs-root", str(root), "--quiet", *extra]) == 0
    assert main(["train", "--config", cfg, "--name", "rep", "--seeds", "2", "--runs-root", str(root), "--quiet"]) == 0
    return root


def test_a_run_against_itself_is_no_difference(runs, capsys):
    code, out, _ = run_cli(capsys, "compare", "a", "a", "--json", "--runs-root", runs)
    c = json.loads(out)
    # two copies of one model: no variance, so no interval and no verdict (issue 43), never a width-0 interval
    assert code == 0 and c["paired"] and c["difference"] == 0 and c["interval"] is None
    assert c["verdict"].startswith("cannot judge: +0.000") and "zero variance" in c["verdict"]
    assert {"difference", "interval", "p_value", "paired", "per_class", "verdict"} <= set(c)


def test_two_single_runs_are_a_claim_about_the_models_not_their_configs(runs, capsys):
    """Issue 36: a comparison of two single runs says what it can show (these two trained models on these people),
    that a config claim needs seeds, and the seed spread the runs root's repeat groups measured."""
    code, out, _ = run_cli(capsys, "compare", "a", "rep-s1", "--runs-root", runs)
    assert code == 0 and "as trained models on these people; whether the config is better needs seeds" in out
    assert "claim: about these two trained models on these people, not their configs" in out
    assert "the repeat groups here measured a seed-to-seed spread of rep: sd " in out
    assert "resolution: with 12 people, a true difference smaller than about" in out
    assert "have fewer than 3 validation people: their F1 differences cannot be resolved" in out


def test_runs_on_one_split_pair_and_on_another_do_not(runs, capsys):
    paired = compare_refs(runs, "a", "rep-s1")
    assert paired["paired"] and paired["note"] is None
    code, out, _ = run_cli(capsys, "compare", "a", "c", "--runs-root", runs)
    assert code == 0 and "unpaired: validated on different people" in out
    unpaired = compare_refs(runs, "a", "c")
    assert not unpaired["paired"]


def test_a_repeat_group_is_one_row_and_compares_like_a_run(runs, capsys):
    table = runs_table(runs).set_index("name")
    row = table.loc["rep (repeat of 2)"]
    assert row["state"] == "completed" and row["F1 low"] <= row["best macro F1"] <= row["F1 high"]
    assert row["seed sd"] >= 0
    assert table.loc["a", "F1 low"] <= table.loc["a", "best macro F1"] <= table.loc["a", "F1 high"]
    c = compare_refs(runs, "a", "rep")
    assert c["paired"] and c["b_is"] == "repeat group rep (2 seeds)"
    assert c["claim"] == "configs" and "(as configs (seeds and people resampled))" in c["verdict"]
    assert c["seeds"] == [1, 2] and c["seed_sd"][1] == pytest.approx(row["seed sd"])
    code, out, _ = run_cli(capsys, "evaluate", "a", "--json", "--runs-root", runs)
    e = json.loads(out)
    lo, hi = e["macro_f1_ci"]
    assert code == 0 and lo <= e["macro_f1"] <= hi and len(e["per_class_f1_ci"]) == 18
    assert e["test_people"] == 15 and len(e["expected_test_f1"]) == 2  # the demo's 15 eval people


def test_an_ablation_ladder_from_the_cli(demo_root, tmp_path, capsys):
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps({"mode": "cumulative", "steps": [
        {"name": "class sampler", "set": {"sampler": "class"}}, {"name": "smoothing", "set": {"loss": "smooth"}},
        {"name": "lower lr", "set": {"lr": 0.0003}}]}))
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "ablate", "create", "lad", "--base", config_file(demo_root, tmp_path), "--steps",
                             steps, "--seeds", "2", "--runs-root", runs, "--json")
    assert code == 0, err
    assert len(json.loads(out)["runs"]) == 8  # four rungs (the base and three steps) x two seeds
    code, out, err = run_cli(capsys, "ablate", "run", "lad", "--quiet", "--runs-root", runs)
    assert code == 0, err
    code, out, _ = run_cli(capsys, "ablate", "status", "lad", "--json", "--runs-root", runs)
    s = json.loads(out)
    assert s["complete"] and len(s["rungs"]) == 4 and len(s["steps"]) == 3
    for rung in s["rungs"]:
        assert rung["interval"][0] <= rung["macro_f1"] <= rung["interval"][1]
    for step in s["steps"]:
        assert {"gain", "interval", "p_value", "verdict", "moved"} <= set(step) and step["paired"]
        assert step["verdict"] in ("pays", "no evidence", "hurts") and 0 < step["p_value"] <= 1
        assert "(as configs (seeds and people resampled))" in step["line"]
    assert s["caution"] is None
    code, out, _ = run_cli(capsys, "ablate", "run", "lad", "--runs-root", runs)  # nothing left to claim
    assert code == 0 and "trained 0 run(s)" in out


@pytest.mark.parametrize("steps, message", [
    ({"steps": []}, "with at least one step"),
    ({"mode": "sideways", "steps": [{"name": "x", "set": {"lr": 0.1}}]}, "mode must be one of"),
    ({"steps": [{"name": "x", "set": {"lrr": 0.1}}]}, "step 1 (x): unknown config key 'lrr'"),
    ({"steps": [{"name": "x", "set": {"lr": 0.1}}, {"name": "x", "set": {"lr": 0.2}}]}, "step 2: the name 'x' is used"),
    # issue 35 #9: a step setting the seed was replaced by the ladder's seed (both rungs seed 1: it measured nothing)
    ({"steps": [{"name": "other seed", "set": {"seed": 7}}]},
     "step 1 (other seed): 'seed' cannot be a step: the ladder sets each run's seed"),
    ({"steps": [{"name": "split", "set": {"split_seed": 3}}]},
     "'split_seed' cannot be a step: every rung must be scored on the same validation people"),
    ({"steps": [{"name": "all", "set": {"full_data": True}}]}, "'full_data' cannot be a step"),
    ({"steps": [{"name": "bounds", "set": {"age_upper": 58}}]}, "'age_upper' cannot be a step"),
    ({"steps": [{"name": "steps", "set": {"scheduler": "step", "step_size": 0}}]},
     "step 1 (steps): step_size must be a whole number from 1 to 10000"),
])
def test_bad_steps_are_refused_by_position(demo_root, tmp_path, capsys, steps, message):
    (tmp_path / "s.json").write_text(json.dumps(steps))
    code, _, err = run_cli(capsys, "ablate", "create", "bad", "--base", config_file(demo_root, tmp_path), "--steps",
                           tmp_path / "s.json", "--runs-root", tmp_path / "runs")
    assert code == 2 and message in err, err
    assert not (tmp_path / "runs" / "ladders" / "bad").exists()


def test_a_ladder_of_one_seed_says_what_its_verdicts_cannot_separate(demo_root, tmp_path, capsys):
    """Issue 36: `ablate create --seeds 1` (the default) says its verdicts cannot separate a step from seed noise,
    suggests --seeds 3, and `ablate status` repeats it; with seeds the caution goes."""
    steps = tmp_path / "s.json"
    steps.write_text(json.dumps({"steps": [{"name": "sampler", "set": {"sampler": "class"}}]}))
    base = config_file(demo_root, tmp_path)
    code, out, err = run_cli(capsys, "ablate", "create", "one", "--base", base, "--steps", steps,
                             "--runs-root", tmp_path / "runs")
    assert code == 0 and "one seed per rung: a step's verdict compares two trained models and cannot separate the " \
                         "step from seed noise" in out and "--seeds 3" in out, err
    code, out, _ = run_cli(capsys, "ablate", "status", "one", "--runs-root", tmp_path / "runs")
    assert code == 0 and "note: one seed per rung" in out
    code, out, _ = run_cli(capsys, "ablate", "create", "three", "--base", base, "--steps", steps, "--seeds", "3",
                           "--runs-root", tmp_path / "runs", "--json")
    assert code == 0 and json.loads(out)["caution"] is None
