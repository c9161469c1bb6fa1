"""Issue 43, the first fresh outside round after the trust boundaries (114 cases by a tester who read the README
only; 90 held): each case that broke, as it broke (docs/reliability.md, "the first outside round"). The team-store
cases that need a real server are in tests/test_team.py; the forged-predictions cases in test_hostile_round5.py."""
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import copy_run, run_cli
from maskcls.common.fileio import write_json
from maskcls.common.runfolder import RunFolder


def test_a_hand_edited_index_row_out_of_range_is_rebuilt(tiny_run, tmp_path, capsys):
    """#34: F1 low -3 (sig kept) was listed as [-3.0000, 0.1233]."""
    from maskcls.orchestration.run_index import INDEX_FILE
    runs, name = copy_run(tiny_run, tmp_path)
    assert run_cli(capsys, "runs", "list", "--runs-root", runs)[0] == 0
    index = json.loads((runs / INDEX_FILE).read_text())
    index["runs"][name]["row"]["F1 low"] = -3
    (runs / INDEX_FILE).write_text(json.dumps(index))
    code, out, _ = run_cli(capsys, "runs", "list", "--runs-root", runs)
    assert code == 0 and "-3.0000" not in out and name in out


def test_the_report_builds_with_intervals_that_are_not_its_predictions_and_leaves_nothing_half_made(
        tiny_run, tmp_path, capsys, monkeypatch):
    """#53: stale per-class intervals crashed the report with matplotlib's "'xerr' must not contain negative
    values", leaving report.html and part of report_figures/ behind without report.md."""
    runs, name = copy_run(tiny_run, tmp_path)
    run = RunFolder(runs, name)
    table = pd.read_csv(run.predictions_path)
    probs = np.eye(18)[table["label"].to_numpy()]
    table[[f"p{i}" for i in range(18)]] = probs  # the intervals on disk now describe other predictions
    table.to_csv(run.predictions_path, index=False)
    (tmp_path / "a").mkdir()
    code, _, err = run_cli(capsys, "report", "--out", tmp_path / "a" / "r.html", "--runs-root", runs)
    assert code == 0, err
    import maskcls.wrapup.render as render

    def broken(fig, path):
        raise ValueError("a figure cannot be drawn")
    monkeypatch.setattr(render, "figure_png", broken)
    (tmp_path / "b").mkdir()
    code, _, err = run_cli(capsys, "report", "--out", tmp_path / "b" / "r.html", "--runs-root", runs)
    assert code == 2 and "a figure cannot be drawn" in err
    assert list((tmp_path / "b").iterdir()) == []  # nothing half made


def test_no_output_lands_in_any_data_roots_image_folders_or_tables(tiny_run, demo_root, tmp_path, capsys):
    """#58: `report --out DATA/train/images/report.html` wrote the report, its Markdown and figures there."""
    runs, _ = copy_run(tiny_run, tmp_path)
    person = next((demo_root / "train" / "images").iterdir())
    for out in (demo_root / "train" / "images" / "report.html", person / "r.html"):
        code, _, err = run_cli(capsys, "report", "--out", out, "--runs-root", runs)
        assert code == 2 and "images folder" in err, err
    assert not (demo_root / "train" / "images" / "report.html").exists() and not (person / "r.html").exists()
    from maskcls.common.outputs import guard_output
    with pytest.raises(ValueError, match="the data's own eval/info.csv"):
        guard_output(demo_root / "eval" / "info.csv")


def test_evaluate_recomputes_an_interval_its_predictions_do_not_match(tiny_run, tmp_path, capsys):
    """#79: a table cut to 5 people showed the stored interval "over 12 people"."""
    runs, name = copy_run(tiny_run, tmp_path)
    run = RunFolder(runs, name)
    table = pd.read_csv(run.predictions_path, dtype={"person_id": str})
    table[table["person_id"].isin(sorted(table["person_id"].unique())[:5])].to_csv(run.predictions_path, index=False)
    code, out, err = run_cli(capsys, "evaluate", name, "--runs-root", runs)
    assert code == 0 and "over 5 people" in out and "over 12 people" not in out, err


@pytest.mark.slow  # one of the inner loop's slowest: the suite runs it
def test_tuning_a_pulled_run_writes_beside_it_not_into_it(tiny_run, demo_root, tmp_path, capsys):
    """#25: `evaluate alice/base --tune` wrote class_bias.json into the read-only pulled run."""
    from test_hostile_round5 import place_pulled
    runs, name = copy_run(tiny_run, tmp_path)
    pulled = place_pulled(runs, runs / name, demo_root)
    before = sorted(p.name for p in pulled.path.iterdir())
    code, _, err = run_cli(capsys, "evaluate", "alice/done", "--tune", "--runs-root", runs)
    assert code == 0, err
    assert sorted(p.name for p in pulled.path.iterdir()) == before
    assert (runs / "team" / ".local" / "alice" / "done" / "class_bias.json").is_file()
    from maskcls.infer.evaluation import load_bias
    assert load_bias(runs, "alice/done").shape == (18,)


def test_a_state_no_run_can_be_in_is_refused_with_the_close_one(tiny_run, tmp_path, capsys):
    """#40: `runs list --state complete` said "no run matches" beside 19 completed runs."""
    runs, _ = copy_run(tiny_run, tmp_path)
    code, _, err = run_cli(capsys, "runs", "list", "--state", "complete", "--runs-root", runs)
    assert code == 2 and "did you mean 'completed'" in err


def test_a_run_whose_config_breaks_the_schema_says_so_in_the_listing(tiny_run, tmp_path, capsys):
    """#41: a config.json with an extra key listed as completed, model None, with no mark."""
    runs, name = copy_run(tiny_run, tmp_path)
    run = RunFolder(runs, name)
    write_json(run.config_path, {**run.read_config(), "evil": 1})
    code, out, _ = run_cli(capsys, "runs", "list", "--runs-root", runs)
    assert code == 0 and "config.json cannot be used" in out and "unknown config key 'evil'" in out


def test_disk_use_counts_what_the_disk_holds(tiny_run, tmp_path, capsys):
    """#45: a 50 GB sparse epoch file counted as 53,688 MB used and freed by a prune (du: 1.6 MB)."""
    runs, name = copy_run(tiny_run, tmp_path)
    with open(RunFolder(runs, name).path / "epoch_003.pt", "wb") as f:
        f.truncate(50 * 2 ** 30)
    code, out, _ = run_cli(capsys, "runs", "du", "--json", "--runs-root", runs)
    use = json.loads(out)
    assert code == 0 and use["total_mb"] < 100 and use["prunable_mb"] < 100


def test_notes_before_any_heading_are_refused_not_dropped(tiny_run, tmp_path, capsys):
    """#62: text before the first '## Section' heading appeared nowhere, and nothing said so."""
    runs, _ = copy_run(tiny_run, tmp_path)
    notes = tmp_path / "n.md"
    notes.write_text("We tried many things.\n## Data\nok\n")
    code, _, err = run_cli(capsys, "report", "--notes", notes, "--out", tmp_path / "r.html", "--runs-root", runs)
    assert code == 2 and "line 1: text before the first '## Section' heading" in err


def test_a_folder_where_a_companion_goes_gets_a_hint_that_fits(tiny_run, tmp_path, capsys):
    """#66: with a folder report.md beside the output, the hint suggested '.../report.md/report.html'."""
    runs, _ = copy_run(tiny_run, tmp_path)
    (tmp_path / "report.md").mkdir()
    code, _, err = run_cli(capsys, "report", "--out", tmp_path / "report.html", "--runs-root", runs)
    assert code == 2 and "move the folder away" in err and "report.md/report.html" not in err


def test_one_side_of_a_single_class_cannot_be_judged_and_per_class_intervals_stay_in_range(tiny_run, tmp_path,
                                                                                        capsys):
    """#70: every label 3 on one side gave "no evidence ... p = 0.514"; #77: a per-class interval +1.000 [-1.018,
    +3.018]."""
    runs, name = copy_run(tiny_run, tmp_path)
    shutil.copytree(runs / name, runs / "one", ignore=shutil.ignore_patterns(".*.lock"))
    run = RunFolder(runs, "one")
    table = pd.read_csv(run.predictions_path)
    table["label"] = 3
    table.to_csv(run.predictions_path, index=False)
    code, out, err = run_cli(capsys, "compare", name, "one", "--runs-root", runs, "--json")
    c = json.loads(out)
    assert code == 0 and c["verdict"].startswith("cannot judge") and "one class" in c["verdict"], err
    assert all(-1 <= r["interval"][0] <= r["interval"][1] <= 1 for r in c["per_class"])


def test_the_expected_test_f1_is_never_negative():
    """#78: "on an unseen set of 15 people: -0.0518 to 0.0315"."""
    import numpy as np

    from maskcls.train.intervals import add_selection
    history = pd.DataFrame({"path": [f"{i // 7}/{i}.jpg" for i in range(70)],
                            "person_id": [str(i // 7) for i in range(70)], "label": np.arange(70) % 18,
                            "e1": np.arange(70) % 18, "e2": (np.arange(70) + 1) % 18})
    out = add_selection({"macro_f1": 0.9, "expected_test_f1": [0.01, 0.05]}, history)
    assert min(out["expected_test_f1"]) >= 0


def test_corrections_ids_are_person_ids():
    """#89: a row with id `../../x` was silently ignored while bad ages were refused by line."""
    import io

    from maskcls.data.corrections import _validate
    table = pd.read_csv(io.StringIO("id,gender,age,swap_mask,note\n../../x,male,,0,\n"), dtype=str)
    with pytest.raises(ValueError, match=r"line 2: id '../../x' is no person id"):
        _validate(table, "c.csv")


def test_a_json_file_given_as_a_checkpoint_is_named_for_what_it_is(tiny_run, tmp_path, capsys):
    """#92: `evaluate RUN --checkpoint config.json` said it "holds objects ... which could run code"."""
    runs, name = copy_run(tiny_run, tmp_path)
    shutil.copy(RunFolder(runs, name).config_path, RunFolder(runs, name).path / "cfg.pt")
    code, _, err = run_cli(capsys, "evaluate", name, "--checkpoint", "cfg.pt", "--runs-root", runs)
    assert code == 2 and "is not a checkpoint" in err and "JSON" in err and "could run code" not in err


def test_a_ladder_step_whose_rung_has_no_predictions_says_so(tiny_run, tmp_path, capsys):
    """#81: a rung "done, no validation predictions" left its step "waiting for its runs" for ever."""
    from dataclasses import asdict

    from maskcls.orchestration.ladder import Ladder, ladder_path
    runs, name = copy_run(tiny_run, tmp_path)
    cfg = RunFolder(runs, name).read_config()
    ladder = Ladder("lad", cfg, "cumulative", [{"name": "lr up", "set": {"lr": 0.002}}], seeds=1)
    for n, _ in ladder.planned():
        shutil.copytree(runs / name, runs / n, ignore=shutil.ignore_patterns(".*.lock"))
    write_json(ladder_path(runs, "lad"), asdict(ladder))
    os.unlink(RunFolder(runs, ladder.planned()[1][0]).predictions_path)
    code, out, err = run_cli(capsys, "ablate", "status", "lad", "--runs-root", runs)
    assert code == 0 and "cannot be compared" in out and "waiting for its runs" not in out, err
