"""The outside round of 2026-12-07 (83 cases, 66 held; docs/reliability.md): each case that broke, fixed at its
mechanism, with the test that fails without the fix. Those that need a real team store are in test_team.py and
test_team_groups.py; the corrections a push sends in test_fingerprints.py."""
import json
import shutil

import pytest

from conftest import REPO, copy_run, run_cli


def test_a_preview_of_a_hundred_thousand_draws_is_refused_before_an_image_is_loaded(tmp_path, capsys):
    """#45: `augment preview --n 100000` tried to allocate 236 GB and died with a traceback."""
    from maskcls.augment.preview import MAX_DRAWS, preview_draws
    from maskcls.augment.spec import AugmentSpec
    import numpy as np
    code, _, err = run_cli(capsys, "augment", "preview", REPO / "tests" / "astronaut.jpg", "--n", "100000",
                           "--out", tmp_path / "g.png")
    assert code == 2 and f"--n: a preview makes 1 to {MAX_DRAWS} draws" in err and "got 100000" in err
    assert not (tmp_path / "g.png").exists()
    with pytest.raises(ValueError, match="1 to 256 draws"):
        preview_draws(np.zeros((8, 8, 3), np.uint8), AugmentSpec(), MAX_DRAWS + 1)


def test_runs_list_of_a_runs_root_that_is_not_there_says_so(tmp_path, capsys, monkeypatch):
    """#59: `runs list --runs-root /does/not/exist` said "no run matches", exit 0."""
    code, _, err = run_cli(capsys, "runs", "list", "--runs-root", tmp_path / "nowhere")
    assert code == 2 and "does not exist: no runs root there" in err
    monkeypatch.setenv("MASKCLS_RUNS", str(tmp_path / "fresh"))  # a fresh clone's default: no runs yet, not an error
    from maskcls.cli import main
    assert main(["runs", "list"]) == 0
    assert "no runs yet: the runs root" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["missing", "plain folder"])
def test_an_estimate_of_a_run_that_would_be_refused_is_refused(tmp_path, capsys, where):
    """#64-#66: `train --estimate` of a missing data root said "estimated time: none", exit 0; `bench estimate` of a
    folder that is no data root refused after 82 s (of /dev/zero after 3.5 min and 1.4 GB)."""
    data = tmp_path / "data"
    if where == "plain folder":
        data.mkdir()
    code, out, err = run_cli(capsys, "train", "--preset", "demo-cpu", "--data", data, "--estimate",
                             "--runs-root", tmp_path / "runs")
    assert code == 2 and "estimated time" not in out and f"data root '{data}'" in err
    code, _, err = run_cli(capsys, "bench", "estimate", "--preset", "demo-cpu", "--data", data)
    assert code == 2 and ("has no train/images/ folder" if where == "plain folder" else "is not a folder") in err
    assert not (tmp_path / "runs").exists()


def test_a_saved_spec_is_replaced_only_on_purpose(tmp_path, capsys):
    """#68: `augment save a1` of another spec silently replaced the one runs were trained with by name."""
    from maskcls.augment.spec import load_saved_spec
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    one.write_text(json.dumps({"mode": "each", "transforms": [{"name": "hflip", "p": 0.5}]}))
    two.write_text(json.dumps({"mode": "each", "transforms": [{"name": "hflip", "p": 0.9}]}))
    runs = tmp_path / "runs"
    assert run_cli(capsys, "augment", "save", "a1", one, "--runs-root", runs)[0] == 0
    assert run_cli(capsys, "augment", "save", "a1", one, "--runs-root", runs)[0] == 0  # the same again: fine
    code, _, err = run_cli(capsys, "augment", "save", "a1", two, "--runs-root", runs)
    assert code == 2 and "a different augmentation spec is saved as 'a1' already" in err
    assert load_saved_spec(runs, "a1").transforms[0].p == 0.5
    assert run_cli(capsys, "augment", "save", "a1", two, "--runs-root", runs, "--replace")[0] == 0
    assert load_saved_spec(runs, "a1").transforms[0].p == 0.9


def test_a_pulled_group_named_where_a_run_goes_is_said_to_be_a_group(tiny_run, tmp_path, capsys):
    """#14: `review alice/fg` (a pulled group) said "not in this runs root ... pull it" although it was pulled."""
    runs, name = copy_run(tiny_run, tmp_path)
    for k in (1, 2):
        shutil.copytree(runs / name, runs / "team" / "alice" / f"rep-s{k}", ignore=shutil.ignore_patterns(".*.lock"))
    code, _, err = run_cli(capsys, "evaluate", "alice/rep", "--runs-root", runs)
    assert code == 2 and "'alice/rep' is a group pulled from alice's server, not one run" in err
    assert "alice/rep-s1, alice/rep-s2" in err
    code, _, err = run_cli(capsys, "evaluate", "alice/other", "--runs-root", runs)
    assert code == 2 and "is used once it is pulled" in err


def test_a_store_error_whose_first_line_ends_in_a_colon_keeps_its_reason():
    """#18: a bundle removed from the store: "...while downloading one or more artifacts from http://...:" and no
    reason."""
    from maskcls.orchestration.team.store import TeamError, reached
    with pytest.raises(TeamError, match="the store no longer holds a file its record names"):
        with reached("http://127.0.0.1:5077", "pull alice/base"):
            raise RuntimeError("The following failures occurred while downloading one or more artifacts from "
                               "http://127.0.0.1:5077/api/2.0/mlflow-artifacts/artifacts:\n{'v/1/run.tar': "
                               "'404 Client Error: NOT FOUND'}")
    with pytest.raises(TeamError, match=r"RuntimeError: failed for: \{'x': 'reason here'\}"):
        with reached("http://127.0.0.1:5077", "pull alice/base"):
            raise RuntimeError("failed for:\n{'x': 'reason here'}")


def test_mlflow_is_told_to_send_no_telemetry(monkeypatch):
    """#72 (and #83): a first push died on MLflow's telemetry session id; nothing of a store's use should leave the
    machine, and its dependencies' deprecation warnings stay out of the team commands' errors."""
    from maskcls.common.settings import quiet_mlflow
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    quiet_mlflow()
    import os
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")  # the user's own choice is kept
    quiet_mlflow()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"


# -- the second outside round of 2026-12-07 (104 cases, 95 held) -----------------------------------------------
def test_config_show_of_a_key_says_what_the_key_is(capsys):
    """#36: the README's `config show KEY` said "'lr' is no preset ... and no run"."""
    code, out, err = run_cli(capsys, "config", "show", "lr")
    assert code == 0 and out.startswith("lr (") and "default" in out and "--set lr=VALUE" in out, err


def test_a_spec_cannot_be_saved_under_a_shipped_presets_name(tmp_path, capsys):
    """#42: `augment save strong {}` was accepted: a run's augment="strong" then meant two specs."""
    spec = tmp_path / "s.json"
    spec.write_text("{}")
    code, _, err = run_cli(capsys, "augment", "save", "strong", spec, "--runs-root", tmp_path / "runs")
    assert code == 2 and "'strong' is a shipped preset" in err
    assert not (tmp_path / "runs" / "augment-specs" / "strong.json").exists()


def test_a_reader_that_stops_early_gets_no_error(tmp_path):
    """#85: `maskcls review fo | head -1` printed "maskcls review: error: Broken pipe"."""
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "maskcls", "config", "keys"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO, bufsize=0)
    proc.stdout.read(10)
    proc.stdout.close()  # as `head` does once it has its line
    err = proc.stderr.read().decode()
    proc.wait(60)
    assert "Broken pipe" not in err and "Traceback" not in err, err


def test_an_export_of_a_pulled_run_goes_beside_it(tiny_run, demo_root, tmp_path, capsys):
    """#81: `export bob/grp-s1 --to tensorboard` wrote tensorboard/ into the read-only pulled run."""
    pytest.importorskip("tensorboard")
    from test_hostile_round5 import place_pulled
    runs, name = copy_run(tiny_run, tmp_path)
    pulled = place_pulled(runs, runs / name, demo_root)
    before = sorted(p.name for p in pulled.path.iterdir())
    code, _, err = run_cli(capsys, "export", "alice/done", "--to", "tensorboard", "--runs-root", runs)
    assert code == 0, err
    assert sorted(p.name for p in pulled.path.iterdir()) == before
    assert list((runs / "team" / ".local" / "alice" / "done" / "tensorboard").glob("events.out.tfevents.*"))


def test_the_estimate_of_a_full_data_run_is_of_its_own_config(tiny_run, tmp_path, capsys):
    """#69: `train --full-data RUN --estimate` said "no data root", then with --data estimated resnet18 at 128x96
    for a resnet10t 64x48 run."""
    runs, name = copy_run(tiny_run, tmp_path)
    cfg = json.loads((runs / name / "config.json").read_text())
    code, out, err = run_cli(capsys, "train", "--full-data", name, "--estimate", "--runs-root", runs)
    assert code == 0 and cfg["model"] in out and "x".join(map(str, cfg["image_size"])) in out, (out, err)
    assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == [name]  # nothing trained
