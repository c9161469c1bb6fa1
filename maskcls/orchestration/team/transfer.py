"""Push a run to the team store and pull a teammate's run from it.

A push uploads one immutable version of the run (`v/<content>/` in the record's artifacts: config, status, every
epoch's metrics, intervals, validation predictions and history, the best checkpoint, weights only) and only then
marks the record complete with that version: a server that stops mid-push leaves the last complete version what
everyone pulls, and the retry uploads the missing files and completes. Pushing again updates the same record.

A pull downloads the complete version into `<runs root>/team/MEMBER/.RUN.partial-<version>/` (files already there
are kept, so a pull resumes), checks the checkpoint (weights only, an architecture this version can build), then
renames the folder into place: an ordinary run folder, marked read-only by its `.team.json`.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from maskcls.common.fileio import LIMITS, check_name, inside, read_json, write_json
from maskcls.common.runfolder import PULLED_FILE, TEAM_DIR, RunFolder, list_runs
from maskcls.orchestration.team.store import TeamError, TeamStore, reached, shown

FILES = ("config.json", "status.json", "metrics.jsonl", "intervals.json", "val_predictions.csv", "val_history.csv",
         "class_bias.json", "best.pt")
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


def describe(run: RunFolder) -> dict:
    """The tags a record carries: what `team list` shows without downloading anything."""
    from maskcls import __version__
    from maskcls.data.fingerprints import data_fingerprint, split_fingerprint
    from maskcls.train.config import RunConfig
    cfg = RunConfig.from_dict(run.read_config())
    status = run.read_status()
    intervals = run.read_intervals() or {}
    preds = run.read_predictions()
    try:
        data_fp = data_fingerprint(cfg)
    except (OSError, ValueError) as e:
        raise TeamError(f"cannot push {run.name!r}: its data root {cfg.data_root!r} cannot be read here to fingerprint "
                        f"the data ({e})") from None
    ci = intervals.get("macro_f1_ci") or [None, None]
    tags = {"maskcls.kind": "run", "maskcls.run": run.name, "maskcls.version": __version__,
            "maskcls.state": run.state()["state"], "maskcls.model": cfg.model, "maskcls.head": cfg.head,
            "maskcls.data_fp": data_fp, "maskcls.split_fp": split_fingerprint(preds) if preds is not None else "",
            "maskcls.best_f1": status.get("best_f1"), "maskcls.f1_low": ci[0], "maskcls.f1_high": ci[1],
            "maskcls.epochs": len(run.read_metrics())}
    return {k: "" if v is None else str(v) for k, v in tags.items()}


def push_run(store: TeamStore, run: RunFolder, member: str) -> dict:
    """Send one run (or update its record); returns what was done. Pushes of one run from this machine take turns
    (a lock in the run), so several at once make one record, not three."""
    from maskcls.common.fileio import locked
    with locked(run.path / "push", timeout=600):
        return _push_locked(store, run, member)


def _one_record(store: TeamStore, member: str, name: str, mine):
    """After creating a record: when another pusher created one too (another machine of the same member), keep the
    oldest and delete ours, so one run has one record."""
    with reached(store.uri, "look up a run"):
        found = store.client.search_runs([store.experiment_id], max_results=10, filter_string=(
            f"tags.`maskcls.member` = '{member}' and tags.`maskcls.run` = '{name}' and tags.`maskcls.kind` = 'run'"),
            order_by=["attributes.start_time ASC"])
    if len(found) > 1 and found[0].info.run_id != mine.info.run_id:
        with reached(store.uri, "remove a duplicate record"):
            store.client.delete_run(mine.info.run_id)
        return found[0]
    return mine


def _push_locked(store: TeamStore, run: RunFolder, member: str) -> dict:
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
    version = content_version(run)
    record = store.find(member, run.name)
    if record is not None and record.data.tags.get("maskcls.complete") == version:
        return {"run": run.name, "member": member, "version": version, "sent": False, "record": record.info.run_id}
    tags = {**describe(run), "maskcls.member": member}
    from mlflow.entities import Metric, Param, RunTag
    from maskcls.train.tracking.base import flat_config
    with reached(store.uri, f"push {run.name!r}"):
        if record is None:
            record = _one_record(store, member, run.name, store.client.create_run(
                store.experiment_id, run_name=f"{member}/{run.name}",
                tags={"maskcls.kind": "run", "maskcls.member": member, "maskcls.run": run.name}))
        run_id = record.info.run_id
        pushed = int(record.data.tags.get("maskcls.epochs_pushed", 0) or 0)
        rows = [r for r in run.read_metrics() if r["epoch"] > pushed]
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(r["epoch"])) for r in rows for k, v in r.items()
                   if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
        params = [] if record.data.params else [Param(k, str(v)[:6000]) for k, v in
                                                flat_config(run.read_config()).items()]
        for i in range(0, max(len(metrics), 1), 900):  # MLflow takes at most 1,000 entries a call
            store.client.log_batch(run_id, metrics=metrics[i:i + 900], params=params if i == 0 else [])
        store.client.set_tag(run_id, "maskcls.epochs_pushed", str(max([pushed] + [r["epoch"] for r in rows])))
        with tempfile.TemporaryDirectory(prefix="maskcls-push-") as tmp:
            staged = Path(tmp) / version
            staged.mkdir()
            for name in FILES:
                if (run.path / name).is_file():
                    os.link(run.path / name, staged / name) if _same_device(run.path, staged) else \
                        shutil.copy2(run.path / name, staged / name)
            corrections = run.read_config().get("corrections", "none")
            if corrections not in ("none", "community") and Path(corrections).is_file():
                shutil.copy2(corrections, staged / CORRECTIONS)
            store.client.log_artifacts(run_id, str(staged), artifact_path=f"v/{version}")
        store.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        store.client.set_tag(run_id, "maskcls.complete", version)  # last: only now do pulls see this version
    return {"run": run.name, "member": member, "version": version, "sent": True, "record": run_id}


def _same_device(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def push_all(store: TeamStore, runs_root, member: str) -> list[dict]:
    """Every finished run of this runs root that is new or changed since its last push."""
    out = []
    for run in list_runs(runs_root):
        if run.state()["state"] in ("completed", "pruned") and (run.path / "best.pt").is_file():
            out.append(push_run(store, run, member))
    return out


def team_rows(store: TeamStore, runs_root, skipped: list | None = None) -> list[dict]:
    """One row per record: member, run, state, macro F1 and interval (as its pusher claims them: recomputed on
    pull), fingerprints, pulled here or not. A record that cannot be shown (a member named `../../etc`, an F1
    that is no number in [0, 1]) is left out and named in `skipped`, never fatal to the listing."""
    rows = []
    for r in store.records():
        try:
            rows.append(_team_row(r.data.tags, runs_root))
        except (ValueError, TypeError) as e:
            if skipped is not None:
                skipped.append(f"record {r.info.run_id}: {e}")
    return rows


def _claimed_f1(tags: dict, key: str) -> float | None:
    value = tags.get(key)
    if value in (None, ""):
        return None
    try:
        f1 = float(value)
    except ValueError:
        raise ValueError(f"its {key} tag {value[:40]!r} is not a number") from None
    if not 0 <= f1 <= 1:
        raise ValueError(f"its {key} tag {value[:40]!r} is not a macro F1 (0 to 1)")
    return f1


def _team_row(t: dict, runs_root) -> dict:
    member, name = t.get("maskcls.member", ""), t.get("maskcls.run", "")
    local = pulled_folder(runs_root, member, name)  # checks both names: nothing that could leave the runs root
    marker = RunFolder(local.parent, name).pulled() if local.is_dir() else None
    complete = t.get("maskcls.complete")
    pulled = "no" if marker is None else "yes" if marker.get("version") == complete else "older version"
    return {"member": member, "run": name, "ref": f"{member}/{name}", "state": t.get("maskcls.state"),
            "model": t.get("maskcls.model"), "macro_f1": _claimed_f1(t, "maskcls.best_f1"),
            "f1_low": _claimed_f1(t, "maskcls.f1_low"), "f1_high": _claimed_f1(t, "maskcls.f1_high"),
            "data_fp": t.get("maskcls.data_fp"), "split_fp": t.get("maskcls.split_fp"),
            "complete": bool(complete), "pulled": pulled}


def pulled_folder(runs_root, member: str, run: str) -> Path:
    return inside(runs_root, TEAM_DIR, check_name(member, "member name"), check_name(run))


def check_ref(ref: str) -> tuple[str, str]:
    """(member, run) of MEMBER/RUN, both checked as names (nothing that could leave the runs root)."""
    member, _, name = ref.partition("/")
    if not name:
        raise TeamError(f"expected MEMBER/RUN, got {ref!r}")
    return check_name(member, "member name"), check_name(name)


FILE_LIMITS = {"metrics.jsonl": LIMITS["metrics"], "val_predictions.csv": LIMITS["table"],
               "val_history.csv": LIMITS["table"], CORRECTIONS: LIMITS["table"], "best.pt": LIMITS["checkpoint"]}


def _file_limit(name: str) -> int:
    return FILE_LIMITS.get(name, LIMITS["json"])


def check_data_root(data_root: str | None) -> str | None:
    """--data for a pull: a data root on this machine (its train/images), or None when not given."""
    if data_root is None:
        return None
    root = Path(data_root).expanduser()
    if not (root / "train" / "images").is_dir():
        raise TeamError(f"--data {data_root!r} is not a data root on this machine: expected a folder holding "
                        f"train/images (the competition layout)")
    return str(root.resolve())


def pull_run(store: TeamStore, runs_root, ref: str, *, data_root: str | None = None) -> RunFolder:
    """MEMBER/RUN from the store into <runs root>/team/MEMBER/RUN (atomic, resumable, checked, its figures
    recomputed from its predictions). Several pulls of one run at once: one downloads, the others wait for it and
    find it pulled."""
    from maskcls.common.fileio import locked
    member, name = check_ref(ref)
    data_root = check_data_root(data_root)
    target = pulled_folder(runs_root, member, name)
    record = store.find(member, name)
    if record is None:
        raise TeamError(f"the team store at {shown(store.uri)} holds no run {name!r} of {member!r} (`maskcls team "
                        f"list` shows what it holds)")
    version = record.data.tags.get("maskcls.complete")
    if not version:
        raise TeamError(f"{ref} is still being pushed (no complete version yet): pull it when its push has ended")
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target, timeout=600):
        if target.exists() and not target.is_dir() or target.is_symlink():
            raise TeamError(f"cannot pull {ref}: {target} is {'a link' if target.is_symlink() else 'a file'}, not a "
                            f"pulled run; move it away and pull again")
        marker = RunFolder(target.parent, name).pulled() if target.is_dir() else None
        if marker and marker.get("version") == version and marker.get("verified") is not None and not data_root \
                and intact(target, marker):
            return RunFolder(target.parent, name)  # pulled already (another pull of it finished while we waited)
        try:
            return _pull_locked(store, record, ref, target, version=version, data_root=data_root)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise TeamError(f"could not pull {ref}: no space left on the device holding {target.parent} "
                                f"({shutil.disk_usage(target.parent).free / 1e6:.0f} MB free); nothing was pulled, "
                                f"free some space (`maskcls runs prune`) and pull again") from None
            raise


def _download(store: TeamStore, record, ref: str, partial: Path, version: str) -> None:
    """The version's files into `partial`: each within its size bound, after checking the disk can hold them."""
    with reached(store.uri, f"pull {ref}"):
        listed = {Path(f.path).name: f.file_size for f in store.client.list_artifacts(record.info.run_id,
                                                                                     f"v/{version}")}
    too_big = [f"{n} ({(listed[n] or 0) / 1e6:.1f} MB, at most {_file_limit(n) / 1e6:.0f} MB)" for n in listed
               if n in (*FILES, CORRECTIONS) and (listed[n] or 0) > _file_limit(n)]
    if too_big:
        raise TeamError(f"{ref} is not pulled: {', '.join(too_big)} is larger than a run's file may be")
    need = sum((listed[n] or 0) for n in listed if n in (*FILES, CORRECTIONS))
    free = shutil.disk_usage(partial).free
    if need > free:
        raise TeamError(f"could not pull {ref}: it needs {need / 1e6:.0f} MB and the device holding {partial.parent} "
                        f"has {free / 1e6:.0f} MB free; nothing was pulled")
    with reached(store.uri, f"pull {ref}"):
        for fname in [*FILES, CORRECTIONS]:
            if fname not in listed or ((partial / fname).is_file() and (partial / fname).stat().st_size
                                       == listed[fname]):
                continue  # not in this version, or already downloaded by an interrupted pull
            with tempfile.TemporaryDirectory(dir=partial, prefix=".dl-") as tmp:
                got = Path(store.client.download_artifacts(record.info.run_id, f"v/{version}/{fname}", tmp))
                if got.is_symlink() or not got.is_file() or got.stat().st_size > _file_limit(fname):
                    raise TeamError(f"{ref}: its {fname} did not arrive as a file of a run's size: not pulled")
                os.replace(got, partial / fname)


def _pull_locked(store: TeamStore, record, ref: str, target: Path, *, version: str, data_root) -> RunFolder:
    member, name = check_ref(ref)
    partial = target.parent / f".{name}.partial-{version}"
    partial.mkdir(parents=True, exist_ok=True)
    _download(store, record, ref, partial, version)
    missing = [n for n in NEEDED if not (partial / n).is_file()]
    if missing:
        raise TeamError(f"{ref}'s version {version} lacks {', '.join(missing)}: ask {member} to push it again")
    try:
        _check_pulled(partial, ref)
        cfg, original = _local_config(partial, target, data_root)
        checked = _verify(partial, cfg, record)
    except TeamError:
        shutil.rmtree(partial, ignore_errors=True)  # refused: nothing of it stays
        raise
    checked["files"] = file_digests(partial)
    write_json(partial / PULLED_FILE, {"member": member, "run": name, "store": shown(store.uri),
                                       "record": record.info.run_id, "version": version, "pulled": time.time(),
                                       "data_fingerprint": record.data.tags.get("maskcls.data_fp"),
                                       "split_fingerprint": record.data.tags.get("maskcls.split_fp"),
                                       "original": original, **checked})
    if target.exists():  # an older pull: swap it out, then remove it
        old = target.parent / f".{name}.old-{os.getpid()}"
        os.replace(target, old)
        os.replace(partial, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, target)
    return RunFolder(target.parent, name)


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of each run file a pull left, as it left them: a later pull of the same version finds a damaged or
    missing one and pulls again instead of saying it is there."""
    out = {}
    for name in (*FILES, CORRECTIONS, "config.json"):
        if (folder / name).is_file():
            h = hashlib.sha256()
            with open(folder / name, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[name] = h.hexdigest()
    return out


def intact(target: Path, marker: dict) -> bool:
    recorded = marker.get("files")
    return isinstance(recorded, dict) and bool(recorded) and file_digests(target) == recorded


def _local_config(partial: Path, target: Path, data_root) -> tuple[dict, dict]:
    """The pulled config re-based on this machine: the data root given (or the teammate's when it is a data root
    here), its corrections file the one that travelled with it, no cache folder of theirs."""
    cfg = read_json(partial / "config.json", "config.json", root=partial)
    if not isinstance(cfg, dict):
        raise TeamError("its config.json is not a JSON object: not pulled")
    original = {"data_root": cfg.get("data_root"), "corrections": cfg.get("corrections")}
    if data_root:
        cfg["data_root"] = data_root
    elif not (Path(str(cfg.get("data_root"))) / "train" / "images").is_dir():
        cfg["data_root"] = str(cfg.get("data_root") or "")  # not on this machine: named, never used to open photos
    if (partial / CORRECTIONS).is_file():
        cfg["corrections"] = str(target / CORRECTIONS)
    elif cfg.get("corrections") not in (None, "none", "community"):
        cfg["corrections"] = "none"  # a path on the teammate's machine: nothing of it is read here
    cfg["cache_dir"] = ""
    write_json(partial / "config.json", cfg)
    return cfg, original


def _verify(partial: Path, cfg: dict, record) -> dict:
    """verify_pulled on the partial folder, with the corrections file as it lies there now."""
    from maskcls.data.labels import AgeBounds
    from maskcls.infer.evaluation import eval_people
    from maskcls.orchestration.team.verify import verify_pulled
    corrections = str(partial / CORRECTIONS) if (partial / CORRECTIONS).is_file() else cfg.get("corrections")
    try:
        bounds = AgeBounds(int(cfg.get("age_lower", 30)), int(cfg.get("age_upper", 60)))
    except (TypeError, ValueError) as e:
        raise TeamError(f"its config's age bounds are not usable ({e}): not pulled") from None
    root = cfg.get("data_root") if (Path(str(cfg.get("data_root"))) / "train" / "images").is_dir() else None
    try:
        return verify_pulled(partial, data_root=root, corrections=corrections, bounds=bounds,
                             eval_people=eval_people(root) if root else 0,
                             tag_f1=record.data.tags.get("maskcls.best_f1"), cfg=cfg)
    except (ValueError, OSError) as e:
        raise TeamError(f"its figures cannot be recomputed ({e}): not pulled") from None


def _check_pulled(folder: Path, ref: str) -> None:
    """A pulled checkpoint loads with weights_only=True and fits an architecture this version builds."""
    from maskcls.common.checkpoints import CheckpointError, load_checkpoint
    from maskcls.infer.members import build_model
    from maskcls.train.config import RunConfig
    try:
        cfg = RunConfig.from_dict(read_json(folder / "config.json"))
        import timm
        if not timm.is_model(cfg.model):
            raise TeamError(f"{ref} is a {cfg.model!r} model, an architecture this version of maskcls (timm "
                            f"{timm.__version__}) cannot build: not pulled")
        build_model(load_checkpoint(folder / "best.pt"), cfg, ref)
    except (CheckpointError, ValueError) as e:
        if isinstance(e, TeamError):
            raise
        raise TeamError(f"{ref}: its checkpoint cannot be used here ({e}): not pulled") from None
