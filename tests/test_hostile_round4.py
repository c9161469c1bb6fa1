"""An outside tester's round against main at 33b51c6 (docs/reliability.md, "Hardening, round four: the outside
round"): each case that broke, as it was reproduced, now held."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import copy_run, free_port, run_cli
from maskcls.common.runfolder import RunFolder


def test_jobs_submit_refuses_zero_slots_before_a_folder_exists(demo_root, tmp_path, capsys):
    for slots in ("0", "-3"):
        code, _, err = run_cli(capsys, "jobs", "submit", "--preset", "demo-cpu", "--data", demo_root, "--slots",
                               slots, "--name", "js", "--runs-root", tmp_path / "runs")
        assert code == 2 and "--slots (jobs per device at once) must be a whole number from 1" in err
    assert not (tmp_path / "runs" / "js").exists()


def test_team_serve_refuses_a_port_another_server_holds(tmp_path):
    from maskcls.orchestration.team.serve import start_store
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=rf"127.0.0.1:{port} is already in use"):
            start_store(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "art", port=port)
    for port in (0, 99999):
        with pytest.raises(ValueError, match="--port must be a whole number from 1 to 65535"):
            start_store(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "art", port=port)


def test_a_store_that_cannot_start_says_why_not_sqlalchemys_footer(tmp_path):
    from maskcls.orchestration.team.serve import failure_line
    log = ("Traceback (most recent call last):\n  File ...\nsqlalchemy.exc.OperationalError: (psycopg.OperationalError)"
           " connection failed: connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n"
           "(Background on this error at: https://sqlalche.me/e/21/e3q8)\n")
    assert "Connection refused" in failure_line(log) and "Background" not in failure_line(log)
    from maskcls.orchestration.team.serve import start_store
    t0 = time.time()
    with pytest.raises(ValueError, match="database at postgresql://u@127.0.0.1:1/db cannot be reached.*refused") as e:
        start_store("postgresql://u@127.0.0.1:1/db", tmp_path / "art", port=free_port(), wait=60)
    assert "sqlalche.me" not in str(e.value) and time.time() - t0 < 30  # said at once, not after MLflow's retries


@pytest.mark.slow
def test_team_serve_stops_its_server_on_sigterm(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "maskcls", "team", "serve", "--backend-store-uri",
                             f"sqlite:///{tmp_path / 'x.db'}", "--artifacts", str(tmp_path / "art"), "--port",
                             str(port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    line = proc.stdout.readline()
    assert "team store on" in line, line + proc.stdout.read()
    server = int(line.split("(pid ")[1].split(")")[0])
    os.kill(proc.pid, signal.SIGTERM)  # the command this test started (timeout, systemd, a closed terminal)
    assert proc.wait(60) == 0
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(server, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.killpg(server, signal.SIGKILL)  # the group the command started, left behind: this test's to clean
        pytest.fail("the MLflow server outlived `maskcls team serve`")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT left by the health checks is no server
        s.bind(("127.0.0.1", port))  # nothing listens there any more


@pytest.mark.slow
def test_a_signal_just_after_the_announcement_still_stops_the_server(tmp_path, monkeypatch, capsys):
    """CI found the window: SIGTERM between printing "team store on" and waiting on the server left it running."""
    import builtins

    import maskcls.cli.team as team
    from maskcls.orchestration.team import serve
    made = []
    real_start = serve.start_store

    def start(*a, **kw):
        made.append(real_start(*a, **kw))
        return made[-1]
    monkeypatch.setattr(serve, "start_store", start)

    def interrupted_print(*a, **kw):  # the signal lands on the announcement line itself
        builtins.print(*a, **kw)
        raise KeyboardInterrupt
    monkeypatch.setattr(team, "print", interrupted_print, raising=False)
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code, out, _ = run_cli(capsys, "team", "serve", "--backend-store-uri", f"sqlite:///{tmp_path / 'x.db'}",
                               "--artifacts", tmp_path / "art", "--port", free_port())
        after = {sig: signal.getsignal(sig) for sig in old}
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    assert after == old  # the command gives its caller's signal handlers back
    alive = [p for p in made if p.poll() is None]
    for p in alive:
        serve.stop_store(p)  # the group this test's own command started, left behind
    assert "team store on" in out and code == 0
    assert made and not alive, "the server outlived the command"


def test_deep_json_and_repeated_keys_are_refused_by_name(demo_root, tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    twice = tmp_path / "twice.json"
    twice.write_text('{"epochs": 1, "lr": 0.001, "epochs": 50}')
    runs = ["--runs-root", tmp_path / "runs"]
    for args in (["train", "--config", deep, "--data", demo_root, *runs], ["ablate", "create", "l1", "--base", twice,
                                                                          "--steps", deep, *runs],
                 ["augment", "save", "deep", deep, *runs]):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and ("nested too deeply" in err or "given twice" in err), err
        assert "Traceback" not in err
    code, _, err = run_cli(capsys, "train", "--config", twice, "--data", demo_root, *runs)
    assert code == 2 and "the key 'epochs' is given twice" in err
    from maskcls.augment.spec import AugmentSpec, SpecError
    with pytest.raises(SpecError, match="nested too deeply"):
        AugmentSpec.from_json("[" * 3000 + "]" * 3000)  # the Augment page's import


def test_transform_params_must_be_an_object(demo_root, tmp_path, capsys):
    from maskcls.augment.spec import AugmentSpec, SpecError
    with pytest.raises(SpecError, match=r"transforms\[0\].params.*expected an object of parameters, found array"):
        AugmentSpec.from_dict({"transforms": [{"name": "flip", "params": [1]}]})
    with pytest.raises(SpecError, match="transforms: expected an array or null, found a JSON object"):
        AugmentSpec.from_dict({"transforms": {"name": "flip"}})
    code, _, err = run_cli(capsys, "train", "--data", demo_root, "--preset", "demo-cpu", "--set",
                           'augment={"transforms":[{"name":"flip","params":[1]}]}', "--runs-root", tmp_path / "runs")
    assert code == 2 and "transforms[0].params" in err and "Traceback" not in err


def test_the_runs_page_lists_around_damaged_configs(tiny_run, tmp_path):
    from conftest import app_test
    runs, name = copy_run(tiny_run, tmp_path)
    for bad, text in (("dmg5", "[]"), ("dmg1", '{"epochs": 1,')):
        shutil.copytree(runs / name, runs / bad)
        (runs / bad / "config.json").write_text(text)
    at = app_test("pages/runs.py", runs_root=str(runs), runs_pick=["dmg1", "dmg5", name])
    assert not at.exception, at.exception
    assert "3 of 3 runs" in at.caption[0].value
    with pytest.raises(ValueError, match="holds a JSON array, expected an object"):
        RunFolder(runs, "dmg5").read_config()


def test_a_resume_with_its_status_lost_reports_where_the_checkpoint_left_it(tiny_run, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    best = RunFolder(runs, name).read_status()["best_f1"]
    (runs / name / "status.json").unlink()
    code, out, err = run_cli(capsys, "jobs", "list", "--runs-root", runs)
    assert code == 0 and f"{name}" in out and "no status.json" in out  # shown as damaged, not left out
    code, out, err = run_cli(capsys, "train", "--resume", name, "--quiet", "--runs-root", runs)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["epoch"] == 2 and summary["best_f1"] == pytest.approx(best)


@pytest.mark.slow
def test_two_demo_generations_into_one_folder_both_finish(tmp_path):
    cmd = [sys.executable, "-m", "maskcls", "demo-data", str(tmp_path / "dd"), "--people", "20", "--eval-people", "5",
           "--seed", "5"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    from maskcls.data.index import index_data
    index = index_data(tmp_path / "dd")
    assert index.train["person_id"].nunique() == 20 and len(index.train) == 140


def test_seeds_with_folds_is_refused_not_half_done(demo_root, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--data", demo_root, "--preset", "demo-cpu", "--seeds", "2", "--folds",
                           "2", "--name", "sf", "--runs-root", tmp_path / "runs")
    assert code == 2 and "--folds and --seeds cannot go together" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_three_sweep_creates_at_once(demo_root, tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"data_root": str(demo_root), "model": "test_resnet", "pretrained": False}))
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"lr": {"type": "log_float", "low": 0.0003, "high": 0.01}}))
    cmd = [sys.executable, "-m", "maskcls", "sweep", "create", "swc", "--base", str(base), "--space", str(space),
           "--trials", "2", "--runs-root", str(tmp_path / "runs")]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2, 2], outs
    errs = [e for (_, e), p in zip(outs, procs) if p.returncode]
    assert all("a sweep named 'swc' already exists" in e for e in errs), errs


def test_a_mistyped_sweep_storage_is_named_and_not_created(demo_root, tmp_path, capsys):
    from maskcls.orchestration.sweeps import create_sweep
    from maskcls.train.config import RunConfig
    runs = tmp_path / "runs"
    create_sweep(runs, "sw", RunConfig(data_root=str(demo_root)), {"lr": {"type": "float", "low": 0.001,
                                                                          "high": 0.01}})
    other = tmp_path / "other.db"
    code, _, err = run_cli(capsys, "sweep", "run", "sw", "--trials", "1", "--storage", f"sqlite:///{other}",
                           "--runs-root", runs)
    assert code == 2 and str(other) in err and "does not exist" in err
    assert not other.exists()


def test_why_two_runs_do_not_pair():
    import numpy as np
    from maskcls.common.runfolder import predictions_frame
    from maskcls.train.comparison import unpaired_reason
    probs = np.eye(18)[[0, 1, 2, 3]]
    a = predictions_frame(["p1/a.jpg", "p1/b.jpg", "p2/a.jpg", "p2/b.jpg"], ["1", "1", "2", "2"], [0, 1, 2, 3], probs)
    same_people = predictions_frame(["p1/a.jpg", "p1/c.jpg", "p2/a.jpg", "p2/b.jpg"], ["1", "1", "2", "2"],
                                    [0, 1, 2, 3], probs)
    others = predictions_frame(["p3/a.jpg", "p3/b.jpg", "p2/a.jpg", "p2/b.jpg"], ["3", "3", "2", "2"], [0, 1, 2, 3],
                               probs)
    assert "the same people but not on the same photos" in unpaired_reason([a], [same_people])
    assert "different people" in unpaired_reason([a], [others])


def test_team_errors_name_the_cause_and_names_are_checked_first(tmp_path, capsys):
    env = {"MASKCLS_MEMBER": "bob"}
    os.environ.update(env)
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        code, _, err = run_cli(capsys, "team", "list", "--team", f"http://127.0.0.1:{closed}",
                               "--runs-root", tmp_path)
        assert code == 2 and "the connection was refused" in err
        code, _, err = run_cli(capsys, "team", "list", "--team", "http://no-such-host.invalid:5000",
                               "--runs-root", tmp_path)
        assert code == 2 and "no host named 'no-such-host.invalid'" in err
        code, _, err = run_cli(capsys, "team", "pull", "../../x/base", "--team", f"http://127.0.0.1:{closed}",
                               "--runs-root", tmp_path)
        assert code == 2 and "invalid member name" in err  # before any connection is tried
    finally:
        os.environ.pop("MASKCLS_MEMBER", None)


def test_predict_out_dash_and_an_empty_accept(tiny_run, demo_root, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    os.chdir(tmp_path)
    code, _, err = run_cli(capsys, "predict", "--data", demo_root, "--members", name, "--out", "-", "--runs-root", runs)
    assert code == 2 and "expected a file name" in err and not (tmp_path / "-").exists()
    code, _, err = run_cli(capsys, "review", name, "--accept", "", "--into", "rv", "--runs-root", runs)
    assert code == 2 and "got an empty one" in err
    assert not (runs / "corrections" / "rv.csv").exists()


def test_undecodable_photos_say_empty_or_cut_short(tmp_path):
    from PIL import Image
    from maskcls.data.imageio import ImageError, load_preprocessed
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    whole = tmp_path / "whole.jpg"
    Image.new("RGB", (384, 512), (120, 80, 40)).save(whole, quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[:2000])
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    reasons = {}
    for p in (empty, cut, text):
        with pytest.raises(ImageError) as e:
            load_preprocessed(p, (64, 48))
        reasons[p.name] = str(e.value)
    assert "empty file (0 bytes)" in reasons["empty.jpg"]
    assert "cannot decode image" in reasons["cut.jpg"]
    assert "not an image Pillow can read" in reasons["text.jpg"]
    assert all("_io." not in r for r in reasons.values())


def test_vectorised_image_keys_match_image_key():
    import pandas as pd
    from maskcls.data.fingerprints import image_key, image_keys
    paths = ["p1/a.jpg", "/data/train/images/000001_male_Asian_19/mask1.jpg", "0.jpg", "/x.jpg", "a/b/c/d e.png",
             "dätä 🙂 x/train/images/p/m.jpg"]
    assert image_keys(pd.Series(paths)).tolist() == [image_key(p) for p in paths]
