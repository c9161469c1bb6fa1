"""Background jobs: real detached processes, queued per device through file locks."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from maskcls.runs import jobs
from maskcls.train.config import RunConfig
from maskcls.train.rundir import RunDir, load_checkpoint

from test_training import TINY


def cfg_for(demo_root, tmp_path, **kw) -> RunConfig:
    return RunConfig.from_dict({**TINY, "data_root": str(demo_root), "cache_dir": str(tmp_path / "cache"),
                                "device": "cpu", **kw})


def wait_state(runs, name, states, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = jobs.job_info(RunDir(runs, name))
        if info.state in states:
            return info
        time.sleep(0.2)
    raise AssertionError(f"{name} still {info.state} after {timeout}s; log:\n{RunDir(runs, name).log_tail()}")


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


def test_two_jobs_on_one_device_run_one_after_the_other(demo_root, tmp_path):
    runs = tmp_path / "runs"
    jobs.submit(cfg_for(demo_root, tmp_path), runs, "first")
    jobs.submit(cfg_for(demo_root, tmp_path), runs, "second")
    assert jobs.job_info(RunDir(runs, "second")).state == "queued"
    a = wait_state(runs, "first", {"completed", "failed"})
    b = wait_state(runs, "second", {"completed", "failed"})
    assert a.state == b.state == "completed", (a.error, b.error)
    assert b.started >= a.ended - 0.5  # never together
    assert RunDir(runs, "second").read_metrics()[0]["epoch"] == 1
    # a fresh runner instance (another process) lists the same jobs
    out = subprocess.run([sys.executable, "-m", "maskcls", "jobs", "list", "--json", "--runs-root", str(runs)],
                         capture_output=True, text=True, check=True)
    listed = {r["name"]: r["state"] for r in json.loads(out.stdout)}
    assert listed == {"first": "completed", "second": "completed"}


def test_cancel_a_running_job(demo_root, tmp_path):
    runs = tmp_path / "runs"
    jobs.submit(cfg_for(demo_root, tmp_path, epochs=200), runs, "long")
    wait_state(runs, "long", {"running"})
    deadline = time.time() + 60
    while not RunDir(runs, "long").list_checkpoints() and time.time() < deadline:
        time.sleep(0.2)
    pgid = RunDir(runs, "long").read_status()["pgid"]
    info = jobs.cancel(runs, "long")
    assert info.state == "cancelled"
    assert pids_of_group(pgid) == []
    run = RunDir(runs, "long")
    for name in run.list_checkpoints():
        load_checkpoint(run.path / name)


def test_cancel_a_queued_job(demo_root, tmp_path):
    runs = tmp_path / "runs"
    jobs.submit(cfg_for(demo_root, tmp_path, epochs=200), runs, "busy")
    jobs.submit(cfg_for(demo_root, tmp_path), runs, "waiting")
    wait_state(runs, "busy", {"running"})
    assert jobs.cancel(runs, "waiting").state == "cancelled"
    jobs.cancel(runs, "busy")


def test_bad_config_job_fails_with_the_message(demo_root, tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(ValueError, match="unknown model 'no_such_model_v9'"):  # refused at submit
        jobs.submit(cfg_for(demo_root, tmp_path, model="no_such_model_v9"), runs, "refused")
    assert not (runs / "refused").exists()
    jobs.submit(cfg_for(demo_root, tmp_path, batch_size=5000), runs, "bad")  # found out only by the job
    info = wait_state(runs, "bad", {"failed", "completed"})
    assert info.state == "failed" and "batch_size 5000 is larger than the" in info.error


def test_sigkilled_job_shows_as_lost(demo_root, tmp_path):
    runs = tmp_path / "runs"
    jobs.submit(cfg_for(demo_root, tmp_path, epochs=200), runs, "victim")
    wait_state(runs, "victim", {"running"})
    st = RunDir(runs, "victim").read_status()
    os.killpg(st["pgid"], signal.SIGKILL)
    info = wait_state(runs, "victim", {"failed"}, timeout=10)
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
