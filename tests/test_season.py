"""A season of runs: the run index (refreshed only when a run changes), filters in the CLI, disk use and prune
(it keeps exactly what a submission, a soup and a review use, changes nothing on --dry-run, never touches a
running run)."""
import json
import shutil

import pandas as pd
import pytest

from conftest import copy_run
from maskcls.cli import main
from maskcls.common.fileio import write_json
from maskcls.common.runfolder import RunFolder
from maskcls.orchestration import run_index
from maskcls.orchestration.run_index import INDEX_FILE, filter_rows, index_rows, kind_of, parse_where


def runs_like(tiny_run, tmp_path, names):
    """Copies of the shared tiny run under tmp_path/runs, one per name; returns the runs root."""
    runs, base = copy_run(tiny_run, tmp_path)
    for n in names:
        shutil.copytree(runs / base, runs / n)
    shutil.rmtree(runs / base)
    return runs


def files(runs):
    return sorted(str(p.relative_to(runs)) for p in runs.rglob("*.pt"))


def test_the_index_reuses_a_row_until_the_run_changes(tiny_run, tmp_path, monkeypatch):
    runs = runs_like(tiny_run, tmp_path, ["a", "b", "c"])
    calls = []
    real = run_index.summarise
    monkeypatch.setattr(run_index, "summarise", lambda run, ref=None: calls.append(run.name) or real(run, ref))
    assert [r["name"] for r in index_rows(runs)] == ["a", "b", "c"] and calls == ["a", "b", "c"]
    calls.clear()
    index_rows(runs)
    assert calls == []  # nothing changed: one file read, no folder summarised
    RunFolder(runs, "b").write_status(state="failed", error="disk full")
    rows = {r["name"]: r for r in index_rows(runs)}
    assert calls == ["b"] and rows["b"]["state"] == "failed"
    calls.clear()
    (runs / "c" / "epoch_001.pt").unlink()  # the folder changed: its size on disk is read again
    assert {r["name"]: r for r in index_rows(runs)}["c"]["disk MB"] < rows["c"]["disk MB"] and calls == ["c"]
    shutil.rmtree(runs / "a")
    assert [r["name"] for r in index_rows(runs)] == ["b", "c"]
    (runs / INDEX_FILE).write_text("{not json")  # a damaged index is rebuilt, never trusted
    calls.clear()
    assert [r["name"] for r in index_rows(runs)] == ["b", "c"] and calls == ["b", "c"]
    assert json.loads((runs / INDEX_FILE).read_text())["version"] == run_index.VERSION


def test_a_run_not_finished_is_summarised_on_every_read(tiny_run, tmp_path, monkeypatch):
    from maskcls.common.jobfolder import this_process
    runs = runs_like(tiny_run, tmp_path, ["live", "lost"])
    RunFolder(runs, "live").write_status(state="running", **this_process())  # this test's process: alive
    RunFolder(runs, "lost").write_status(state="running", pid=2 ** 22 + 7, pid_start=1)  # a process long gone
    calls = []
    real = run_index.summarise
    monkeypatch.setattr(run_index, "summarise", lambda run, ref=None: calls.append(run.name) or real(run, ref))
    first = {r["name"]: r["state"] for r in index_rows(runs)}
    index_rows(runs)
    assert first == {"live": "running", "lost": "failed"}  # its process is gone: read as failed (lost)
    assert calls == ["live", "lost", "live"]  # liveness is checked on every read, a verdict of lost is kept


def test_filters_by_name_state_kind_config_and_f1(tiny_run, tmp_path):
    runs = runs_like(tiny_run, tmp_path, ["base", "lad-r1-s1", "sw-t001", "rep-s2", "cv-fold1"])
    cfg = RunFolder(runs, "sw-t001").read_config()
    write_json(RunFolder(runs, "sw-t001").config_path, {**cfg, "model": "resnet18", "lr": 0.002})
    rows = index_rows(runs)
    assert {r["name"]: r["kind"] for r in rows} == {"base": "lone", "lad-r1-s1": "ladder", "sw-t001": "sweep",
                                                   "rep-s2": "repeat", "cv-fold1": "folds"}
    assert kind_of("alice/base") == "team"
    assert [r["name"] for r in filter_rows(rows, where=parse_where(["model=resnet18"]))] == ["sw-t001"]
    assert [r["name"] for r in filter_rows(rows, where=parse_where(["lr=2e-3"]))] == ["sw-t001"]  # numbers as numbers
    assert [r["name"] for r in filter_rows(rows, kinds=["ladder", "folds"])] == ["cv-fold1", "lad-r1-s1"]
    assert [r["name"] for r in filter_rows(rows, text="REP")] == ["rep-s2"]
    assert filter_rows(rows, states=["running"]) == [] and len(filter_rows(rows, states=["completed"])) == 5
    f1 = rows[0]["best macro F1"]
    assert len(filter_rows(rows, f1=(f1, f1))) == 5 and filter_rows(rows, f1=(f1 + 0.01, 1)) == []
    with pytest.raises(ValueError, match="no config key 'modle'.*model"):
        parse_where(["modle=x"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_where(["model"])


def test_runs_list_in_the_cli(tiny_run, tmp_path, capsys):
    runs = runs_like(tiny_run, tmp_path, ["a", "b"])
    write_json(RunFolder(runs, "b").config_path, {**RunFolder(runs, "b").read_config(), "model": "resnet18"})
    assert main(["runs", "list", "--runs-root", str(runs), "--where", "model=resnet18", "--sort", "f1",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in out] == ["b"] and out[0]["F1 low"] <= out[0]["best macro F1"] <= out[0]["F1 high"]
    assert main(["runs", "list", "--runs-root", str(runs), "--where", "nope=1"]) == 2
    assert "no config key 'nope'" in capsys.readouterr().err
    assert main(["runs", "list", "--runs-root", str(runs), "--f1", "0.9", "0.1"]) == 2
    assert "LOW HIGH" in capsys.readouterr().err
    assert main(["runs", "list", "--runs-root", str(runs), "--sort", "size"]) == 2
    assert "--sort is one of" in capsys.readouterr().err


def test_prune_keeps_exactly_what_is_used(tiny_run, tmp_path, demo_root, capsys):
    from maskcls.orchestration.reviews import open_review
    from maskcls.infer.evaluation import validation_predictions
    from maskcls.train.config import RunConfig
    runs = runs_like(tiny_run, tmp_path, ["sub", "soup", "rev", "free", "live", "broken"])
    assert files(runs).count("free/epoch_001.pt") == 1 and (runs / "free" / "epoch_002.pt").is_file()
    r = ["--runs-root", str(runs)]
    assert main(["predict", "--data", str(demo_root), "--members", "sub:epoch_001.pt", "--out",
                 str(tmp_path / "s.csv"), *r]) == 0
    assert main(["predict", "--data", str(demo_root), "--members", "soup:epoch_001.pt", "soup:epoch_002.pt",
                 "--method", "soup", "--out", str(tmp_path / "soup.csv"), *r]) == 0
    rev = RunFolder(runs, "rev")
    open_review(runs, "rev", checkpoint="epoch_002.pt", preds=validation_predictions(runs, "rev", "epoch_002.pt"),
                cfg=RunConfig.from_dict(rev.read_config()))
    live = RunFolder(runs, "live")
    held = live.acquire_lock()  # this test's process trains it, as far as anyone can tell
    from maskcls.common.jobfolder import this_process
    live.write_status(state="running", **this_process())
    RunFolder(runs, "broken").write_status(state="cancelled")
    capsys.readouterr()
    before = files(runs)
    assert main(["runs", "prune", "--dry-run", "--json", *r]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert files(runs) == before  # a dry run changes nothing
    removed = sorted(f"{x['run']}/{x['file']}" for x in plan["remove"])
    assert removed == ["free/epoch_001.pt", "free/epoch_002.pt", "free/last.pt", "rev/epoch_001.pt", "rev/last.pt",
                       "soup/last.pt", "sub/epoch_002.pt", "sub/last.pt"]
    why = {f"{x['run']}/{x['file']}": x["why"] for x in plan["keep"]}
    assert "soft submission" in why["sub/epoch_001.pt"] and "soup submission" in why["soup/epoch_002.pt"]
    assert "review into" in why["rev/epoch_002.pt"]
    assert "running" in why["live/*"] and "cancelled" in why["broken/*"] and "resume" in why["broken/*"]
    assert main(["runs", "prune", *r]) == 0
    out = capsys.readouterr().out
    assert "removed 8 files" in out
    after = files(runs)
    assert after == sorted(set(before) - set(removed))
    assert all(f"{n}/best.pt" in after for n in ("sub", "soup", "rev", "free", "live", "broken"))
    held.close()
    assert main(["runs", "du", "--json", *r]) == 0
    use = json.loads(capsys.readouterr().out)
    assert {x["run"] for x in use["runs"]} == {"sub", "soup", "rev", "free", "live", "broken"}
    assert use["free_mb"] > 0 and use["total_mb"] >= sum(x["mb"] for x in use["runs"])


def test_keep_best_and_a_damaged_used_by_file(tiny_run, tmp_path, capsys):
    runs = runs_like(tiny_run, tmp_path, ["a", "b"])
    (runs / "b" / "used_by.json").write_text("[1, 2")
    assert main(["runs", "prune", "--dry-run", "--keep-best", "--json", "--runs-root", str(runs)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["remove"] == []  # a is the best (the two tie; one is kept whole), b's marks cannot be read
    assert any(k["run"] == "b" and "could not be read" in k["why"] for k in plan["keep"])


def test_the_runs_page_prunes_only_after_the_tick(tiny_run, tmp_path):
    from conftest import app_test
    runs = runs_like(tiny_run, tmp_path, ["a", "b"])
    at = app_test("pages/runs.py", runs_root=str(runs))
    assert not at.exception and "2 of 2 runs" in at.caption[0].value
    at.toggle(key="runs_disk").set_value(True).run()
    assert [m.label for m in at.metric][:2] == ["Runs use", "A prune frees"]
    assert at.button(key="runs_prune").disabled  # nothing goes before the confirmation is ticked
    before = files(runs)
    at.checkbox(key="runs_prune_sure").check().run()
    at.button(key="runs_prune").click().run()
    assert not at.exception
    assert any("Removed 6 files" in s.value for s in at.success)
    assert files(runs) == ["a/best.pt", "b/best.pt"] and len(before) == 8
    assert not at.checkbox(key="runs_prune_sure").value  # the tick does not carry over to the next prune


def test_training_warns_when_the_disk_cannot_hold_its_checkpoints(demo_root, tmp_path, monkeypatch):
    import collections
    import shutil as sh

    from conftest import tiny
    from maskcls.train import driver
    cfg = tiny(demo_root, tmp_path, epochs=1)
    need = driver.expected_checkpoint_bytes(cfg)
    from maskcls.models.backbones import parameter_count
    assert need == 4 * parameter_count(cfg.model) * (1 + 1 + 3)  # best, one epoch file, last with Adam's moments
    assert driver.room_warning(cfg, tmp_path / "not-yet" / "runs") is None  # plenty here; a missing root's disk
    usage = collections.namedtuple("usage", "total used free")
    real = sh.disk_usage
    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(10**9, 10**9 - need // 2, need // 2)
                        if str(p) == str(tmp_path) else real(p))  # the runs root's disk is tight, the cache's not
    message = driver.room_warning(cfg, tmp_path)
    assert "checkpoints will need about" in message and "runs prune" in message
    with pytest.warns(UserWarning, match="checkpoints will need about"):
        driver.train_run(cfg, tmp_path / "runs", "tight")  # a warning, not a refusal: the run trains
    assert RunFolder(tmp_path / "runs", "tight").state()["state"] == "completed"


def test_repeat_groups_past_the_time_limit_fill_in_on_the_next_read(tiny_run, tmp_path, monkeypatch):
    from maskcls.orchestration.compare import runs_table
    runs = runs_like(tiny_run, tmp_path, ["g-s1", "g-s2", "h-s1", "h-s2"])
    monkeypatch.setattr(run_index, "GROUP_SECONDS", 0.0)  # no time for any group's interval on this read
    first = runs_table(runs).set_index("name")
    assert first.loc["g (repeat of 2)", "state"] == "summarising" and pd.isna(first.loc["g (repeat of 2)", "F1 low"])
    assert first.loc["g (repeat of 2)", "best macro F1"] == pytest.approx(first.loc["g-s1", "best macro F1"])
    monkeypatch.setattr(run_index, "GROUP_SECONDS", 60.0)
    second = runs_table(runs).set_index("name")
    assert second.loc["g (repeat of 2)", "state"] == "completed" and not pd.isna(second.loc["h (repeat of 2)", "F1 low"])
