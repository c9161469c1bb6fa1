"""Team mode against real servers: a PostgreSQL database behind a real `mlflow server` (started by `maskcls team
serve`'s own code, with MLflow's basic-auth app), two runs roots as two members' servers, and a claims database
through which two ladder workers with no shared folder split one ladder."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import PG_PASSWORD, REPO, TEAM_PW, copy_run, run_cli, team_store, tiny, wait_until
from maskcls.common.runfolder import RunFolder

pytestmark = pytest.mark.slow
ADMIN_PW = TEAM_PW


@pytest.fixture(scope="module")
def team(tmp_path_factory, demo_root, tiny_run):
    """(store, root A of member alice, root B of member bob, claims URL). A holds `done` (the shared tiny run);
    B holds `mine`, another seed of the same config on the same split."""
    base = tmp_path_factory.mktemp("team")
    with team_store(base, "claims") as (store, (host, port, user)):
        a, b = base / "A", base / "B"
        copy_run(tiny_run, base)
        shutil.move(str(base / "runs"), a)
        from maskcls.train.driver import train_run
        train_run(tiny(demo_root, base, epochs=2, seed=1), b, "mine")
        yield store, a, b, f"postgresql://{user}@{host}:{port}/claims"


def cli(capsys, *args):
    return run_cli(capsys, *args)


def test_push_list_pull_compare_and_ensemble_a_teammates_run(team, demo_root, capsys, tmp_path):
    store, a, b, _ = team
    code, out, err = cli(capsys, "team", "push", "done", "--member", "alice", "--runs-root", a, "--json")
    assert code == 0 and json.loads(out)[0]["sent"], err
    code, out, _ = cli(capsys, "team", "push", "done", "--member", "alice", "--runs-root", a)
    assert code == 0 and "unchanged, not sent" in out
    code, out, err = cli(capsys, "team", "list", "--runs-root", b, "--json")
    row = next(r for r in json.loads(out) if r["ref"] == "alice/done")
    local = RunFolder(a, "done")
    assert row["complete"] and row["pulled"] == "no" and row["state"] == "completed"
    assert row["macro_f1"] == pytest.approx(local.read_status()["best_f1"])
    assert [row["f1_low"], row["f1_high"]] == pytest.approx(local.read_intervals()["macro_f1_ci"])
    code, out, err = cli(capsys, "team", "pull", "alice/done", "--runs-root", b)
    assert code == 0, err
    pulled = RunFolder.open(b, "alice/done")
    assert pulled.path == (b / "team" / "alice" / "done").resolve() and pulled.pulled()["member"] == "alice"
    assert (pulled.best_path.read_bytes() == local.best_path.read_bytes())
    code, out, _ = cli(capsys, "team", "list", "--runs-root", b)
    assert "alice/done" in out and "pulled: yes" in out
    code, out, err = cli(capsys, "compare", "mine", "alice/done", "--runs-root", b, "--json")
    c = json.loads(out)
    assert code == 0 and c["paired"] and c["b_is"] == "run alice/done (pulled from alice's server)", err
    code, out, err = cli(capsys, "evaluate", "alice/done", "--runs-root", b)
    assert code == 0 and "macro F1" in out, err
    # an ensemble of one local and one pulled member writes what the same two members write where both are local
    shutil.copytree(b / "mine", tmp_path / "both" / "mine")
    shutil.copytree(a / "done", tmp_path / "both" / "done", ignore=shutil.ignore_patterns(".*.lock"))
    for runs, members, out_csv in ((b, ["mine", "alice/done"], tmp_path / "team.csv"),
                                   (tmp_path / "both", ["mine", "done"], tmp_path / "local.csv")):
        code, _, err = cli(capsys, "predict", "--data", demo_root, "--members", *members, "--method", "soft", "--tta",
                           "flip", "--out", out_csv, "--runs-root", runs, "--quiet")
        assert code == 0, err
    assert (tmp_path / "team.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert (tmp_path / "team.probs.csv").read_bytes() == (tmp_path / "local.probs.csv").read_bytes()


def test_a_pulled_run_is_read_only(team, capsys):
    from maskcls.orchestration.compare import delete_run
    _, a, b, _ = team
    if not RunFolder.open(b, "alice/done").exists():
        assert cli(capsys, "team", "push", "done", "--member", "alice", "--runs-root", a)[0] == 0
        assert cli(capsys, "team", "pull", "alice/done", "--runs-root", b)[0] == 0
    code, _, err = cli(capsys, "train", "--resume", "alice/done", "--runs-root", b)
    assert code == 2 and "it is a teammate's run pulled from the team store (read-only here)" in err
    with pytest.raises(ValueError, match="cannot delete alice/done"):
        delete_run(b, "alice/done")
    code, _, err = cli(capsys, "team", "push", "alice/done", "--runs-root", b)
    assert code == 2 and "only its owner pushes it" in err


def test_other_data_is_refused_by_compare(team, demo_root, capsys, tmp_path):
    """A corrections file swaps one person's incorrect-mask and no-mask labels: the data fingerprints differ, so
    compare refuses."""
    from maskcls.train.driver import train_run
    _, a, b, _ = team
    people = sorted(pd.read_csv(RunFolder(b, "mine").predictions_path, dtype={"person_id": str})["person_id"])
    fix = tmp_path / "fix.csv"
    fix.write_text(f"id,gender,age,swap_mask,note\n{people[0]},,,1,relabelled\n")
    train_run(tiny(demo_root, tmp_path, corrections=str(fix)), a, "fixed")
    trained_with = fix.read_text()
    with fix.open("a") as f:  # a correction accepted after the run trained: not what the run learned from
        f.write(f"{people[1]},,,1,later\n")
    assert cli(capsys, "team", "push", "fixed", "--member", "alice", "--runs-root", a)[0] == 0
    code, _, err = cli(capsys, "team", "pull", "alice/fixed", "--runs-root", b)
    assert code == 0, err
    assert (b / "team" / "alice" / "fixed" / "corrections.csv").read_text() == trained_with
    code, _, err = cli(capsys, "compare", "mine", "alice/fixed", "--runs-root", b)
    assert code == 2 and "they were trained on different data" in err and "alice/fixed (pulled from alice" in err


def test_pushing_again_updates_the_same_record(team, capsys):
    from maskcls.orchestration.team.store import TeamStore
    store, a, _, _ = team
    assert cli(capsys, "team", "push", "done", "--member", "alice", "--runs-root", a)[0] == 0
    before = TeamStore.connect().find("alice", "done")
    RunFolder(a, "done").write_status(note="re-checked")
    code, out, _ = cli(capsys, "team", "push", "done", "--member", "alice", "--runs-root", a)
    after = TeamStore.connect().find("alice", "done")
    assert code == 0 and "sent" in out and after.info.run_id == before.info.run_id
    assert after.data.tags["maskcls.complete"] != before.data.tags["maskcls.complete"]
    assert len([r for r in TeamStore.connect().records() if r.data.tags["maskcls.run"] == "done"
                and r.data.tags["maskcls.member"] == "alice"]) == 1


def test_no_credential_is_written_anywhere(team):
    store, a, b, _ = team
    for root in (a, b, store.folder):
        for f in Path(root).rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                assert PG_PASSWORD.encode() not in data and ADMIN_PW.encode() not in data, f


def test_a_wrong_password_and_a_server_that_never_answers(team, capsys, monkeypatch):
    _, _, b, _ = team
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-it")
    code, _, err = cli(capsys, "team", "list", "--runs-root", b)
    assert code == 2 and "refused our credentials" in err and "not-it" not in err
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with socket.socket() as silent:  # accepts the connection into its backlog, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        t0 = time.time()
        code, _, err = cli(capsys, "team", "list", "--team", f"http://127.0.0.1:{port}", "--runs-root", b)
    assert code == 2 and f"127.0.0.1:{port}" in err and "did not answer" in err
    assert time.time() - t0 < 30
    code, _, err = cli(capsys, "team", "list", "--team", f"http://bob:{PG_PASSWORD}@127.0.0.1:{port}")
    assert code == 2 and "carries a password" in err and PG_PASSWORD not in err


def big_run(a, name):
    """A completed run whose best.pt is large enough (resnet50) that a push or pull takes a moment."""
    from conftest import make_member
    make_member(a, name, "resnet50", (64, 48))
    run = RunFolder(a, name)
    src = RunFolder(a, "done")
    shutil.copy(src.predictions_path, run.predictions_path)
    cfg = json.loads(run.config_path.read_text())
    cfg["data_root"] = json.loads(src.config_path.read_text())["data_root"]
    run.config_path.write_text(json.dumps(cfg))
    return run


def kill_when(store, present, proc, what: str):
    wait_until(lambda: present() or proc.poll() is not None, 120, what, poll=0.01)
    store.kill()
    return proc.wait(60)


def test_the_server_killed_mid_push_and_mid_pull(team, tmp_path):
    """Nothing half-written is ever used: a push cut off leaves no complete version (a pull says so), its retry
    completes; a pull cut off leaves no run folder, only its partial download, and its retry completes."""
    store, a, b, _ = team
    big_run(a, "big")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    push = [sys.executable, "-m", "maskcls", "team", "push", "big", "--member", "alice", "--runs-root", str(a)]
    uploads = store.folder / "artifacts"
    earlier = set(uploads.rglob("*"))  # other tests' pushes
    proc = subprocess.Popen(push, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rc = kill_when(store, lambda: any(p.is_file() and p not in earlier for p in uploads.rglob("v/*/*")), proc,
                   "the push's first upload")
    assert rc == 2 and "could not push 'big' on the team store at 127.0.0.1" in proc.stderr.read()
    store.start()
    from maskcls.orchestration.team.store import TeamStore
    record = TeamStore.connect().find("alice", "big")
    assert record is None or not record.data.tags.get("maskcls.complete")
    assert subprocess.run(push, env=env, capture_output=True, text=True).returncode == 0
    pull = [sys.executable, "-m", "maskcls", "team", "pull", "alice/big", "--runs-root", str(b)]
    proc = subprocess.Popen(pull, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    team_dir = b / "team" / "alice"
    rc = kill_when(store, lambda: any(p.is_file() for p in team_dir.glob(".big.partial-*/**/*")), proc,
                   "the pull's download")
    assert rc == 2 and not (team_dir / "big").exists() and list(team_dir.glob(".big.partial-*"))
    store.start()
    done = subprocess.run(pull, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert RunFolder.open(b, "alice/big").best_path.read_bytes() == RunFolder(a, "big").best_path.read_bytes()
    assert not list(team_dir.glob(".big.partial-*"))


def test_a_checkpoint_of_an_architecture_this_version_cannot_build_is_refused(team, capsys):
    _, a, b, _ = team
    shutil.copytree(a / "done", a / "alien", ignore=shutil.ignore_patterns(".*.lock", ".team.json"))
    cfg = json.loads((a / "alien" / "config.json").read_text())
    cfg["model"] = "resnet_from_the_future_v9"
    (a / "alien" / "config.json").write_text(json.dumps(cfg))
    assert cli(capsys, "team", "push", "alien", "--member", "alice", "--runs-root", a)[0] == 0
    code, _, err = cli(capsys, "team", "pull", "alice/alien", "--runs-root", b)
    assert code == 2 and "'resnet_from_the_future_v9' model, an architecture this version of maskcls" in err
    assert not (b / "team" / "alice" / "alien").exists() and not list((b / "team" / "alice").glob(".alien.partial*"))


def test_two_ladder_workers_on_two_servers_split_one_ladder(team, demo_root, capsys, tmp_path):
    """No shared folder: the workers claim runs in one database; none is trained twice; either side's status reads
    all six runs."""
    _, _, _, claims = team
    one, two = tmp_path / "one", tmp_path / "two"
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps({"steps": [{"name": "smoothing", "set": {"loss": "smooth"}},
                                           {"name": "sampler", "set": {"sampler": "class"}}]}))
    code, out, err = cli(capsys, "ablate", "create", "split", "--base", str(_config(demo_root, tmp_path)),
                         "--steps", steps, "--seeds", "2", "--claims", claims, "--runs-root", one, "--json")
    assert code == 0 and len(json.loads(out)["runs"]) == 6, err
    assert PG_PASSWORD not in (one / "ladders" / "split" / "ladder.json").read_text()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [subprocess.Popen([sys.executable, "-m", "maskcls", "ablate", "run", "split", "--claims", claims,
                                 "--quiet", "--runs-root", str(root)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for root in (one, two)]
    outs = [w.communicate(timeout=900) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs
    trained = [{p.name for p in root.iterdir() if p.name.startswith("split-r")} for root in (one, two)]
    assert not trained[0] & trained[1] and len(trained[0] | trained[1]) == 6 and all(trained), trained
    for root in (one, two):
        code, out, err = cli(capsys, "ablate", "status", "split", "--claims", claims, "--runs-root", root, "--json")
        s = json.loads(out)
        assert code == 0 and s["complete"], err
        assert sorted(n for r in s["rungs"] for n in r["runs"]) == sorted(trained[0] | trained[1])
        assert all(st == "completed" for r in s["rungs"] for st in r["runs"].values())
        assert all("gain" in step for step in s["steps"])


def _config(demo_root, tmp_path):
    path = tmp_path / "base.json"
    path.write_text(tiny(demo_root, tmp_path).to_json())
    return path


# -- issue 43: a teammate's run is input ---------------------------------------------------------------------------
def test_a_pulled_runs_forged_figures_are_recomputed_and_named(team, capsys, tmp_path):
    """alice's record says F1 0.99 [0.98, 1.00] in status, intervals and metrics (predictions and checkpoint as
    trained): bob's pull recomputes every figure from the predictions, names each claim that disagrees, and his
    runs list, sort and report show only the recomputed figure."""
    from maskcls.infer.evaluation import report
    _, a, b, _ = team
    shutil.copytree(a / "done", a / "forged", ignore=shutil.ignore_patterns(".*.lock", ".team.json"))
    run = RunFolder(a, "forged")
    honest = report(run.read_predictions())["macro_f1"]
    run.write_status(best_f1=0.99)
    (run.path / "intervals.json").write_text(json.dumps({**run.read_intervals(), "macro_f1": 0.99,
                                                         "macro_f1_ci": [0.98, 1.0]}))
    run.metrics_path.write_text("".join(json.dumps({**r, "val_macro_f1": 0.99}) + "\n" for r in run.read_metrics()))
    assert cli(capsys, "team", "push", "forged", "--member", "alice", "--runs-root", a)[0] == 0
    code, out, err = cli(capsys, "team", "pull", "alice/forged", "--runs-root", b)
    assert code == 0, err
    assert f"macro F1 recomputed from its predictions: {honest:.4f}" in out
    assert "warning: alice/forged: status.json claims best F1 0.99" in out and "the store's record claims" in out
    code, out, _ = cli(capsys, "runs", "list", "--sort", "f1", "--json", "--runs-root", b)
    row = next(r for r in json.loads(out) if r["name"] == "alice/forged")
    assert row["best macro F1"] == pytest.approx(honest, abs=1e-6) and row["F1 high"] < 0.98
    code, _, err = cli(capsys, "report", "--out", tmp_path / "r.html", "--runs-root", b)
    assert code == 0 and "0.9900" not in (tmp_path / "r.html").read_text(), err


def test_four_pulls_of_one_run_at_once_all_succeed(team):
    store, a, b, _ = team
    assert subprocess.run([sys.executable, "-m", "maskcls", "team", "push", "done", "--member", "alice",
                           "--runs-root", str(a)], env={**os.environ, "PYTHONPATH": str(REPO)}).returncode == 0
    root = b.parent / "four"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "maskcls", "team", "pull", "alice/done", "--runs-root",
                               str(root)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    assert RunFolder.open(root, "alice/done").pulled()["verified"]["macro_f1"] is not None
    assert not list((root / "team" / "alice").glob(".done.partial-*"))


def test_three_first_pushes_of_one_run_at_once_make_one_record(team):
    from maskcls.orchestration.team.store import TeamStore
    _, a, _, _ = team
    shutil.copytree(a / "done", a / "thrice", ignore=shutil.ignore_patterns(".*.lock", ".team.json"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "maskcls", "team", "push", "thrice", "--member", "alice",
                               "--runs-root", str(a)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    records = [r for r in TeamStore.connect().records() if r.data.tags.get("maskcls.run") == "thrice"]
    assert len(records) == 1 and records[0].data.tags.get("maskcls.complete")


def test_odd_store_records_are_skipped_and_named_not_fatal(team, capsys):
    from maskcls.orchestration.team.store import TeamStore
    _, a, b, _ = team
    assert cli(capsys, "team", "push", "done", "--member", "alice", "--runs-root", a)[0] == 0
    store = TeamStore.connect()
    for member, run, f1 in (("../../etc", "odd", "0.5"), ("alice", "odd1", "not-a-number"), ("alice", "odd2", "7.5")):
        store.client.create_run(store.own_experiment("alice"), tags={"maskcls.kind": "run", "maskcls.member": member,
                                                                     "maskcls.run": run, "maskcls.best_f1": f1})
    code, out, err = cli(capsys, "team", "list", "--runs-root", b)
    assert code == 0 and "alice/done" in out, err
    assert out.count("skipped record") == 3 and "'../../etc'" in out and "not a number" in out and "0 to 1" in out
    assert not (b / "etc").exists() and not (b.parent / "etc").exists()


def test_a_push_of_several_says_what_went_and_a_repull_repairs_a_damaged_copy(team, capsys):
    """The first outside round: #8 `team push good bad` printed only bad's error though good was sent; #28 a
    pulled run whose best.pt was deleted was "pulled" again with nothing repaired; #27 a file in the pulled run's
    place was moved to a hidden name without a word."""
    _, a, b, _ = team
    shutil.copytree(a / "done", a / "bad", ignore=shutil.ignore_patterns(".*.lock", ".team.json"))
    table = pd.read_csv(a / "bad" / "val_predictions.csv")
    table.loc[0, "p0"] = float("nan")
    table.to_csv(a / "bad" / "val_predictions.csv", index=False)
    (a / "bad" / "best.pt").unlink()
    code, out, err = cli(capsys, "team", "push", "done", "bad", "--member", "alice", "--runs-root", a)
    assert code == 2 and "alice/done:" in out and "bad: not sent" in err and "1 of 2 not sent" in err
    assert cli(capsys, "team", "pull", "alice/done", "--runs-root", b)[0] == 0
    pulled = RunFolder.open(b, "alice/done")
    pulled.best_path.unlink()
    code, _, err = cli(capsys, "team", "pull", "alice/done", "--runs-root", b)
    assert code == 0 and RunFolder.open(b, "alice/done").best_path.is_file(), err
    (b / "team" / "alice" / "stray").write_text("not a run")
    assert cli(capsys, "team", "push", "done", "--member", "alice", "--runs-root", a)[0] == 0
    shutil.copytree(a / "done", a / "stray", ignore=shutil.ignore_patterns(".*.lock", ".team.json"))
    assert cli(capsys, "team", "push", "stray", "--member", "alice", "--runs-root", a)[0] == 0
    code, _, err = cli(capsys, "team", "pull", "alice/stray", "--runs-root", b)
    assert code == 2 and "is a file, not a pulled run" in err
    assert (b / "team" / "alice" / "stray").read_text() == "not a run"
