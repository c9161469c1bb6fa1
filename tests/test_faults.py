"""Faults: a kill during a checkpoint write, a studio restart with jobs in flight, racing launches, a full disk."""
import json
import os
import signal
import subprocess
import sys
import threading
import time


from conftest import REPO, app_test
from maskcls.runs import jobs
from maskcls.train.rundir import RunDir, load_checkpoint

from test_jobs import cfg_for, wait_state


def test_sigkill_while_writing_a_checkpoint(demo_root, tmp_path):
    """Kill the job the moment a checkpoint temp file exists; every checkpoint still loads; resume goes on."""
    runs = tmp_path / "runs"
    # resnet18 checkpoints (weights + Adam state) are ~130 MB: a write takes long enough to be caught
    cfg = cfg_for(demo_root, tmp_path, model="resnet18", image_size=[32, 32], batch_size=8, limit_batches=1,
                  epochs=30)
    jobs.submit(cfg, runs, "victim")
    run = RunDir(runs, "victim")
    wait_state(runs, "victim", {"running"})
    deadline, killed = time.time() + 180, False
    while time.time() < deadline and not killed:
        temps = [p for p in os.listdir(run.path) if p.endswith(".tmp") and ".pt." in p]
        if temps and run.list_checkpoints():
            os.killpg(run.read_status()["pgid"], signal.SIGKILL)
            killed = True
        time.sleep(0.005)
    assert killed, "never saw a checkpoint being written"
    info = wait_state(runs, "victim", {"failed"}, timeout=10)
    assert info.error.startswith("lost")
    epochs = {name: load_checkpoint(run.path / name)["epoch"] for name in run.list_checkpoints()}  # all load
    last = max(epochs.values())
    cfg_file = json.loads(run.config_path.read_text())
    cfg_file["epochs"] = last + 1
    run.config_path.write_text(json.dumps(cfg_file))
    proc = subprocess.run([sys.executable, "-m", "maskcls", "train", "--resume", "victim", "--runs-root", str(runs)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"at epoch {last} (best macro F1" in run.log_path.read_text()
    assert load_checkpoint(run.last_path)["epoch"] == last + 1
    assert run.read_status()["state"] == "completed"


def test_studio_restart_with_two_running_and_one_waiting(demo_root, tmp_path, studio_demo):
    runs = tmp_path / "runs"
    for name, epochs in (("a", 500), ("b", 500), ("c", 3)):  # a and b outlast the checks: no race with the clock
        jobs.submit(cfg_for(demo_root, tmp_path, epochs=epochs), runs, name, slots=2)
    wait_state(runs, "a", {"running"})
    wait_state(runs, "b", {"running"})
    # a new studio process (the old one is gone): it reads everything from disk
    out = subprocess.run([sys.executable, "-m", "maskcls", "jobs", "list", "--json", "--runs-root", str(runs)],
                         cwd=REPO, capture_output=True, text=True, check=True)
    states = {r["name"]: r["state"] for r in json.loads(out.stdout)}
    assert states == {"a": "running", "b": "running", "c": "queued"}, states
    at = app_test("pages/train.py", runs_root=str(runs))
    table = at.dataframe[0].value.set_index("name")["state"].to_dict()
    assert table == states
    assert jobs.job_info(RunDir(runs, "c")).state == "queued"  # still waiting: both slots are held
    a = jobs.cancel(runs, "a")  # frees a slot: the waiting job takes it
    final = wait_state(runs, "c", {"completed", "failed"}, timeout=300)
    assert final.state == "completed", RunDir(runs, "c").log_tail()
    jobs.cancel(runs, "b")
    c = jobs.job_info(RunDir(runs, "c"))
    assert c.started >= a.ended - 0.5


def test_two_sessions_launching_the_same_name_make_one_run(demo_root, tmp_path):
    runs = tmp_path / "runs"
    barrier = threading.Barrier(2)
    results = []

    def launch():
        barrier.wait()
        try:
            results.append(jobs.submit(cfg_for(demo_root, tmp_path), runs, "same").name)
        except ValueError as e:
            results.append(str(e))
    threads = [threading.Thread(target=launch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results)[0].startswith("a run named 'same' already exists") and "same" in results
    assert len([r for r in results if r == "same"]) == 1
    assert wait_state(runs, "same", {"completed", "failed"}).state == "completed"


DISK_FULL = r"""
import resource, signal, sys
import numpy as np
from maskcls.train.rundir import RunDir, predictions_frame
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
run = RunDir(sys.argv[1], "r")
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # the disk is "full" past 20 kB
n = 2000
try:
    run.write_predictions(predictions_frame(["x.jpg"] * n, ["1"] * n, [0] * n, np.full((n, 18), 1 / 18)))
except OSError as e:
    print(e)
"""


def test_full_disk_keeps_the_previous_predictions(tmp_path):
    run = RunDir(tmp_path, "r")
    run.path.mkdir()
    run.predictions_path.write_text("path,person_id,label\nold.jpg,1,0\n")
    out = subprocess.run([sys.executable, "-c", DISK_FULL, str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert "could not write" in out.stdout and "val_predictions.csv" in out.stdout
    assert "File too large" in out.stdout and "previous version of the file is intact" in out.stdout
    assert run.predictions_path.read_text() == "path,person_id,label\nold.jpg,1,0\n"
    assert not [p for p in os.listdir(run.path) if p.endswith(".tmp")]
