"""Sweeps (issue 18): Optuna studies whose trials are ordinary runs, pruned per epoch, shared by workers
through SQLite or a real PostgreSQL server."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, app_test, free_port
from maskcls.cli import main
from maskcls.runs import sweeps
from maskcls.train.config import RunConfig
from maskcls.train.rundir import RunDir, load_checkpoint

from test_training import TINY

SPACE = {"lr": {"type": "log_float", "low": 3e-4, "high": 1e-2},
         "loss": {"type": "categorical", "choices": ["ce", "focal"]}}


def base(demo_root, tmp_path, **kw) -> RunConfig:
    return RunConfig.from_dict({**TINY, "data_root": str(demo_root), "cache_dir": str(tmp_path / "cache"),
                                "limit_batches": 4, **kw})


def write(path: Path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def wait_for(predicate, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_four_trial_sweep_from_the_cli(demo_root, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    cfg = write(tmp_path / "base.json", base(demo_root, tmp_path).to_dict())
    space = write(tmp_path / "space.json", SPACE)
    assert main(["sweep", "create", "s4", "--base", cfg, "--space", space, "--runs-root", runs, "--trials", "4"]) == 0
    assert main(["sweep", "run", "s4", "--trials", "10", "--runs-root", runs, "--quiet"]) == 0  # stops at the total
    capsys.readouterr()
    assert main(["sweep", "status", "s4", "--json", "--runs-root", runs]) == 0
    trials = json.loads(capsys.readouterr().out)["trials"]
    assert [t["trial"] for t in trials] == [0, 1, 2, 3]
    for t in trials:
        assert set(t["params"]) == {"lr", "loss"} and 3e-4 <= t["params"]["lr"] <= 1e-2
        assert t["state"] in ("completed", "pruned") and 0 <= t["best_f1"] <= 1
        run = RunDir(runs, t["run"])
        assert t["run"] == f"s4-t{t['trial']:03d}" and run.read_status()["sweep"] == "s4"
        assert RunConfig.from_dict(run.read_config()).lr == pytest.approx(t["params"]["lr"])
    for t in trials:  # ordinary runs
        capsys.readouterr()
        assert main(["evaluate", t["run"], "--json", "--runs-root", runs]) == 0
        assert "macro_f1" in json.loads(capsys.readouterr().out)
    assert main(["sweep", "list", "--json", "--runs-root", runs]) == 0
    assert [s["name"] for s in json.loads(capsys.readouterr().out)] == ["s4"]
    assert main(["sweep", "best", "s4", "--out", str(tmp_path / "best.json"), "--runs-root", runs]) == 0
    best = max((t for t in trials if t["state"] == "completed"), key=lambda t: t["best_f1"])
    assert RunConfig.load(tmp_path / "best.json").lr == pytest.approx(best["params"]["lr"])
    # the Evaluate page opens a trial's run folder like any run
    at = app_test("pages/evaluate.py", runs_root=runs, eval_run=trials[0]["run"])
    assert not at.exception and not at.error, [e.value for e in at.error]


def test_a_clearly_worse_trial_is_pruned_with_its_checkpoint_loadable(demo_root, tmp_path):
    runs = tmp_path / "runs"
    cfg = base(demo_root, tmp_path, epochs=3, limit_batches=0, lr=3e-3)
    sweeps.create_sweep(runs, "p", cfg, {"lr": {"type": "log_float", "low": 1e-8, "high": 1e-2}}, pruner="median")
    sweeps.enqueue_trial(runs, "p", {"lr": 3e-3})  # learns
    sweeps.enqueue_trial(runs, "p", {"lr": 1e-8})  # cannot learn: clearly worse after one epoch
    sweeps.run_worker(runs, "p", 2, log=lambda m: None)
    table = sweeps.trials_table(runs, "p").set_index("trial")
    assert table.loc[0, "state"] == "completed" and table.loc[0, "epochs_run"] == 3
    assert table.loc[1, "state"] == "pruned" and table.loc[1, "epochs_run"] == 1
    run = RunDir(runs, table.loc[1, "run"])
    assert run.state()["state"] == "pruned" and "pruned after epoch 1" in run.log_tail()
    ckpt = load_checkpoint(run.best_path)
    assert ckpt["epoch"] == 1 and load_checkpoint(run.last_path)["epoch"] == 1


def _two_workers(demo_root, tmp_path, storage: str = ""):
    runs = tmp_path / "runs"
    sweeps.create_sweep(runs, "two", base(demo_root, tmp_path), SPACE, sampler="random", pruner="none",
                        storage=storage, total=4)
    a = sweeps.start_worker(runs, "two", 3)
    b = sweeps.start_worker(runs, "two", 3)
    wait_for(lambda: all(w["state"] not in ("queued", "running") for w in sweeps.list_workers(runs, "two")), 240,
             "both workers to end")
    workers = sweeps.list_workers(runs, "two")
    assert [w["state"] for w in workers] == ["completed", "completed"], [a.log_tail(), b.log_tail()]
    table = sweeps.trials_table(runs, "two")
    assert sorted(table["trial"]) == [0, 1, 2, 3] and set(table["state"]) == {"completed"}
    assert len(set(table["run"])) == 4  # no trial run twice
    ran = sorted(sum((w["trials_run"] for w in workers), []))
    assert ran == [0, 1, 2, 3], ran  # each trial by exactly one worker
    assert all(RunDir(runs, r).state()["state"] == "completed" for r in table["run"])
    # a worker killed mid-trial: that trial fails, the study goes on with the other worker
    sweeps.create_sweep(runs, "two", base(demo_root, tmp_path, epochs=200, limit_batches=0), SPACE,
                        sampler="random", pruner="none", storage=storage, total=6, resume=True)
    doomed = sweeps.start_worker(runs, "two", 1)
    wait_for(lambda: RunDir(runs, "two-t004").read_status().get("epoch", 0) >= 1, 120, "trial 4 to train")
    os.killpg(doomed.read_status()["pgid"], signal.SIGKILL)
    sweeps.create_sweep(runs, "two", base(demo_root, tmp_path), SPACE, sampler="random", pruner="none",
                        storage=storage, total=6, resume=True)
    sweeps.run_worker(runs, "two", 1, log=lambda m: None)
    table = sweeps.trials_table(runs, "two").set_index("trial")
    assert table.loc[4, "state"] == "failed" and "lost" in table.loc[4, "error"]
    assert table.loc[5, "state"] == "completed"
    assert RunDir(runs, "two-t004").state()["state"] == "failed"
    assert load_checkpoint(RunDir(runs, "two-t004").last_path)["epoch"] >= 1  # what it wrote stays loadable


def test_two_workers_share_one_sqlite_study(demo_root, tmp_path):
    _two_workers(demo_root, tmp_path)
    assert (tmp_path / "runs" / "sweeps" / "optuna.db").is_file()


PG_PASSWORD = "s3cret-pw"


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server from Debian's package, run as an unprivileged user when we are root."""
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdb:
        pytest.skip("PostgreSQL is not installed here (Debian: apt-get install postgresql; .ci/run installs it)")
    psycopg = pytest.importorskip("psycopg", reason="psycopg (requirements.txt) is needed to reach PostgreSQL")
    bindir = initdb[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="maskcls-pg-"))
    who = {}
    if os.geteuid() == 0:
        import pwd
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        who = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    (folder / "pw").write_text(PG_PASSWORD)  # the server checks it: a password that does not arrive fails
    subprocess.run([str(bindir / "initdb"), "-D", str(folder / "data"), "-U", "maskcls", "--auth=scram-sha-256",
                    f"--pwfile={folder / 'pw'}", "-E", "UTF8"], check=True, capture_output=True, **who)
    port = free_port()
    server = subprocess.Popen([str(bindir / "postgres"), "-D", str(folder / "data"), "-p", str(port), "-k", str(folder),
                               "-c", "listen_addresses=127.0.0.1"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, **who)
    try:
        end = time.time() + 30
        while True:
            try:
                conn = psycopg.connect(host="127.0.0.1", port=port, user="maskcls", password=PG_PASSWORD,
                                       dbname="postgres", autocommit=True)
                break
            except psycopg.OperationalError:
                if time.time() > end or server.poll() is not None:
                    raise
                time.sleep(0.3)
        conn.execute("CREATE DATABASE sweeps")
        conn.close()
        yield f"postgresql://maskcls:{PG_PASSWORD}@127.0.0.1:{port}/sweeps"
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown
        server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(demo_root, tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv(sweeps.PASSWORD_ENV, PG_PASSWORD)  # as on each machine of a team: the URL is stored without it
    _two_workers(demo_root, tmp_path, storage=postgres_url)
    assert not (tmp_path / "runs" / "sweeps" / "optuna.db").exists()  # the study lives in the server
    assert PG_PASSWORD not in (tmp_path / "runs" / "sweeps" / "two" / "sweep.json").read_text()


def test_a_storage_password_is_never_stored_nor_on_a_command_line(demo_root, tmp_path, postgres_url, monkeypatch):
    monkeypatch.delenv(sweeps.PASSWORD_ENV, raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    runs = tmp_path / "runs"
    sweeps.create_sweep(runs, "pw", base(demo_root, tmp_path, epochs=1), SPACE, sampler="random", pruner="none",
                        storage=postgres_url, total=1)
    stored = sweeps.load_sweep(runs, "pw").storage
    assert PG_PASSWORD not in (runs / "sweeps" / "pw" / "sweep.json").read_text() and "maskcls@127.0.0.1" in stored
    with pytest.raises(sweeps.SweepError, match="cannot open the sweep storage") as refused:
        sweeps.trials_table(runs, "pw")  # the stored URL alone does not get in
    assert PG_PASSWORD not in str(refused.value)
    worker = sweeps.start_worker(runs, "pw", 1, storage=postgres_url)
    argv = Path(f"/proc/{worker.read_status()['pid']}/cmdline").read_bytes().decode()
    assert PG_PASSWORD not in argv and stored in argv  # what `ps` shows
    wait_for(lambda: worker.read_status()["state"] not in ("queued", "running"), 240, "the worker")
    assert worker.read_status()["state"] == "completed", worker.log_tail()  # the password reached it by environment
    monkeypatch.setenv(sweeps.PASSWORD_ENV, PG_PASSWORD)
    assert sweeps.trials_table(runs, "pw")["state"].tolist() == ["completed"]


def test_storage_urls_are_split_completed_and_shown_without_their_password(monkeypatch):
    url = "postgresql+psycopg://team:p%40ss@db:5432/sweeps?sslmode=require"
    assert sweeps.split_password(url) == ("postgresql+psycopg://team@db:5432/sweeps?sslmode=require", "p@ss")
    assert sweeps.shown_url(url) == "postgresql+psycopg://team:***@db:5432/sweeps?sslmode=require"
    for plain in ("sqlite:////runs/sweeps/optuna.db", "postgresql://team@db/sweeps", "not a url"):
        assert sweeps.split_password(plain) == (plain, None) and sweeps.shown_url(plain) == plain
    monkeypatch.setenv(sweeps.PASSWORD_ENV, "p@ss")
    assert sweeps.with_password("postgresql://team@db/sweeps") == "postgresql://team:p%40ss@db/sweeps"
    assert sweeps.with_password("postgresql://team:own@db/sweeps") == "postgresql://team:own@db/sweeps"
    assert sweeps.with_password("sqlite:////runs/optuna.db") == "sqlite:////runs/optuna.db"  # no user: untouched


@pytest.mark.parametrize("space, message", [
    ({"lrr": {"type": "float", "low": 0.1, "high": 0.2}}, "unknown key 'lrr' in the search space; did you mean lr"),
    ({"loss": {"type": "float", "low": 0.1, "high": 0.2}}, "'loss' holds text: a float range does not fit it"),
    ({"epochs": {"type": "float", "low": 1, "high": 3}}, "'epochs' holds whole numbers: a float range does not fit"),
    ({"lr": {"type": "categorical", "choices": ["fast"]}}, "'lr' holds numbers; choice 'fast' is not one"),
    ({"loss": {"type": "categorical", "choices": ["ce", "nope"]}}, "choice 'nope' is not a valid value"),
    ({"lr": {"type": "log_float", "low": 0, "high": 0.1}}, "needs low > 0"),
    ({"lr": {"type": "float", "low": 0.2, "high": 0.1}}, "low must be below high"),
    ({"image_size": {"type": "categorical", "choices": [1]}}, "'image_size' cannot be swept"),
    ({"device": {"type": "categorical", "choices": ["cpu"]}}, "'device' cannot be swept"),
    ({}, "the search space is empty"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_spaces_are_refused_by_name(demo_root, tmp_path, capsys, space, message):
    runs = str(tmp_path / "runs")
    assert main(["sweep", "create", "bad", "--data", str(demo_root), "--space", write(tmp_path / "s.json", space),
                 "--runs-root", runs]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "sweeps" / "bad").exists()


def test_an_existing_sweep_name_is_refused_unless_resume(demo_root, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    args = ["sweep", "create", "same", "--data", str(demo_root), "--space", write(tmp_path / "s.json", SPACE),
            "--runs-root", runs]
    assert main(args) == 0
    assert main(args) == 2
    assert "a sweep named 'same' already exists" in capsys.readouterr().err
    assert main(args + ["--resume", "--sampler", "random"]) == 0
    assert sweeps.load_sweep(runs, "same").sampler == "random"
    for bad, msg in ((["sweep", "run", "nope", "--runs-root", runs], "no sweep named 'nope'"),
                     (["sweep", "run", "same", "--trials", "0", "--runs-root", runs], "--trials must be at least 1"),
                     (["sweep", "create", "../up", "--space", str(tmp_path / "s.json"), "--runs-root", runs],
                      "invalid sweep name"),
                     (["sweep", "status", "same", "--storage", "nosuch://x", "--runs-root", runs],
                      "cannot open the sweep storage")):
        assert main(bad) == 2, bad
        assert msg in capsys.readouterr().err


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


def test_the_sweeps_page_shows_trials_figures_and_hands_the_best_to_train(demo_root, tmp_path):
    runs = tmp_path / "runs"
    sweeps.create_sweep(runs, "page", base(demo_root, tmp_path, epochs=2), SPACE, sampler="random")
    sweeps.run_worker(runs, "page", 3, log=lambda m: None)
    at = app_test("pages/sweeps.py", runs_root=str(runs), data_root=str(demo_root))
    assert not at.exception and not at.error, [e.value for e in at.error]
    trials = next(d for d in at.dataframe if "trial" in d.value.columns).value
    assert len(trials) == 3 and {"lr", "loss", "best_f1", "state", "run"} <= set(trials.columns)
    charts = at.get("plotly_chart")
    assert len(charts) >= 3
    texts = " ".join(m.value for m in at.markdown)
    assert "Best so far" in texts and "Parallel coordinates" in texts
    number, best = sweeps.best_trial_config(runs, "page")
    at.button(key="sweep_use_best").click().run()
    assert not at.exception
    assert at.session_state["train_prefill"]["lr"] == pytest.approx(best.lr)
    assert at.number_input(key="train_lr").value == pytest.approx(best.lr)  # the Train form holds it
    assert any(f"trial {number}" in i.value for i in at.info)


def test_a_sweep_is_created_from_the_train_forms_values_on_the_page(demo_root, tmp_path):
    runs = tmp_path / "runs"
    at = app_test("pages/train.py", runs_root=str(runs), data_root=str(demo_root))
    at.number_input(key="train_lr").set_value(0.0042)
    _button(at, "Use as sweep base").click().run()
    assert not at.exception
    assert at.session_state["sweep_base"]["lr"] == pytest.approx(0.0042)
    assert "the Train form's values" in " ".join(c.value for c in at.caption)
    at.switch_page(str(REPO / "pages" / "sweeps.py"))  # AppTest stays on its own page unless told
    at.run()
    at.text_input(key="sweep_name").input("fromui")
    at.text_area(key="sweep_space").input('{"lrr": {"type": "float", "low": 0.1, "high": 0.2}}')
    _button(at, "Create sweep").click().run()
    assert "Not created: unknown key 'lrr'" in " ".join(e.value for e in at.error)
    at.text_area(key="sweep_space").input("{not json")
    _button(at, "Create sweep").click().run()
    assert "not valid JSON" in " ".join(e.value for e in at.error)
    at.text_area(key="sweep_space").input(json.dumps(SPACE))
    _button(at, "Create sweep").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    made = sweeps.load_sweep(runs, "fromui")
    assert made.base["lr"] == pytest.approx(0.0042) and made.base["data_root"] == str(demo_root)
    assert at.selectbox(key="sweep_pick").value == "fromui"


def test_a_grid_sweep_walks_each_combination_once(demo_root, tmp_path):
    runs = tmp_path / "runs"
    made = sweeps.create_sweep(runs, "g", base(demo_root, tmp_path), {
        "loss": {"type": "categorical", "choices": ["ce", "focal"]},
        "batch_size": {"type": "int", "low": 8, "high": 16, "step": 8}}, sampler="grid", pruner="none")
    assert made.total == 4
    sweeps.run_worker(runs, "g", 10, log=lambda m: None)  # stops when the grid is walked
    table = sweeps.trials_table(runs, "g")
    assert sorted((p["loss"], p["batch_size"]) for p in table["params"]) == [
        ("ce", 8), ("ce", 16), ("focal", 8), ("focal", 16)]
    with pytest.raises(ValueError, match="a grid needs its values"):
        sweeps.create_sweep(runs, "g2", base(demo_root, tmp_path), {"lr": {"type": "float", "low": 0.1, "high": 0.2}},
                            sampler="grid")


def test_a_damaged_sweep_file_is_named_not_dumped(demo_root, tmp_path, capsys):
    runs = tmp_path / "runs"
    sweeps.create_sweep(runs, "d", base(demo_root, tmp_path), SPACE)
    (runs / "sweeps" / "d" / "sweep.json").write_text('{"name": "d", "surprise": 1}')
    assert main(["sweep", "status", "d", "--runs-root", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "sweep 'd':" in err and "is damaged" in err and "Traceback" not in err
    at = app_test("pages/sweeps.py", runs_root=str(runs), data_root=str(demo_root))
    assert not at.exception
