"""Cancel signals only what the project started and can verify: never a pid or group read from a file alone.

Every process these tests signal, they started themselves; os.kill / os.killpg are guarded so that a signal to
anything else fails the test instead of reaching it.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, wait_until
from maskcls.cli import main
from maskcls.common.procs import proc_start, spawn_detached
from maskcls.common.runfolder import RunFolder

SLEEP = [sys.executable, "-c", "import time; time.sleep(120)"]


def live_group(pid: int) -> int:
    stat = open(f"/proc/{pid}/stat").read()
    return int(stat[stat.rfind(")") + 2:].split()[2])


@pytest.fixture
def started():
    """Processes this test starts (each leads its own group); whatever is left is killed at the end."""
    procs = []

    def start(args=SLEEP):
        p = subprocess.Popen(args, start_new_session=True)
        procs.append(p)
        wait_until(lambda: proc_start(p.pid) is not None, 10, "the process to start")
        return p
    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


@pytest.fixture
def guarded(monkeypatch):
    """Only pids / groups in `allowed` may be signalled; any other target fails the test before it is reached."""
    allowed: set[int] = set()
    sent: list[tuple[str, int, int]] = []
    real_kill, real_killpg = os.kill, os.killpg

    def kill(pid, sig):
        sent.append(("kill", pid, sig))
        assert pid in allowed, f"signalled pid {pid}, which this test did not start"
        real_kill(pid, sig)

    def killpg(pgid, sig):
        sent.append(("killpg", pgid, sig))
        assert pgid in allowed, f"signalled group {pgid}, which this test did not start"
        real_killpg(pgid, sig)
    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(os, "killpg", killpg)
    return allowed, sent


def a_job(tmp_path) -> tuple[RunFolder, int]:
    """A run folder whose job process the project started (spawn_detached: own group, the job's marker)."""
    run = RunFolder(tmp_path / "runs", "job")
    run.path.mkdir(parents=True)
    run.config_path.write_text("{}")
    pid = spawn_detached(SLEEP, run.log_path)
    wait_until(lambda: proc_start(pid) is not None, 10, "the job to start")
    return run, pid


def plant(run: RunFolder, **fields) -> None:
    run.status_path.write_text(json.dumps({"state": "running", "submitted": 1.0, **fields}))


@pytest.mark.parametrize("pgid", [1, 0, "caller", "foreign"])
def test_cancel_ignores_the_group_a_status_names(tmp_path, started, guarded, capsys, pgid):
    allowed, sent = guarded
    run, pid = a_job(tmp_path)
    foreign = started()
    pgid = {"caller": os.getpgrp(), "foreign": foreign.pid}.get(pgid, pgid)
    plant(run, pid=pid, pid_start=proc_start(pid), pgid=pgid)
    allowed.add(pid)  # the job leads its own group: the only group a cancel may signal
    assert main(["jobs", "cancel", "job", "--runs-root", str(run.root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("job: cancelled")
    assert f"pgid {pgid} was ignored" in out
    assert proc_start(pid) is None  # the job is gone
    assert foreign.poll() is None  # the foreign group lives
    assert {target for _, target, _ in sent} == {pid}


def test_a_status_naming_a_stranger_signals_nothing(tmp_path, started, guarded, capsys):
    _, sent = guarded
    stranger = started()  # a live process this status did not start: no job marker, no lock of the folder
    run = RunFolder(tmp_path / "runs", "planted")
    run.path.mkdir(parents=True)
    run.config_path.write_text("{}")
    plant(run, pid=stranger.pid, pid_start=proc_start(stranger.pid), pgid=stranger.pid)
    state = run.state()
    assert state["state"] == "failed" and f"process {stranger.pid} is not this job's" in state["error"]
    assert main(["jobs", "cancel", "planted", "--runs-root", str(run.root)]) == 0
    out = capsys.readouterr().out
    assert "cancelled" in out and "nothing was signalled" in out
    assert sent == [] and stranger.poll() is None


@pytest.mark.parametrize("pid", [1, 0, -5, "12", True])
def test_impossible_pids_are_never_signalled(tmp_path, guarded, pid):
    _, sent = guarded
    run = RunFolder(tmp_path / "runs", "odd")
    run.path.mkdir(parents=True)
    plant(run, pid=pid, pid_start=1)
    if isinstance(pid, int) and not isinstance(pid, bool):
        result = run.cancel(grace=0.5)
        assert result["state"] == "cancelled" and "nothing was signalled" in result["notes"][0]
    else:  # a status of the wrong shape is named, never acted on
        with pytest.raises(ValueError, match="damaged status.json: pid must be a whole number"):
            run.cancel(grace=0.5)
    assert sent == []


def test_a_job_process_is_verified_by_its_marker_and_leads_its_group(tmp_path):
    run, pid = a_job(tmp_path)
    try:
        assert live_group(pid) == pid
        raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        assert f"MASKCLS_JOB={run.path.resolve()}".encode() in raw
    finally:
        os.kill(pid, 9)


def _script(tmp_path, demo_root, marker) -> list[str]:
    """A shell script that trains in the foreground, then goes on to write `marker`."""
    train = [sys.executable, "-m", "maskcls", "train", "--data", str(demo_root), "--name", "fg", "--runs-root",
             str(tmp_path / "runs"), "--quiet", "--set", "model=test_resnet", "--set", "pretrained=false",
             "--set", "image_size=[64,48]", "--set", "epochs=200", "--set", "batch_size=16", "--set", "workers=1",
             "--set", f"cache_dir={tmp_path / 'cache'}"]
    return ["bash", "-c", " ".join(f"'{a}'" for a in train) + f" 2>{tmp_path / 'err.txt'}; echo $? > {marker}"]


def _running(run: RunFolder):
    st = run.read_status()
    return st.get("state") == "running" and st.get("epoch", 0) >= 1


@pytest.mark.slow
def test_cancelling_a_foreground_run_stops_it_alone(tmp_path, demo_root, started):
    marker = tmp_path / "after.txt"
    script = started(_script(tmp_path, demo_root, marker))  # the script leads its own group, as a cron job would
    run = RunFolder(tmp_path / "runs", "fg")
    wait_until(lambda: run.status_path.exists() and _running(run), 180, "the foreground run to train an epoch")
    trainer = run.read_status()["pid"]
    assert live_group(trainer) == script.pid  # the trainer shares the script's group
    assert main(["jobs", "cancel", "fg", "--runs-root", str(run.root)]) == 0
    wait_until(lambda: marker.exists() and marker.read_text().strip(), 30, "the script to go on after the run")
    assert marker.read_text().strip() == "143"  # the run ended on the SIGTERM; the script went on
    assert script.wait(10) == 0
    assert run.state()["state"] == "cancelled"
    err = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in err and "--resume fg" in err


@pytest.mark.slow
def test_ctrl_c_on_a_foreground_run_ends_it_cancelled_without_a_traceback(tmp_path, demo_root, started):
    marker = tmp_path / "after.txt"
    started(_script(tmp_path, demo_root, marker))
    run = RunFolder(tmp_path / "runs", "fg")
    wait_until(lambda: run.status_path.exists() and _running(run), 180, "the foreground run to train an epoch")
    os.kill(run.read_status()["pid"], 2)  # the trainer this test's script started
    wait_until(lambda: marker.exists() and marker.read_text().strip(), 30, "the run to end")
    assert marker.read_text().strip() == "130"
    assert run.state()["state"] == "cancelled"
    err = (tmp_path / "err.txt").read_text().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("maskcls train: Ctrl-C") and "--resume fg" in err[0], err
    from maskcls.train.driver import check_resumable
    from maskcls.common.checkpoints import load_checkpoint
    check_resumable(run)  # resumable as any cancelled run
    assert load_checkpoint(run.last_path)["epoch"] >= 1


def test_detached_processes_start_in_the_checkout():
    """Background jobs run `python -m maskcls` from the checkout, so they work without an installed package
    (PYTHONPATH=. on a GPU server) — the subpackage move must not have shifted that folder."""
    from maskcls.common import procs, settings
    assert procs.REPO == settings.REPO == REPO
    assert (procs.REPO / "maskcls" / "__main__.py").exists()
