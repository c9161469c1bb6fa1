"""Team mode, round two (issue 45), against real servers: a PostgreSQL database behind a real `mlflow server` with
MLflow's basic-auth app (started by `maskcls team serve`'s own code), members with accounts made by
`team add-member`, and a claims database through which workers on runs roots with no shared folder split repeat
and fold groups.

Who refused what is said in each test: the CLI's identity layer (a store with accounts takes the member from the
login) or the store's permission layer (MLflow's own: each member's experiment is writable by them alone)."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO, TEAM_ADMIN, TEAM_PW, app_test, config_file, copy_run, run_cli, team_store, wait_until
from maskcls.common.runfolder import RunFolder

pytestmark = pytest.mark.slow
MEMBERS = {TEAM_ADMIN: TEAM_PW, "bob": "bob-pw-91kq-xx", "carol": "carol-pw-2mX-xx", "dave": "dave-pw-7Yt-xxx", "erin": "erin-pw-5Lp-xxx"}


@pytest.fixture(scope="module")
def team2(tmp_path_factory, tiny_run):
    """(store, alice's runs root holding `done`, claims URL, base folder); bob, carol, dave and erin have
    accounts, made by alice (the store's admin) with `team add-member`."""
    base = tmp_path_factory.mktemp("team2")
    with team_store(base, "claims") as (store, (host, port, user)):
        from maskcls.cli import main
        for name in MEMBERS:
            if name != TEAM_ADMIN:
                os.environ["MASKCLS_NEW_MEMBER_PASSWORD"] = MEMBERS[name]
                assert main(["team", "add-member", name]) == 0
        os.environ.pop("MASKCLS_NEW_MEMBER_PASSWORD")
        copy_run(tiny_run, base / "alice")
        yield store, base / "alice" / "runs", f"postgresql://{user}@{host}:{port}/claims", base


def login(monkeypatch, name: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", name)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MEMBERS[name])


def env_of(name: str, **more) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_USERNAME": name,
            "MLFLOW_TRACKING_PASSWORD": MEMBERS[name], **more}


def cli(capsys, *args):
    return run_cli(capsys, *args)


def test_the_stores_own_files_are_its_owners_alone(team2):
    store, _, _, base = team2
    state = store.folder / "artifacts-server"
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert oct((state / "auth.db").stat().st_mode & 0o777) == "0o600"
    assert oct((state / "store.log").stat().st_mode & 0o777) == "0o600"
    assert not (store.folder / "auth.db").exists() and not (store.folder / "store.log").exists()


def test_bob_cannot_overwrite_delete_or_push_as_alice(team2, capsys, monkeypatch, tmp_path):
    from maskcls.orchestration.team.push import push_run, remove_record
    from maskcls.orchestration.team.store import TeamError, TeamStore
    store, a, _, _ = team2
    assert cli(capsys, "team", "push", "done", "--runs-root", a)[0] == 0  # alice, the admin: as who she logged in
    before = TeamStore.connect().find("alice", "done")
    login(monkeypatch, "bob")
    shutil.copytree(a / "done", tmp_path / "runs" / "done", ignore=shutil.ignore_patterns(".*.lock", ".team.json"))
    bobs = tmp_path / "runs"
    RunFolder(bobs, "done").write_status(note="bob's copy")  # other content: a push would send it
    # the CLI's identity layer: bob is who he logged in as
    code, _, err = cli(capsys, "team", "push", "done", "--member", "alice", "--runs-root", bobs)
    assert code == 2 and "you are 'bob' on it, so you push as 'bob', never as 'alice'" in err, err
    code, _, err = cli(capsys, "team", "rm", "alice/done")
    assert code == 2 and "you remove only your own records, not 'alice''s" in err, err
    # the store's permission layer: the library called directly, with no check of ours in the way
    bob = TeamStore.connect()
    with pytest.raises(TeamError, match="it refused: you may read every member's records but write only your own"):
        push_run(bob, RunFolder(bobs, "done"), "alice")  # into alice's record: refused by the server (403)
    with pytest.raises(TeamError, match="it refused"):
        remove_record(bob, "alice", "done")
    with pytest.raises(Exception, match="PERMISSION_DENIED|403|Permission denied"):
        bob.client.set_tag(before.info.run_id, "maskcls.complete", "forged")
    with pytest.raises(Exception, match="PERMISSION_DENIED|403|Permission denied"):
        bob.client.create_run(bob.own_experiment("alice"), tags={"maskcls.kind": "run", "maskcls.member": "alice",
                                                                 "maskcls.run": "planted"})
    # in his own experiment bob writes what he likes, and a record there saying it is alice's is not hers
    assert cli(capsys, "team", "push", "done", "--runs-root", bobs)[0] == 0
    bob.client.create_run(bob.own_experiment("bob"), tags={"maskcls.kind": "run", "maskcls.member": "alice",
                                                           "maskcls.run": "fake", "maskcls.best_f1": "0.99"})
    code, out, _ = cli(capsys, "team", "list", "--runs-root", bobs)
    assert "bob/done" in out and "alice/done" in out and "alice/fake" not in out
    assert "lies in 'bob''s experiment (only 'bob' writes there)" in out
    after = TeamStore.connect().find("alice", "done")
    assert after.data.tags == before.data.tags  # nothing of alice's changed
    code, _, err = cli(capsys, "team", "pull", "alice/done", "--runs-root", bobs)  # and everyone reads everything
    assert code == 0, err


def test_a_squatted_experiment_is_renamed_away_when_its_member_is_added(team2, capsys, monkeypatch):
    """bob makes maskcls-team/frank before frank has an account (as if to write as frank later): add-member
    renames it away and frank's own experiment is his alone."""
    from maskcls.orchestration.team.store import PREFIX, TeamStore
    login(monkeypatch, "bob")
    squatted = TeamStore.connect().client.create_experiment(PREFIX + "frank")
    login(monkeypatch, "alice")
    monkeypatch.setenv("MASKCLS_NEW_MEMBER_PASSWORD", "frank-pw-3Rr-xxx")
    code, out, err = cli(capsys, "team", "add-member", "frank", "--json")
    done = json.loads(out)
    assert code == 0 and done["renamed_away"] == f"maskcls-unclaimed/frank-{squatted}" and \
        done["experiment_id"] != squatted, err
    login(monkeypatch, "bob")
    with pytest.raises(Exception, match="PERMISSION_DENIED|403|Permission denied"):
        TeamStore.connect().client.create_run(done["experiment_id"])
    # outside round 2026-12-07, #5: bob (no admin) adding a member was told only "write only your own"
    monkeypatch.setenv("MASKCLS_NEW_MEMBER_PASSWORD", "gina-pw-3Rr-xxx")
    code, _, err = cli(capsys, "team", "add-member", "gina")
    assert code == 2 and "only the team store's admin adds members, and you are 'bob' on it" in err, err
    # #3: adding frank again was MLflow's RESOURCE_ALREADY_EXISTS; now said, nothing changed
    login(monkeypatch, "alice")
    code, out, err = cli(capsys, "team", "add-member", "frank")
    assert code == 0 and "frank is already a member" in out and "RESOURCE_ALREADY_EXISTS" not in out + err, err


def train_cmd(root, cfg, *group, claims):
    return [sys.executable, "-m", "maskcls", "train", "--config", cfg, *group, "--claims", claims, "--quiet",
            "--runs-root", str(root)]


def two_workers(cmds, env):
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    return outs


def trained_in(root, prefix: str) -> set[str]:
    return {p.name for p in root.iterdir() if p.name.startswith(prefix) and (p / "best.pt").is_file()}


def test_a_repeat_group_and_a_fold_group_split_over_two_workers_and_travel_as_groups(team2, capsys, demo_root,
                                                                                     tmp_path, monkeypatch):
    """Two runs roots (two servers, no shared folder), one claims database: each of 3 seeds and 3 folds trains
    once; either side lists the whole group; the folds' out-of-fold table is on both; alice pushes each side's
    part, bob pulls alice/rep and alice/fol whole and compares and ensembles them."""
    _, a, claims, _ = team2
    one, two = tmp_path / "one", tmp_path / "two"
    cfg = config_file(demo_root, tmp_path, epochs=1)
    env = env_of("alice")
    two_workers([train_cmd(r, cfg, "--seeds", "3", "--name", "rep", claims=claims) for r in (one, two)], env)
    two_workers([train_cmd(r, cfg, "--folds", "3", "--name", "fol", claims=claims) for r in (one, two)], env)
    for prefix, n in (("rep-s", 3), ("fol-fold", 3)):
        here, there = trained_in(one, prefix), trained_in(two, prefix)
        assert not here & there and len(here | there) == n, (here, there)  # none trained twice, none left out
    for root in (one, two):
        code, out, err = cli(capsys, "group", "rep", "--claims", claims, "--runs-root", root, "--json")
        assert code == 0 and [(r["run"], r["state"]) for r in json.loads(out)] == \
            [(f"rep-s{k}", "completed") for k in (1, 2, 3)], err
        oof = pd.read_csv(root / "fol-oof.csv", dtype={"person_id": str})
        assert sorted(oof["fold"].unique()) == [0, 1, 2] and oof["path"].is_unique
    for root in (one, two):  # alice's two servers each send their part; the group record gathers them
        code, out, err = cli(capsys, "team", "push", "rep", "fol", "--runs-root", root)
        assert code == 0, err
    login(monkeypatch, "bob")
    b = tmp_path / "bob"
    copy_run((a, "done"), tmp_path / "bobsrc")
    shutil.move(str(tmp_path / "bobsrc" / "runs"), b)
    code, out, err = cli(capsys, "team", "pull", "alice/rep", "alice/fol", "--runs-root", b, "--json")
    assert code == 0, err
    assert sorted(r["ref"] for r in json.loads(out)) == sorted(
        [f"alice/rep-s{k}" for k in (1, 2, 3)] + [f"alice/fol-fold{k}" for k in (1, 2, 3)])
    pulled_oof = pd.read_csv(b / "team" / "alice" / "fol-oof.csv", dtype={"person_id": str})
    assert len(pulled_oof) == len(oof) and set(pulled_oof["person_id"]) == set(oof["person_id"])
    code, out, err = cli(capsys, "compare", "done", "alice/rep", "--runs-root", b)
    assert code == 0 and "repeat group alice/rep (3 seeds) (pulled from alice's server)" in out, err
    code, out, err = cli(capsys, "compare", "alice/fol", "alice/rep", "--runs-root", b)
    assert code == 0 and "fold group alice/fol (out of fold)" in out, err
    # outside round 2026-12-07, #13 and #14: `folds` and `review` of a pulled fold group read its travelled table
    code, out, err = cli(capsys, "folds", "alice/fol", "--runs-root", b, "--json")
    assert code == 0 and json.loads(out)["rows"] == len(oof), err
    code, _, err = cli(capsys, "folds", "alice/fol", "--save-bias", "--runs-root", b)
    assert code == 2 and "pulled from the team store (read-only here)" in err
    code, out, err = cli(capsys, "review", "alice/fol", "--runs-root", b)
    assert code == 0 and "alice/fol-oof.csv (out of fold" in out, err
    # the second outside round, #64: `team rm` of a group removed its record and left its runs listed
    from maskcls.orchestration.team.store import TeamStore
    login(monkeypatch, "alice")
    code, out, err = cli(capsys, "team", "rm", "alice/rep")
    assert code == 0 and "a group, with its runs alice/rep-s1, alice/rep-s2, alice/rep-s3" in out, err
    store = TeamStore.connect()
    assert all(store.find("alice", f"rep-s{k}") is None for k in (1, 2, 3))
    at = app_test("pages/ensemble.py", runs_root=str(b), data_root=str(demo_root), ens_fold_group="alice/fol")
    at.button(key="ens_use_folds").click().run()
    assert not at.exception
    assert at.multiselect(key="ens_members").value == [f"alice/fol-fold{k}:best.pt" for k in (1, 2, 3)]
    assert "out-of-fold macro F1" in " ".join(c.value for c in at.caption)


def test_a_killed_workers_run_is_trained_again_by_another_after_its_lease_lapses(team2, capsys, demo_root,
                                                                                  tmp_path):
    _, _, claims, _ = team2
    one, two = tmp_path / "one", tmp_path / "two"
    cfg = config_file(demo_root, tmp_path, epochs=4)
    env = env_of("alice", MASKCLS_CLAIM_LEASE_S="4")
    first = subprocess.Popen(train_cmd(one, cfg, "--seeds", "2", "--name", "k", claims=claims), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: RunFolder(one, "k-s1").exists() and RunFolder(one, "k-s1").read_status().get("epoch", 0)
                   >= 1, 300, "the first worker's first epoch")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the worker this test started, and its group
        first.wait(30)

    def listed():
        return {r["run"]: r["state"] for r in json.loads(cli(capsys, "group", "k", "--claims", claims, "--json",
                                                             "--runs-root", two)[1])}
    wait_until(lambda: listed().get("k-s1") == "lapsed", 30, "k-s1's lease to lapse")
    second = subprocess.run(train_cmd(two, cfg, "--seeds", "2", "--name", "k", claims=claims), env=env,
                            capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-2000:]
    assert listed() == {"k-s1": "completed", "k-s2": "completed"}
    assert trained_in(two, "k-s") == {"k-s1", "k-s2"}  # k-s1 again, from the start, on the second server
    # outside round 2026-12-07, #22: the first server's push of the group names the run it did not send
    pushed = subprocess.run([sys.executable, "-m", "maskcls", "team", "push", "k", "--runs-root", str(one)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert pushed.returncode == 0 and "not sent from here (not completed): k-s1 (" in pushed.stdout, pushed.stderr


def test_a_workers_own_dead_claim_is_freed_when_it_starts_again(team2):
    """The same host: a claim whose pid (and its start time) names no live process is freed at once."""
    from maskcls.orchestration.team.claims import Claims
    _, _, claims, _ = team2
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with Claims(claims) as db:
        assert db.claim("crash", "crash-s1", "dead-worker")
        db.conn.execute("UPDATE maskcls_claims SET pid = %s WHERE run = 'crash-s1'", (int(gone.stdout),))
        assert not db.claim("crash", "crash-s1", "another")  # its lease still runs
        assert db.free_own_dead("crash") == ["crash-s1"]
        assert db.claim("crash", "crash-s1", "another")


def test_workers_first_reaching_a_fresh_claims_database_at_once_all_start(team2):
    """CI 2026-12-07: two workers' first connections made the tables at the same moment and one died on PostgreSQL's
    catalogue (duplicate key on pg_type "maskcls_groups"). Eight at once, five times, on fresh databases."""
    import threading

    import psycopg

    from maskcls.orchestration.team.claims import Claims
    _, _, claims, _ = team2

    def first_connection(url, gate, errors):
        gate.wait()
        try:
            Claims(url).close()
        except Exception as e:  # noqa: BLE001  (every worker's failure is the finding)
            errors.append(repr(e))
    with psycopg.connect(claims, password=os.environ["MASKCLS_STORAGE_PASSWORD"], autocommit=True) as admin:
        for attempt in range(5):
            admin.execute(f"CREATE DATABASE fresh{attempt}")
            url, gate, errors = claims.rsplit("/", 1)[0] + f"/fresh{attempt}", threading.Barrier(8), []
            workers = [threading.Thread(target=first_connection, args=(url, gate, errors)) for _ in range(8)]
            for w in workers:
                w.start()
            for w in workers:
                w.join(60)
            assert not any(w.is_alive() for w in workers), "a first connection still waits after 60 s"
            assert errors == [], errors
            with Claims(url) as db:  # the tables are there, once
                assert db.conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'maskcls_%'").fetchone() \
                    == (2,)


def test_five_members_push_and_pull_at_once(team2, tmp_path, capsys, monkeypatch):
    """5 pushes and 5 pulls at the same moment, each its own member and process: all succeed, one record each."""
    from maskcls.orchestration.team.store import TeamStore
    _, a, _, _ = team2
    roots = {m: tmp_path / m for m in MEMBERS}
    for m, root in roots.items():
        for name in ("base", "fresh"):
            shutil.copytree(a / "done", root / name, ignore=shutil.ignore_patterns(".*.lock", ".team.json"))
        with monkeypatch.context() as as_member:  # the first pushes one after another, here: the race is below
            as_member.setenv("MLFLOW_TRACKING_USERNAME", m)
            as_member.setenv("MLFLOW_TRACKING_PASSWORD", MEMBERS[m])
            code, _, err = cli(capsys, "team", "push", "base", "--runs-root", root)
        assert code == 0, err
    names = list(MEMBERS)
    procs = [subprocess.Popen([sys.executable, "-m", "maskcls", "team", "push", "fresh", "--runs-root",
                               str(roots[m])], env=env_of(m), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for m in names]
    procs += [subprocess.Popen([sys.executable, "-m", "maskcls", "team", "pull",
                                f"{names[(i + 1) % 5]}/base", "--runs-root", str(roots[m])], env=env_of(m),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for i, m in enumerate(names)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * 10, [o[1][-500:] for o in outs]
    records = [(r.data.tags["maskcls.member"], r.data.tags["maskcls.run"]) for r in TeamStore.connect().records()]
    for m in names:
        assert records.count((m, "base")) == 1 and records.count((m, "fresh")) == 1, records
    for i, m in enumerate(names):
        assert RunFolder.open(roots[m], f"{names[(i + 1) % 5]}/base").pulled()["verified"]["macro_f1"] is not None


def test_the_store_keeps_one_version_of_a_run_pushed_five_times_and_rm_removes_it(team2, capsys):
    from maskcls.orchestration.team.store import TeamStore
    store, a, _, _ = team2
    shutil.copytree(a / "done", a / "again", ignore=shutil.ignore_patterns(".*.lock", ".team.json"))
    for i in range(6):
        RunFolder(a, "again").write_status(note=f"push {i}")
        assert cli(capsys, "team", "push", "again", "--runs-root", a)[0] == 0
    ts = TeamStore.connect()
    record = ts.find("alice", "again")
    versions = ts.artifacts(record).list_artifacts("v")
    assert len(versions) <= 2, versions
    folder = next(p for p in (store.folder / "artifacts").rglob(record.info.run_id) if p.is_dir())
    stored = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert stored <= 2 * (a / "again" / "best.pt").stat().st_size + 1_000_000
    code, out, err = cli(capsys, "team", "rm", "alice/again")
    assert code == 0 and "removed alice/again" in out, err
    assert TeamStore.connect().find("alice", "again") is None
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) == 0


def test_ablate_run_with_data_trains_on_this_servers_copy(team2, capsys, demo_root, tmp_path):
    """The ladder names one data path; this server keeps the data elsewhere: `ablate run --data` trains on it."""
    here = tmp_path / "elsewhere"
    shutil.copytree(demo_root, here)
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps({"steps": [{"name": "smoothing", "set": {"loss": "smooth"}}]}))
    runs = tmp_path / "runs"
    code, _, err = cli(capsys, "ablate", "create", "moved", "--base", config_file(demo_root, tmp_path),
                       "--steps", steps, "--runs-root", runs)
    assert code == 0, err
    code, _, err = cli(capsys, "ablate", "run", "moved", "--data", here, "--quiet", "--runs-root", runs)
    assert code == 0, err
    trained = [RunFolder(runs, p.name) for p in runs.iterdir() if p.name.startswith("moved-r")]
    assert len(trained) == 2 and all(r.read_config()["data_root"] == str(here.resolve()) for r in trained)
    code, _, err = cli(capsys, "ablate", "run", "moved", "--data", tmp_path / "nowhere", "--runs-root", runs)
    assert code == 2 and "is not a data root on this machine" in err
