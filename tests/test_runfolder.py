"""Tests of runfolder."""
import json
import threading

import pytest

from conftest import tiny, wait_job
from maskcls.cli import main
from maskcls.common.runfolder import list_runs
from maskcls.orchestration import jobs
from maskcls.orchestration.compare import delete_run
from maskcls.train.config import RunConfig


def test_a_folder_with_only_a_config_is_not_a_run(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "config.json").write_text(RunConfig().to_json())
    (tmp_path / "configs" / "mine.txt").write_text("keep me")
    assert [r.name for r in list_runs(tmp_path)] == []
    with pytest.raises(ValueError, match="not a run folder"):
        delete_run(tmp_path, "configs")
    assert (tmp_path / "configs" / "mine.txt").exists()


def test_resume_jobs_and_predictions_take_paths(tiny_run, demo_root, tmp_path, monkeypatch, capsys):
    runs, name = tiny_run
    monkeypatch.chdir(runs.parent)
    assert main(["train", "--resume", f"./runs/{name}", "--quiet"]) == 0  # nothing left to train: completes at once
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["state"] == "completed"
    assert main(["jobs", "logs", f"runs/{name}", "--lines", "3"]) == 0
    assert "completed" in capsys.readouterr().out
    assert main(["jobs", "cancel", str(runs / name)]) == 2  # found by path; refused because it is not running
    assert f"run {name!r} is completed, not queued or running" in capsys.readouterr().err


@pytest.mark.slow
def test_two_sessions_launching_the_same_name_make_one_run(demo_root, tmp_path):
    runs = tmp_path / "runs"
    barrier = threading.Barrier(2)
    results = []

    def launch():
        barrier.wait()
        try:
            results.append(jobs.submit(tiny(demo_root, tmp_path, device="cpu"), runs, "same").name)
        except ValueError as e:
            results.append(str(e))
    threads = [threading.Thread(target=launch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results)[0].startswith("a run named 'same' already exists") and "same" in results
    assert len([r for r in results if r == "same"]) == 1
    assert wait_job(runs, "same", {"completed", "failed"}).state == "completed"
