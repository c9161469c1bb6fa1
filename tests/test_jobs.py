"""Background jobs: real detached processes, queued per device through file locks."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import app_test, REPO, run_cli, tiny, TINY, wait_job
from maskcls.common.checkpoints import load_checkpoint
from maskcls.common.runfolder import RunFolder
from maskcls.orchestration import jobs
from maskcls.train.config import RunConfig


def pids_of_group(pgid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                text = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            f = text[text.rfind(")") + 2:].split()
            if int(f[2]) == pgid and f[0] != "Z":
                out.append(int(d))
    return out


@pytest.mark.slow
def test_two_jobs_on_one_device_run_one_after_the_other(demo_root, tmp_path):
    runs = tmp_path / "runs"
    jobs.submit(tiny(demo_root, tmp_path, device="cpu"), runs, "first")
    jobs.submit(tiny(demo_root, tmp_path, device="cpu"), runs, "second")
    assert jobs.job_info(RunFolder(runs, "second")).state == "queued"
    a = wait_job(runs, "first", {"completed", "failed"})
    b = wait_job(runs, "second", {"completed", "failed"})
    assert a.state == b.state == "completed", (a.error, b.error)
    assert b.started >= a.ended - 0.5  # never together
    assert RunFolder(runs, "second").read_metrics()[0]["epoch"] == 1
    # a fresh runner instance (another process) lists the same jobs
    out = subprocess.run([sys.executable, "-m", "maskcls", "jobs", "list", "--json", "--runs-root", str(runs)],
                         capture_output=True, text=True, check=True)
    listed = {r["name"]: r["state"] for r in json.loads(out.stdout)}
    assert listed == {"first": "completed", "second": "completed"}


@pytest.mark.slow
def test_cancel_a_running_job(demo_root, tmp_path):
    runs = tmp_path / "runs"
    jobs.submit(tiny(demo_root, tmp_path, device="cpu", epochs=200), runs, "long")
    wait_job(runs, "long", {"running"})
    deadline = time.time() + 60
    while not RunFolder(runs, "long").list_checkpoints() and time.time() < deadline:
        time.sleep(0.2)
    pgid = RunFolder(runs, "long").read_status()["pid"]
    info = jobs.cancel(runs, "long")
    assert info.state == "cancelled"
    assert pids_of_group(pgid) == []
    run = RunFolder(runs, "long")
    for name in run.list_checkpoints():
        load_checkpoint(run.path / name)


@pytest.mark.slow
def test_cancel_a_queued_job(demo_root, tmp_path):
    runs = tmp_path / "runs"
    jobs.submit(tiny(demo_root, tmp_path, device="cpu", epochs=200), runs, "busy")
    jobs.submit(tiny(demo_root, tmp_path, device="cpu"), runs, "waiting")
    wait_job(runs, "busy", {"running"})
    assert jobs.cancel(runs, "waiting").state == "cancelled"
    jobs.cancel(runs, "busy")


@pytest.mark.slow
def test_bad_config_job_fails_with_the_message(demo_root, tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(ValueError, match="unknown model 'no_such_model_v9'"):  # refused at submit
        jobs.submit(tiny(demo_root, tmp_path, device="cpu", model="no_such_model_v9"), runs, "refused")
    assert not (runs / "refused").exists()
    jobs.submit(tiny(demo_root, tmp_path, device="cpu", batch_size=5000), runs, "bad")  # found out only by the job
    info = wait_job(runs, "bad", {"failed", "completed"})
    assert info.state == "failed" and "batch_size 5000 is larger than the" in info.error


@pytest.mark.slow
def test_sigkilled_job_shows_as_lost(demo_root, tmp_path):
    runs = tmp_path / "runs"
    jobs.submit(tiny(demo_root, tmp_path, device="cpu", epochs=200), runs, "victim")
    wait_job(runs, "victim", {"running"})
    st = RunFolder(runs, "victim").read_status()
    os.killpg(st["pid"], signal.SIGKILL)  # a job leads its own group
    info = wait_job(runs, "victim", {"failed"}, timeout=10)
    assert info.error.startswith("lost")


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "x" * 200, "semi;colon", ""])
def test_run_names_cannot_escape_the_runs_root(tmp_path, name):
    with pytest.raises(ValueError, match="invalid run name"):
        jobs.create_run(tmp_path / "runs", name, RunConfig())
    assert not (tmp_path / "escape").exists()


def test_same_name_twice_gives_one_run(tmp_path):
    jobs.create_run(tmp_path, "same", RunConfig())
    with pytest.raises(ValueError, match="already exists"):
        jobs.create_run(tmp_path, "same", RunConfig())


def test_one_damaged_status_or_metrics_file_breaks_no_listing(tmp_path, capsys):
    from conftest import app_test
    from maskcls.cli import main
    runs = tmp_path / "runs"
    damaged = {"array": "[1, 2]", "progress": '{"state": "running", "progress": "x"}', "state": '{"state": 7}',
               "json": "{not json"}
    for name, text in {**damaged, "good": json.dumps({"state": "completed", "progress": 1.0, "epoch": 2,
                                                        "epochs": 2, "best_f1": 0.5})}.items():
        (runs / name).mkdir(parents=True)
        (runs / name / "config.json").write_text(json.dumps({"model": "resnet18", "epochs": 2}))
        (runs / name / "status.json").write_text(text)
    (runs / "good" / "metrics.jsonl").write_text('5\n{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, '
                                                 '"val_accuracy": 0.5, "val_macro_f1": 0.4}\n[3]\n'
                                                 '{"epoch": 2, "val_macro_f1": "x"}\n')
    assert main(["jobs", "list", "--json", "--runs-root", str(runs)]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(listed) == set(damaged) | {"good"}
    assert listed["good"]["state"] == "completed"
    assert listed["array"]["error"] == "damaged status.json: expected a JSON object, found a JSON array"
    assert listed["progress"]["error"] == "damaged status.json: progress must be a number, found a JSON string ('x')"
    assert all(listed[n]["state"] == "damaged" for n in damaged)
    assert main(["jobs", "list", "--runs-root", str(runs)]) == 0
    assert "damaged status.json" in capsys.readouterr().out
    assert [r["epoch"] for r in RunFolder(runs, "good").read_metrics()] == [1]  # the bad lines are left out
    at = app_test("pages/runs.py", runs_root=str(runs))
    assert not at.exception and len(at.dataframe[0].value) == 5
    at = app_test("pages/train.py", runs_root=str(runs))
    assert not at.exception and len(at.dataframe[0].value) == 5


# 12 -----------------------------------------------------------------------------------------------------------
def test_logs_of_a_run_that_does_not_exist(tmp_path, capsys):
    code, out, err = run_cli(capsys, "jobs", "logs", "NOSUCH", "--runs-root", str(tmp_path))
    assert code == 2 and "no run named 'NOSUCH'" in err and out == ""


def test_jobs_submit_with_a_missing_data_root_is_refused(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({**TINY, "data_root": str(tmp_path / "nowhere")}))
    code, _, err = run_cli(capsys, "jobs", "submit", str(tmp_path / "c.json"), "--runs-root", str(tmp_path / "runs"),
                           "--name", "j")
    assert code == 2 and "is not a folder" in err and not (tmp_path / "runs" / "j").exists()


@pytest.mark.slow  # spawns job processes (10 s): the suite's
def test_jobs_submit_builds_the_config_as_train_does(demo_root, tmp_path, capsys):
    """`jobs submit --preset P --data D --set K=V` (no JSON file) queues the config `train` would run (one function
    builds both); a bad preset is refused by name."""
    from maskcls.train.config import create_config
    runs = tmp_path / "runs"
    sets = [f"{k}={json.dumps(v)}" for k, v in {**TINY, "cache_dir": str(tmp_path / "cache")}.items()]
    code, out, err = run_cli(capsys, "jobs", "submit", "--preset", "demo-cpu", "--data", str(demo_root), "--name", "p",
                             "--runs-root", str(runs), *[a for kv in sets for a in ("--set", kv)])
    assert code == 0 and out.strip() == "p", err
    wait_job(runs, "p", {"completed"})
    want = create_config("demo-cpu", data_root=str(demo_root), **TINY, cache_dir=str(tmp_path / "cache")).to_dict()
    assert RunFolder(runs, "p").read_config() == want
    (tmp_path / "over.json").write_text(json.dumps({"lr": 0.005}))
    code, _, err = run_cli(capsys, "jobs", "submit", str(tmp_path / "over.json"), "--preset", "nope", "--runs-root",
                           str(runs))
    assert code == 2 and "unknown config preset 'nope'" in err


def test_cancel_of_a_run_or_prediction_that_does_not_exist(tmp_path, capsys):
    code, _, err = run_cli(capsys, "jobs", "cancel", "nope", "--runs-root", str(tmp_path))
    assert code == 2 and "no run named 'nope'" in err
    code, _, err = run_cli(capsys, "predictions", "--cancel", "nope", "--runs-root", str(tmp_path))
    assert code == 2 and "no submission named 'nope'" in err


@pytest.mark.slow
def test_studio_restart_with_two_running_and_one_waiting(demo_root, tmp_path, studio_demo):
    runs = tmp_path / "runs"
    for name, epochs in (("a", 500), ("b", 500), ("c", 3)):  # a and b outlast the checks: no race with the clock
        jobs.submit(tiny(demo_root, tmp_path, device="cpu", epochs=epochs), runs, name, slots=2)
    wait_job(runs, "a", {"running"})
    wait_job(runs, "b", {"running"})
    # a new studio process (the old one is gone): it reads everything from disk
    out = subprocess.run([sys.executable, "-m", "maskcls", "jobs", "list", "--json", "--runs-root", str(runs)],
                         cwd=REPO, capture_output=True, text=True, check=True)
    states = {r["name"]: r["state"] for r in json.loads(out.stdout)}
    assert states == {"a": "running", "b": "running", "c": "queued"}, states
    at = app_test("pages/train.py", runs_root=str(runs))
    table = at.dataframe[0].value.set_index("name")["state"].to_dict()
    assert table == states
    assert jobs.job_info(RunFolder(runs, "c")).state == "queued"  # still waiting: both slots are held
    a = jobs.cancel(runs, "a")  # frees a slot: the waiting job takes it
    final = wait_job(runs, "c", {"completed", "failed"}, timeout=300)
    assert final.state == "completed", RunFolder(runs, "c").log_tail()
    jobs.cancel(runs, "b")
    c = jobs.job_info(RunFolder(runs, "c"))
    assert c.started >= a.ended - 0.5


def test_a_cpu_job_never_gets_more_threads_than_its_submitter_was_given(monkeypatch):
    from maskcls.orchestration.jobs import job_threads
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.delenv("MASKCLS_THREADS", raising=False)
    assert (job_threads(1), job_threads(2), job_threads(16)) == (8, 4, 1)
    monkeypatch.setenv("MASKCLS_THREADS", "1")  # e.g. a test run or a sweep worker beside other work
    assert (job_threads(1), job_threads(2)) == (1, 1)
    monkeypatch.setenv("MASKCLS_THREADS", "junk")
    assert job_threads(2) == 4


@pytest.mark.parametrize("device, message", [
    ("cuda:abc", "device must be auto, cpu, cuda or cuda:N (N a GPU index such as 0), got 'cuda:abc'"),
    ("cuda:7", "device 'cuda:7' asked for, but "),
])
def test_a_device_this_machine_lacks_makes_no_folder(demo_root, tmp_path, capsys, device, message):
    """Issue 35 #7: `jobs submit --set device=cuda:abc` failed after leaving a folder that blocked the name."""
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, "jobs", "submit", "--data", str(demo_root), "--preset", "demo-cpu", "--set",
                           f"device={device}", "--name", "j", "--runs-root", str(runs))
    assert code == 2 and message in err, err
    assert not (runs / "j").exists()
