"""Eval-set predictions as background jobs: submit, progress, result, cancel, the page's background path."""
import json
import re
import time

import pandas as pd
import pytest

from conftest import app_test, make_member
from maskcls.cli import main
from maskcls.common.procs import is_alive
from maskcls.orchestration.submissions import (cancel_submission, list_submissions, read_submission, start_submission, SubmissionFolder, SubmissionRequest, submit_here, suggest_background)


def member(root, name, data_root, size=(64, 48), seed=0):
    return make_member(root, name, size=size, seed=seed, data_root=str(data_root)).run


def wait_for(job: SubmissionFolder, states=("completed", "failed", "cancelled"), timeout=120) -> dict:
    """The final state, once the job's process has exited too (so it cannot slow the next test)."""
    deadline, pid = time.time() + timeout, None
    while time.time() < deadline:
        info = job.state()
        pid = info.get("pid") or pid
        if info.get("state") in states:
            while pid and is_alive(pid) and time.time() < deadline:
                time.sleep(0.1)
            return info
        time.sleep(0.2)
    raise AssertionError(f"{job.name} still {job.state()} after {timeout}s; log: {job.log_path.read_text()}")


@pytest.mark.slow
def test_background_prediction_writes_the_submission(demo_root, tmp_path):
    names = [member(tmp_path, f"m{i}", demo_root, seed=i) for i in range(2)]
    req = SubmissionRequest(str(demo_root), names, "soft", tta=True, device="cpu", cache_dir=str(tmp_path / "cache"))
    job = start_submission(req, tmp_path, "bg")
    assert job.state()["state"] in ("queued", "running", "completed")
    info = wait_for(job)
    assert info["state"] == "completed", job.log_path.read_text()
    assert info["progress"] == 1.0 and info["rows"] == len(pd.read_csv(demo_root / "eval/info.csv")) and info["score"] is not None
    assert info["score"]["people"] == 15 and len(info["score"]["macro_f1_ci"]) == 2  # by person, stored with the job
    assert set(info["seconds"]) == {"total", "decode", "models"}
    sub = read_submission(job)
    ref = pd.read_csv(demo_root / "eval/info.csv", dtype={"ImageID": str})
    assert sub["ImageID"].tolist() == ref["ImageID"].tolist() and sub["ans"].between(0, 17).all()
    assert (job.path / "submission.probs.csv").exists()
    assert [p["name"] for p in list_submissions(tmp_path)] == ["bg"]
    with pytest.raises(ValueError, match="already exists"):
        start_submission(req, tmp_path, "bg")


@pytest.mark.slow
def test_background_prediction_can_be_cancelled(demo_root, tmp_path):
    names = [member(tmp_path, f"m{i}", demo_root, size=(128, 96), seed=i) for i in range(12)]
    req = SubmissionRequest(str(demo_root), names, "soft", tta=True, device="cpu", cache_dir=str(tmp_path / "cache"))
    job = start_submission(req, tmp_path, "long")
    deadline = time.time() + 60
    while job.state().get("stage", "starting") in ("starting",) and time.time() < deadline:
        time.sleep(0.1)
    info = cancel_submission(tmp_path, "long")
    assert info["state"] == "cancelled", job.log_path.read_text()
    assert not job.csv_path.exists()
    with pytest.raises(ValueError, match="not queued or running"):
        cancel_submission(tmp_path, "long")


def test_failed_prediction_says_why(demo_root, tmp_path):
    req = SubmissionRequest(str(demo_root), ["no-such-run"], "soft", device="cpu")
    status = submit_here(req, tmp_path, "bad")
    assert status["state"] == "failed" and "no run named 'no-such-run'" in status["error"]
    with pytest.raises(ValueError, match="no submission.csv yet"):
        read_submission(SubmissionFolder(tmp_path, "bad"))


def test_request_is_checked_and_names_stay_inside(tmp_path):
    with pytest.raises(ValueError, match="method: expected one of"):
        SubmissionRequest("/data", ["a"], "median").validate()
    with pytest.raises(ValueError, match="at least one"):
        SubmissionRequest("/data", [], "soft").validate()
    with pytest.raises(ValueError, match="invalid submission name"):
        SubmissionFolder(tmp_path, "../escape")
    assert SubmissionRequest.from_dict(SubmissionRequest("/d", ["a:best.pt:2"], "hard", True).__dict__).tta is True


def test_background_is_suggested_for_long_predictions():
    assert not suggest_background(700, 2, True, "cpu")  # the demo: seconds
    assert suggest_background(12_600, 1, True, "cpu")  # the real eval set on a CPU
    assert not suggest_background(12_600, 5, True, "cuda")
    assert suggest_background(12_600, 20, True, "cuda")


@pytest.mark.slow
def test_ensemble_page_runs_a_background_prediction(trained_run, studio_demo):
    runs, name, _ = trained_run
    at = app_test("pages/ensemble.py", runs_root=str(runs))
    box = next(c for c in at.checkbox if c.label == "Run as a background job")
    assert box.value is False  # 700 demo images: short, runs in the page by default
    box.check().run()
    next(b for b in at.button if b.label == "Predict the eval set").click().run()
    assert not at.exception and not at.error
    picked = at.session_state["ens_selected"]
    info = wait_for(SubmissionFolder(runs, picked))
    assert info["state"] == "completed", SubmissionFolder(runs, picked).log_path.read_text()
    at.run()
    assert not at.exception
    assert any(b.label == "Download submission CSV" for b in at.get("download_button")), "no download button"
    assert any("interval over the 100 eval people" in c.value for c in at.caption), [c.value for c in at.caption]


def test_an_interrupted_in_page_prediction_is_not_left_running(demo_root, tmp_path, monkeypatch):
    import maskcls.infer.ensemble as ensemble

    class Rerun(BaseException):
        """What Streamlit raises inside a script when the user interacts mid-run."""

    def interrupted(*args, **kwargs):
        raise Rerun()
    monkeypatch.setattr(ensemble, "predict_submission", interrupted)
    name = member(tmp_path, "m0", demo_root)
    with pytest.raises(Rerun):
        submit_here(SubmissionRequest(str(demo_root), [name], device="cpu"), tmp_path, "cut")
    info = SubmissionFolder(tmp_path, "cut").state()
    assert info["state"] == "failed" and "interrupted" in info["error"]
    with pytest.raises(ValueError, match="not queued or running"):
        cancel_submission(tmp_path, "cut")


@pytest.mark.slow
def test_cli_background_prediction_and_listing(demo_root, tmp_path, capsys):
    import json

    from maskcls.cli import main
    name = member(tmp_path, "m0", demo_root)
    assert main(["predict", "--data", str(demo_root), "--members", name, "--device", "cpu", "--tta", "flip",
                 "--runs-root", str(tmp_path), "--background", "from-cli"]) == 0
    assert "from-cli: started" in capsys.readouterr().out
    info = wait_for(SubmissionFolder(tmp_path, "from-cli"))
    assert info["state"] == "completed", SubmissionFolder(tmp_path, "from-cli").log_path.read_text()
    assert main(["predictions", "--json", "--runs-root", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["state"], r["method"], r["tta"]) for r in rows] == [("from-cli", "completed", "soft", True)]
    assert main(["submissions", "--runs-root", str(tmp_path)]) == 0
    assert re.search(r"from-cli .* demo F1 0\.\d{4} \[\d\.\d{3}-\d\.\d{3}\]", capsys.readouterr().out)
    assert main(["predictions", "--cancel", "from-cli", "--runs-root", str(tmp_path)]) == 2  # done: a clear refusal
    assert "not queued or running" in capsys.readouterr().err


def test_predictions_cancel_resolves_a_folder_path(tmp_path, monkeypatch, capsys):
    sub = tmp_path / "runs" / "submissions" / "p1"
    sub.mkdir(parents=True)
    (sub / "status.json").write_text(json.dumps({"state": "done"}))
    monkeypatch.chdir(tmp_path)
    assert main(["predictions", "--cancel", "runs/submissions/p1"]) == 2
    assert "submission 'p1' is completed, not queued or running" in capsys.readouterr().err
    assert main(["predictions", "--cancel", str(tmp_path / "runs")]) == 2
    assert "not a submission folder" in capsys.readouterr().err


@pytest.mark.slow
def test_background_predict_stores_absolute_member_paths(tiny_run, demo_root, tmp_path, monkeypatch, capsys):
    runs, name = tiny_run
    monkeypatch.chdir(runs.parent)
    assert main(["predict", "--data", str(demo_root), "--members", f"runs/{name}", "--runs-root", str(tmp_path),
                 "--background", "bg", "--device", "cpu", "--cache-dir", str(tmp_path / "c")]) == 0
    req = json.loads((tmp_path / "submissions/bg/request.json").read_text())
    assert req["members"] == [f"{(runs / name).resolve()}:best.pt:1.0"]
    deadline = time.time() + 120
    while time.time() < deadline:
        state = json.loads((tmp_path / "submissions/bg/status.json").read_text()).get("state")
        if state in ("completed", "failed"):
            break
        time.sleep(0.5)
    assert state == "completed", (tmp_path / "submissions/bg/log.txt").read_text()
