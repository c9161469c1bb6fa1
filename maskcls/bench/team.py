"""The team store's budgets, measured against a real one started here (a throwaway PostgreSQL behind
`maskcls team serve`'s own server, basic auth on, loopback): push and pull of a 20 MB run (a resnet10t: its
checkpoint is the 20 MB), `team list` over 200 records, and the store's size after one run is pushed five times."""
from __future__ import annotations

import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path

from maskcls.bench.base import Budget


@contextmanager
def _env(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@contextmanager
def bench_store(work: Path):
    """A team store with auth on a throwaway PostgreSQL; this process logged in as its admin while it runs."""
    from maskcls.bench.servers import free_port, throwaway_postgres
    from maskcls.orchestration.team.serve import start_store, stop_store
    db_pw, pw = secrets.token_hex(12), secrets.token_hex(12)
    with throwaway_postgres("store", password=db_pw) as (host, port, user), \
            _env(MASKCLS_STORAGE_PASSWORD=db_pw, MLFLOW_TRACKING_USERNAME="bench", MLFLOW_TRACKING_PASSWORD=pw):
        store_port = free_port()
        proc = start_store(f"postgresql://{user}@{host}:{port}/store", work / "artifacts", port=store_port, auth=True)
        try:
            yield f"http://127.0.0.1:{store_port}", f"postgresql://{user}:{db_pw}@{host}:{port}/store"
        finally:
            stop_store(proc)


def twenty_mb_run(demo: Path, work: Path):
    """A completed resnet10t run on the demo data (one short epoch): a 20 MB best.pt and real predictions."""
    from maskcls.common.runfolder import RunFolder
    from maskcls.train.config import RunConfig
    from maskcls.train.driver import train_run
    cfg = RunConfig.from_dict({"model": "resnet10t", "pretrained": False, "image_size": [64, 48], "epochs": 1,
                               "batch_size": 32, "workers": 1, "data_root": str(demo),
                               "cache_dir": str(work / "cache"), "keep_epochs": 0})
    train_run(cfg, work / "runs", "big")
    return RunFolder(work / "runs", "big")


def team_store_budgets(demo: Path, work: Path) -> list[Budget]:
    from maskcls.orchestration.team.pull import pull_run
    from maskcls.orchestration.team.push import push_run
    from maskcls.orchestration.team.store import TeamStore
    run = twenty_mb_run(demo, work)
    size_mb = run.best_path.stat().st_size / 1e6
    with bench_store(work) as (uri, database):
        store = TeamStore.connect(uri)
        store.own_experiment("bench")  # once per member (`team add-member`): not part of a push
        t0 = time.perf_counter()
        push_run(store, run, "bench")
        pushed = time.perf_counter() - t0
        t0 = time.perf_counter()
        pull_run(TeamStore.connect(uri), work / "other", "bench/big")  # a teammate's command: its own connection
        pulled = time.perf_counter() - t0
        for _ in range(5):  # five changes, five pushes: the store keeps the newest
            os.utime(run.path / "status.json")
            push_run(store, run, "bench")
        versions = len(store.client.list_artifacts(store.find("bench", "big").info.run_id, "v"))
        _many_records(database, store.own_experiment("bench"), describe_tags(run), 200)
        from maskcls.orchestration.team.records import team_rows
        team_rows(store, work / "other")  # warm: the first request pays the connection
        t0 = time.perf_counter()
        rows = team_rows(store, work / "other")
        listed = time.perf_counter() - t0
    return [Budget(f"team push of a {size_mb:.0f} MB run (loopback, auth)", pushed, 5, "s"),
            Budget("team pull of it (download, checks, figures recomputed)", pulled, 5, "s"),
            Budget(f"team list of {len(rows)} records", listed, 1, "s"),
            Budget("versions the store keeps of a run pushed 5 more times", versions, 2, "")]


def describe_tags(run) -> dict:
    from maskcls.orchestration.team.push import describe
    return {**describe(run), "maskcls.member": "bench", "maskcls.complete": "x"}


def _many_records(database: str, experiment: str, tags: dict, n: int) -> None:
    """n records of small runs (the season a team's list shows), written straight into the store's database: the
    setup of the measurement, not part of it (through the server each costs a password check)."""
    from mlflow.entities import RunTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    db = SqlAlchemyStore(database.replace("postgresql://", "postgresql+psycopg://"), "/nonexistent")
    for i in range(n - 1):
        rec = db.create_run(experiment, "bench", int(time.time() * 1000), [], f"bench/r{i}")
        db.log_batch(rec.info.run_id, metrics=[], params=[],
                     tags=[RunTag(k, v) for k, v in {**tags, "maskcls.run": f"r{i}"}.items()])
