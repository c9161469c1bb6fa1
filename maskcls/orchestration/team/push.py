"""Push a run, or a repeat or fold group, to the team store; remove one's own record.

A push sends one immutable version of the run: one bundle (maskcls.orchestration.team.bundle: config, status,
every epoch's metrics, intervals, validation predictions and history, class biases, fingerprints fixed at training
time, the best checkpoint, weights only, and its corrections file) into `v/<version>/` of the record, in the
pusher's own experiment; then one request with its metrics and tags; then it marks the record complete with that
version and the bundle's sha256, and removes the older versions. A server that stops mid-push leaves the last
complete version what everyone pulls; the retry sends the bundle again. Metrics are sent in the same request as the
tag saying how many epochs went, so a retry never doubles them. Pushes of one run from one machine take turns.
"""
from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

from maskcls.common.runfolder import RunFolder, list_runs
from maskcls.orchestration.team.bundle import BUNDLE, make_bundle
from maskcls.orchestration.team.store import TeamError, TeamStore, reached

FILES = ("config.json", "status.json", "metrics.jsonl", "intervals.json", "val_predictions.csv", "val_history.csv",
         "class_bias.json", "fingerprints.json", "best.pt")
NEEDED = ("config.json", "status.json", "best.pt")
CORRECTIONS = "corrections.csv"  # a run's corrections file, when it names one, travels with it


def content_version(run: RunFolder) -> str:
    """A name for what the run's files hold now (their names, sizes and change times): pushing an unchanged run
    twice uploads nothing."""
    h = hashlib.sha256()
    for name in FILES:
        p = run.path / name
        if p.is_file():
            st = p.stat()
            h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def fingerprints(run: RunFolder) -> dict:
    """The run's data and split fingerprints as fixed when it trained (fingerprints.json); a run from before
    that file is fingerprinted now, from its data root and predictions."""
    from maskcls.common.fileio import read_json
    from maskcls.data.fingerprints import data_fingerprint, split_fingerprint
    from maskcls.train.config import RunConfig
    try:
        fixed = read_json(run.path / "fingerprints.json", "fingerprints.json", root=run.path)
        if isinstance(fixed, dict) and fixed.get("data"):
            return fixed
    except (OSError, ValueError):
        pass
    cfg = RunConfig.from_dict(run.read_config())
    try:
        data = data_fingerprint(cfg)
    except (OSError, ValueError) as e:
        raise TeamError(f"cannot push {run.name!r}: its data root {cfg.data_root!r} cannot be read here to fingerprint "
                        f"the data ({e})") from None
    preds = run.read_predictions()
    return {"data": data, "split": split_fingerprint(preds) if preds is not None else ""}


def describe(run: RunFolder) -> dict:
    """The tags a record carries: what `team list` shows without downloading anything."""
    from maskcls import __version__
    from maskcls.train.config import RunConfig
    cfg = RunConfig.from_dict(run.read_config())
    status = run.read_status()
    intervals = run.read_intervals() or {}
    prints = fingerprints(run)
    ci = intervals.get("macro_f1_ci") or [None, None]
    tags = {"maskcls.kind": "run", "maskcls.run": run.name, "maskcls.version": __version__,
            "maskcls.state": run.state()["state"], "maskcls.model": cfg.model, "maskcls.head": cfg.head,
            "maskcls.data_fp": prints.get("data"), "maskcls.split_fp": prints.get("split"),
            "maskcls.best_f1": status.get("best_f1"), "maskcls.f1_low": ci[0], "maskcls.f1_high": ci[1],
            "maskcls.epochs": len(run.read_metrics())}
    return {k: "" if v is None else str(v) for k, v in tags.items()}


def push_run(store: TeamStore, run: RunFolder, member: str) -> dict:
    """Send one run (or update its record); returns what was done."""
    from maskcls.common.fileio import locked
    with locked(run.path / "push", timeout=600):
        return _push_locked(store, run, member)


def push_all(store: TeamStore, runs_root, member: str) -> list[dict]:
    """Every finished run of this runs root that is new or changed since its last push."""
    return [push_run(store, run, member) for run in list_runs(runs_root)
            if run.state()["state"] in ("completed", "pruned") and (run.path / "best.pt").is_file()]


def _refuse(run: RunFolder) -> None:
    if run.pulled():
        raise TeamError(f"{run.name!r} is {run.pulled()['member']}'s run pulled from the team store: only its owner "
                        f"pushes it")
    state = run.state()["state"]
    if state in ("queued", "running"):
        raise TeamError(f"cannot push {run.name!r} while it is {state}: push it when it ends (or train it with "
                        f"--set team=true to push itself)")
    missing = [n for n in NEEDED if not (run.path / n).is_file()]
    if missing:
        raise TeamError(f"cannot push {run.name!r}: it has no {', '.join(missing)} yet")


def _push_locked(store: TeamStore, run: RunFolder, member: str) -> dict:
    _refuse(run)
    version = content_version(run)
    record = store.find(member, run.name)
    if record is not None and record.data.tags.get("maskcls.complete") == version:
        return {"run": run.name, "member": member, "version": version, "sent": False, "record": record.info.run_id}
    tags = {**describe(run), "maskcls.member": member}
    with reached(store.uri, f"push {run.name!r}"):
        record = record or _one_record(store, member, run.name, "run")
        repo = store.artifacts(record)
        with tempfile.TemporaryDirectory(prefix="maskcls-push-") as tmp:
            bundle = Path(tmp) / BUNDLE
            manifest = make_bundle(_files(run), bundle)
            repo.log_artifact(str(bundle), f"v/{version}")
            digest, size = _digest(bundle), bundle.stat().st_size
        # the tag that makes this version the one pulls see travels in the last request, with the metrics
        _log_metrics_and_tags(store, record, run, {**tags, "maskcls.bundle_sha256": digest,
                                                   "maskcls.bundle_size": str(size),
                                                   "maskcls.files": ",".join(sorted(manifest)),
                                                   "maskcls.complete": version})
        drop_old_versions(store, record, keep=version)
    return {"run": run.name, "member": member, "version": version, "sent": True, "record": record.info.run_id}


def _files(run: RunFolder) -> dict[str, Path]:
    files = {n: run.path / n for n in FILES if (run.path / n).is_file()}
    kept = run.path / CORRECTIONS  # the copy the run took when it trained: what it learned from
    corrections = run.read_config().get("corrections", "none")
    if kept.is_file():
        files[CORRECTIONS] = kept
    elif corrections not in ("none", "community") and Path(corrections).is_file() and _unchanged_since(run):
        files[CORRECTIONS] = Path(corrections)  # a run from before the copy: its file, while it still holds its data
    return files


def _unchanged_since(run: RunFolder) -> bool:
    """A run trained before runs kept their corrections: its config's file is sent only while the data it gives
    is the data the run fixed when it trained (or the run fixed none)."""
    from maskcls.data.fingerprints import data_fingerprint
    from maskcls.train.config import RunConfig
    fixed = run.read_fingerprints()
    if not fixed:
        return True
    try:
        return data_fingerprint(RunConfig.from_dict(run.read_config())) == fixed["data"]
    except (OSError, ValueError):
        return False


def _digest(path: Path) -> str:
    from maskcls.orchestration.team.bundle import sha256_of
    return sha256_of(path)


def _log_metrics_and_tags(store: TeamStore, record, run: RunFolder, tags: dict) -> None:
    """The epochs not sent yet and the tags in one request per thousand entries: the tag saying how many epochs
    went travels with the last of them, so a retry after a cut never sends an epoch twice."""
    from mlflow.entities import Metric, Param, RunTag

    from maskcls.train.tracking.base import flat_config
    pushed = int(record.data.tags.get("maskcls.epochs_pushed", 0) or 0)
    rows = [r for r in run.read_metrics() if r["epoch"] > pushed]
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, int(r["epoch"])) for r in rows for k, v in r.items()
               if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
    params = [] if record.data.params else [Param(k, str(v)[:6000]) for k, v in flat_config(run.read_config()).items()]
    all_tags = [RunTag(k, v) for k, v in {**tags, "maskcls.epochs_pushed": str(max([pushed] + [r["epoch"]
                                                                                          for r in rows]))}.items()]
    chunks = [metrics[i:i + 900] for i in range(0, len(metrics), 900)] or [[]]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        store.client.log_batch(record.info.run_id, metrics=chunk, params=params if i == 0 else [],
                               tags=all_tags if last else [])


def _one_record(store: TeamStore, member: str, name: str, kind: str):
    """A new record in the member's own experiment; when another pusher made one too (another machine of the same
    member), the oldest is kept and ours removed, so one run has one record."""
    exp = store.own_experiment(member)
    mine = store.client.create_run(exp, run_name=f"{member}/{name}", tags={"maskcls.kind": kind,
                                                                         "maskcls.member": member,
                                                                         "maskcls.run": name})
    found = store.client.search_runs([exp], max_results=10, filter_string=(
        f"tags.`maskcls.member` = '{member}' and tags.`maskcls.run` = '{name}' and tags.`maskcls.kind` = '{kind}'"),
        order_by=["attributes.start_time ASC"])
    if len(found) > 1 and found[0].info.run_id != mine.info.run_id:
        store.client.delete_run(mine.info.run_id)
        return found[0]
    return mine


def drop_old_versions(store: TeamStore, record, keep: str, *, strict: bool = False) -> list[str]:
    """Remove every version of the record but `keep` (the complete one): the store holds one copy of a run, and
    what an interrupted push left goes too."""
    repo = store.artifacts(record)
    old = [f.path.split("/")[-1] for f in repo.list_artifacts("v") if f.path.split("/")[-1] != keep]
    for v in old:
        try:
            repo.delete_artifacts(f"v/{v}")
        except Exception:  # a store that cannot delete keeps an old copy: never a failed push (`team rm` says)
            if strict:
                raise
    return old


def remove_record(store: TeamStore, member: str, name: str) -> dict:
    """`team rm MEMBER/RUN`: every version of the record, then the record, when it is the caller's own (the store
    refuses another member's: its permissions, not a check of ours)."""
    run = store.find(member, name)
    record = run or store.find(member, name, kind="group")
    if record is None:
        raise TeamError(f"the team store holds no record {member}/{name}")
    removed = []
    for r in [] if run else [r for r in record.data.tags.get("maskcls.runs", "").split(",") if r]:  # a group's runs
        found = store.find(member, r)
        if found is not None:
            removed.append(_remove(store, member, r, found)["removed"])
    return {**_remove(store, member, name, record), "runs": removed}


def _remove(store: TeamStore, member: str, name: str, record) -> dict:
    """One record and every version it holds."""
    with reached(store.uri, f"remove {member}/{name}"):
        dropped = drop_old_versions(store, record, keep="", strict=True)
        store.client.delete_run(record.info.run_id)
    return {"removed": f"{member}/{name}", "record": record.info.run_id, "versions": dropped}


def push_group(store: TeamStore, name: str, *, kind: str, runs: list[RunFolder], member: str, planned: list[str],
               oof: Path | None = None) -> dict:
    """A repeat or fold group: each of its runs here, then the group's own record: its planned runs (those of
    every server that pushed a part, for a group split over several), and for folds the out-of-fold table when it
    is here (`oof`), so a pull of MEMBER/NAME brings the whole group."""
    done = [push_run(store, r, member) for r in runs]
    with reached(store.uri, f"push group {name!r}"):
        record = store.find(member, name, kind="group") or _one_record(store, member, name, "group")
        known = [n for n in record.data.tags.get("maskcls.runs", "").split(",") if n]
        tags = {"maskcls.group_kind": kind, "maskcls.runs": ",".join(sorted(set(known) | set(planned)))}
        if oof is not None and oof.is_file():
            store.artifacts(record).log_artifact(str(oof), "group")
            tags["maskcls.oof"] = oof.name
        from mlflow.entities import RunTag
        store.client.log_batch(record.info.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    return {"group": name, "kind": kind, "runs": done, "record": record.info.run_id}
