"""Fingerprints fixed when a run trains (issue 45): a correction accepted later does not change what the run says it
trained on, and every comparison path (runs, repeat groups, fold groups, ladders) checks them."""
import json
import shutil

import pytest

from conftest import copy_run, run_cli
from maskcls.common.runfolder import RunFolder


def test_a_run_fixes_its_fingerprints_when_it_trains(tiny_run, demo_root, tmp_path):
    from maskcls.data.fingerprints import data_fingerprint, split_fingerprint
    from maskcls.orchestration.team.push import fingerprints
    from maskcls.train.config import RunConfig
    runs, name = copy_run(tiny_run, tmp_path)
    run = RunFolder(runs, name)
    fixed = run.read_fingerprints()
    cfg = RunConfig.from_dict(run.read_config())
    assert fixed == {"data": data_fingerprint(cfg), "split": split_fingerprint(run.read_predictions())}
    # a correction accepted after training: the data as it is now differs, the run's own fingerprint does not
    person = run.read_predictions()["person_id"].iloc[0]
    fix = tmp_path / "fix.csv"
    fix.write_text(f"id,gender,age,swap_mask,note\n{person},female,70,0,relabelled\n")
    run.config_path.write_text(json.dumps({**run.read_config(), "corrections": str(fix)}))
    assert data_fingerprint(RunConfig.from_dict(run.read_config())) != fixed["data"]
    assert fingerprints(run) == fixed  # what a push carries: unchanged


@pytest.mark.parametrize("bad", ["", "zz", {"data": "0123"}, {"data": "0123456789abcdef", "split": 5}, [1]])
def test_a_damaged_fingerprints_file_is_no_fingerprint(tiny_run, tmp_path, bad):
    runs, name = copy_run(tiny_run, tmp_path)
    run = RunFolder(runs, name)
    run.fingerprints_path.write_text(json.dumps(bad) if not isinstance(bad, str) else bad)
    assert run.read_fingerprints() is None


def group_of_two(runs, name: str, group: str) -> None:
    for k in (1, 2):
        shutil.copytree(runs / name, runs / f"{group}-s{k}", ignore=shutil.ignore_patterns(".*.lock"))


def test_compare_refuses_a_repeat_group_and_a_run_of_other_data(tiny_run, tmp_path, capsys):
    """The issue's case: a repeat group compared with a run trained on corrected labels got a verdict."""
    runs, name = copy_run(tiny_run, tmp_path)
    group_of_two(runs, name, "grp")
    shutil.copytree(runs / name, runs / "corrected", ignore=shutil.ignore_patterns(".*.lock"))
    other = RunFolder(runs, "corrected")
    other.fingerprints_path.write_text(json.dumps({**other.read_fingerprints(), "data": "0123456789abcdef"}))
    code, _, err = run_cli(capsys, "compare", "grp", "corrected", "--runs-root", runs)
    assert code == 2 and "trained on different data" in err and "grp (data " in err, err
    code, out, err = run_cli(capsys, "compare", "grp", name, "--runs-root", runs)
    assert code == 0 and "repeat group grp" in out, err


def test_a_group_whose_runs_trained_on_other_data_is_refused(tiny_run, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    group_of_two(runs, name, "mixed")
    two = RunFolder(runs, "mixed-s2")
    two.fingerprints_path.write_text(json.dumps({**two.read_fingerprints(), "data": "fedcba9876543210"}))
    code, _, err = run_cli(capsys, "compare", "mixed", name, "--runs-root", runs)
    assert code == 2 and "group 'mixed' mixes data: mixed-s1 trained on data" in err, err


def test_a_ladder_step_between_rungs_of_other_data_cannot_be_compared():
    from maskcls.orchestration.ladder import Rung
    from maskcls.orchestration.ladder_report import data_differs
    a, b = Rung(0, "base", prints={"0123456789abcdef"}), Rung(1, "sampler", prints={"fedcba9876543210"})
    assert "trained on different data" in data_differs(a, b, {"sampler": "class"})
    assert data_differs(a, b, {"corrections": "fix.csv"}) is None  # the step is about the data
    assert data_differs(a, Rung(1, "same", prints={"0123456789abcdef"}), {"sampler": "class"}) is None


def test_a_push_sends_the_corrections_the_run_trained_with(tiny_run, tmp_path):
    """Outside round, 2026-12-07: a push sent the corrections file as it was at push time. A run keeps a copy when
    it trains and a push sends that; a run from before the copy sends its file only while it gives the run's data."""
    from maskcls.orchestration.team.push import CORRECTIONS, _files
    runs, name = copy_run(tiny_run, tmp_path)
    run = RunFolder(runs, name)
    people = sorted(run.read_predictions()["person_id"].unique())
    fix = tmp_path / "fix.csv"
    fix.write_text(f"id,gender,age,swap_mask,note\n{people[0]},,,1,relabelled\n")
    run.config_path.write_text(json.dumps({**run.read_config(), "corrections": str(fix)}))
    assert CORRECTIONS not in _files(run)  # trained without it (its fingerprint says so): not sent as if it had
    run.keep_corrections(str(fix))
    trained_with = fix.read_text()
    fix.write_text(trained_with + f"{people[1]},,,1,later\n")
    assert _files(run)[CORRECTIONS].read_text() == trained_with
    run.keep_corrections(str(fix))  # a resume keeps the first copy
    assert (run.path / CORRECTIONS).read_text() == trained_with
