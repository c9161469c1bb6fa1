"""Pull a teammate's run, or a whole repeat or fold group, from the team store.

A pull downloads the record's complete version, one bundle (maskcls.orchestration.team.bundle), checks it against
the sha256 its push recorded and each file against the bundle's manifest, into
`<runs root>/team/MEMBER/.RUN.partial-<version>/`; checks the checkpoint (weights only, an architecture this version
can build); recomputes the run's figures from its predictions on this machine's data
(maskcls.orchestration.team.verify); then renames the folder into place: an ordinary run folder, marked read-only by
its `.team.json`. Records pushed by earlier versions (one file per artifact) are pulled file by file.

A group's pull brings every run of it and, for folds, the out-of-fold table, into `<runs root>/team/MEMBER/`, which
is a runs root of that member's pulled runs: `alice/base` then names the group as `base` names one's own.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from maskcls.common.fileio import check_name, inside, read_json, write_json
from maskcls.common.runfolder import PULLED_FILE, TEAM_DIR, RunFolder
from maskcls.orchestration.team.bundle import BUNDLE, extract_bundle, limit_of
from maskcls.orchestration.team.push import CORRECTIONS, FILES, NEEDED
from maskcls.orchestration.team.store import TeamError, TeamStore, reached, shown


def pulled_folder(runs_root, member: str, run: str) -> Path:
    return inside(runs_root, TEAM_DIR, check_name(member, "member name"), check_name(run))


def check_ref(ref: str) -> tuple[str, str]:
    """(member, run) of MEMBER/RUN, both checked as names (nothing that could leave the runs root)."""
    member, _, name = ref.partition("/")
    if not name:
        raise TeamError(f"expected MEMBER/RUN, got {ref!r}")
    return check_name(member, "member name"), check_name(name)


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
    """The version's files into `partial`: its bundle (one request), or, for a record an earlier version pushed,
    each file; within its size bound, after checking the disk can hold them."""
    size = record.data.tags.get("maskcls.bundle_size")
    if size:  # a bundle: its size and digest are in the record, nothing to list
        try:
            return _download_bundle(store, record, ref, partial, (version, int(size)))
        except ValueError as e:
            if isinstance(e, TeamError):
                raise
            raise TeamError(f"{ref}'s record gives its bundle's size as {size[:40]!r}, not a number: not pulled") \
                from None
    with reached(store.uri, f"pull {ref}"):
        listed = {Path(f.path).name: f.file_size for f in store.client.list_artifacts(record.info.run_id,
                                                                                     f"v/{version}")}
    names = [n for n in listed if n in (*FILES, CORRECTIONS)]
    too_big = [f"{n} ({(listed[n] or 0) / 1e6:.1f} MB, at most {limit_of(n) / 1e6:.0f} MB)" for n in names
               if (listed[n] or 0) > limit_of(n)]
    if too_big:
        raise TeamError(f"{ref} is not pulled: {', '.join(too_big)} is larger than a run's file may be")
    _check_room(partial, sum(listed[n] or 0 for n in names), ref)
    with reached(store.uri, f"pull {ref}"):
        for fname in names:
            if (partial / fname).is_file() and (partial / fname).stat().st_size == listed[fname]:
                continue  # already downloaded by an interrupted pull
            with tempfile.TemporaryDirectory(dir=partial, prefix=".dl-") as tmp:
                got = Path(store.client.download_artifacts(record.info.run_id, f"v/{version}/{fname}", tmp))
                if got.is_symlink() or not got.is_file() or got.stat().st_size > limit_of(fname):
                    raise TeamError(f"{ref}: its {fname} did not arrive as a file of a run's size: not pulled")
                os.replace(got, partial / fname)


BUNDLE_LIMIT = sum(limit_of(n) for n in (*FILES, CORRECTIONS)) + (1 << 20)  # every file at its bound, and the tar's


def _check_room(partial: Path, need: int, ref: str) -> None:
    free = shutil.disk_usage(partial).free
    if need > free:
        raise TeamError(f"could not pull {ref}: it needs {need / 1e6:.0f} MB and the device holding {partial.parent} "
                        f"has {free / 1e6:.0f} MB free; nothing was pulled")


def _download_bundle(store: TeamStore, record, ref: str, partial: Path, version_size: tuple[str, int]) -> None:
    """One download of the bundle, checked against the sha256 its push recorded, unpacked file by file against its
    manifest."""
    version, size = version_size
    if not 0 < size <= BUNDLE_LIMIT:
        raise TeamError(f"{ref} is not pulled: its bundle holds {size / 1e6:.0f} MB, more than a run's files may "
                        f"({BUNDLE_LIMIT / 1e6:.0f} MB)")
    _check_room(partial, 2 * size, ref)  # the bundle and its files side by side, for a moment
    expected = record.data.tags.get("maskcls.bundle_sha256")
    if not expected:
        raise TeamError(f"{ref}'s record names no digest for its bundle: not pulled (ask its owner to push it again)")
    with tempfile.TemporaryDirectory(dir=partial, prefix=".dl-") as tmp:
        with reached(store.uri, f"pull {ref}"):
            got = Path(store.artifacts(record).download_artifacts(f"v/{version}/{BUNDLE}", tmp))
        if got.is_symlink() or not got.is_file() or got.stat().st_size != size:
            raise TeamError(f"{ref}: its bundle did not arrive as the file of {size} bytes its push recorded: not "
                            f"pulled")
        try:
            extract_bundle(got, partial, (*FILES, CORRECTIONS), expected_sha256=expected)
        except (ValueError, OSError, EOFError, tarfile.TarError) as e:
            shutil.rmtree(partial, ignore_errors=True)
            raise TeamError(f"{ref} is not pulled: {e}") from None


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


def pull_any(store: TeamStore, runs_root, ref: str, *, data_root: str | None = None) -> dict:
    """MEMBER/NAME: the run of that name, or else every run of the group of that name (pull_group); returns
    {"runs": [...], "disagreements": [what the group's pushed files claimed that its runs do not bear out]}."""
    member, name = check_ref(ref)
    if store.find(member, name) is None and store.find(member, name, kind="group") is not None:
        return pull_group(store, runs_root, ref, data_root=data_root)
    return {"runs": [pull_run(store, runs_root, ref, data_root=data_root)], "disagreements": []}


def pull_group(store: TeamStore, runs_root, ref: str, *, data_root: str | None = None) -> dict:
    """Every run of MEMBER's repeat or fold group NAME into <runs root>/team/MEMBER/, and for folds the out-of-fold
    table, assembled here from the pulled folds' (recomputed) predictions and held against the one pushed."""
    member, name = check_ref(ref)
    record = store.find(member, name, kind="group")
    if record is None:
        raise TeamError(f"the team store at {shown(store.uri)} holds no group {name!r} of {member!r}")
    tags = record.data.tags
    kind, planned = tags.get("maskcls.group_kind"), [n for n in tags.get("maskcls.runs", "").split(",") if n]
    if kind not in ("repeat", "folds") or not planned:
        raise TeamError(f"{ref}'s group record names no runs of a repeat or fold group: not pulled")
    for n in planned:
        check_name(n)
    absent = [n for n in planned if store.find(member, n) is None]
    if absent:
        raise TeamError(f"{ref} is not complete in the team store: {', '.join(absent)} not pushed yet (its runs may "
                        f"still train: `maskcls team push {name}` on the server that trained them)")
    runs = [pull_run(store, runs_root, f"{member}/{n}", data_root=data_root) for n in planned]
    out = {"group": ref, "kind": kind, "runs": runs, "oof": None, "disagreements": []}
    if kind == "folds":
        out.update(_group_oof(store, record, runs_root, ref))
    return out


def _group_oof(store: TeamStore, record, runs_root, ref: str) -> dict:
    """The out-of-fold table of a pulled fold group: written here from its pulled folds; the pushed one, when it
    differs (another labelling, a forged row), is named, never used."""
    import pandas as pd

    from maskcls.common.predictions import read_predictions_table
    from maskcls.orchestration.folds import write_oof
    member, name = check_ref(ref)
    root = inside(runs_root, TEAM_DIR, member)
    try:
        made = write_oof(root, name)
    except ValueError as e:
        raise TeamError(f"{ref}: its out-of-fold table cannot be assembled from its folds ({e})") from None
    said = []
    pushed = record.data.tags.get("maskcls.oof")
    if pushed and pushed != f"{name}-oof.csv":
        said = [f"its record names an out-of-fold table {pushed[:60]!r}, not {name}-oof.csv: not read"]
    elif pushed:
        with tempfile.TemporaryDirectory(prefix="maskcls-oof-") as tmp, reached(store.uri, f"pull {ref}"):
            got = Path(store.artifacts(record).download_artifacts(f"group/{name}-oof.csv", tmp))
            try:
                theirs = read_predictions_table(got, f"{ref}'s pushed out-of-fold table")
                ours = pd.read_csv(made["oof"], dtype={"person_id": str})
                same = _same_rows(theirs, ours)
            except ValueError as e:
                same, said = False, [f"its pushed out-of-fold table cannot be read ({e})"]
        if not same and not said:
            said = ["its pushed out-of-fold table differs from the one its folds' predictions make: the folds' is used"]
    return {"oof": made["oof"], "oof_f1": made["macro_f1"], "disagreements": said}


def _same_rows(a, b) -> bool:
    from maskcls.data.fingerprints import image_keys
    cols = ["person_id", "label", "fold"]
    key = lambda f: f.assign(k=image_keys(f["path"])).sort_values("k")[["k", *cols]].reset_index(drop=True)  # noqa: E731
    try:
        x, y = key(a), key(b)
        return len(x) == len(y) and (x.astype(str).to_numpy() == y.astype(str).to_numpy()).all()
    except KeyError:
        return False
