"""Where a repeat or fold group lives and what data it trained on: one's own groups in the runs root (NAME), a
teammate's pulled group in <runs root>/team/MEMBER/ (MEMBER/NAME, used like one's own); and the data fingerprint
every comparison checks, as each run fixed it when it trained (fingerprints.json), for runs and groups alike."""
from __future__ import annotations

from pathlib import Path

from maskcls.common.fileio import NAME_RE
from maskcls.common.runfolder import TEAM_DIR, RunFolder


def _groups_in(root: Path) -> set[str]:
    from maskcls.orchestration.folds import list_fold_groups, list_oof
    from maskcls.orchestration.repeats import list_repeat_groups
    return set(list_repeat_groups(root)) | set(list_oof(root)) | set(list_fold_groups(root))


def group_root(runs_root, ref: str) -> tuple[Path, str]:
    """(the folder holding the group, its name there): MEMBER/NAME is a teammate's pulled group when
    <runs root>/team/MEMBER holds a group NAME; anything else is looked up in the runs root as it is."""
    member, sep, name = str(ref).partition("/")
    if sep and NAME_RE.match(member) and NAME_RE.match(name):
        root = Path(runs_root) / TEAM_DIR / member
        if root.is_dir() and name in _groups_in(root):
            return root, name
    return Path(runs_root), ref


def pulled_groups(runs_root) -> list[str]:
    """MEMBER/NAME of every teammate's repeat or fold group pulled here."""
    team = Path(runs_root) / TEAM_DIR
    if not team.is_dir():
        return []
    return [f"{m.name}/{g}" for m in sorted(team.iterdir()) if m.is_dir() and NAME_RE.match(m.name)
            for g in sorted(_groups_in(m))]


def run_print(run: RunFolder) -> str | None:
    """The data fingerprint a run trained on: fixed in the run when it trained; for a pulled run from before that,
    its pusher's record; for a run of this machine from before, its data as it is here now; None when unknown."""
    fixed = run.read_fingerprints()
    if fixed:
        return fixed["data"]
    origin = run.pulled()
    if origin:
        return origin.get("data_fingerprint") or None
    from maskcls.data.fingerprints import data_fingerprint
    from maskcls.train.config import RunConfig
    try:
        return data_fingerprint(RunConfig.from_dict(run.read_config()))
    except (OSError, ValueError):
        return None


def group_runs(runs_root, ref: str) -> list[RunFolder] | None:
    """The runs of the repeat or fold group `ref` names (own or pulled), None when it names no group."""
    from maskcls.orchestration.folds import fold_runs, list_fold_groups, list_oof
    from maskcls.orchestration.repeats import list_repeat_groups, repeat_runs
    root, name = group_root(runs_root, ref)
    if name in list_oof(root) or name in list_fold_groups(root):
        return fold_runs(root, name, complete=False)
    if name in list_repeat_groups(root):
        return repeat_runs(root, name)
    return None


def data_print(runs_root, ref: str) -> str | None:
    """The data fingerprint of a run or a group (whose runs must share one: a group of mixed data is refused)."""
    runs = group_runs(runs_root, ref)
    if runs is None:
        run = RunFolder.open(runs_root, ref)
        return run_print(run) if run.exists() else None
    prints = {r.name: run_print(r) for r in runs}
    known = {p for p in prints.values() if p}
    if len(known) > 1:
        first = next(iter(prints))
        other = next(n for n, p in prints.items() if p and p != prints[first])
        raise ValueError(f"group {ref!r} mixes data: {first} trained on data {prints[first]}, {other} on "
                         f"{prints[other]} (a corrections file accepted between its runs?); its runs cannot be "
                         f"scored as one")
    return known.pop() if known else None


def check_same_data(runs_root, a: str, b: str) -> None:
    """Two runs or groups are compared only when they trained on the same data: the same people with the same
    labels (the data fingerprint each fixed when it trained). Different data is refused, saying which."""
    prints = [data_print(runs_root, ref) for ref in (a, b)]
    if None in prints or prints[0] == prints[1]:
        return
    where = [f"{ref} ({_origin(runs_root, ref)}data {fp})" for ref, fp in zip((a, b), prints)]
    raise ValueError(f"cannot compare {where[0]} with {where[1]}: they were trained on different data (other people "
                     f"or other labels, e.g. a corrections file one of them applied), so pairing them would score "
                     f"different labels; compare runs of the same data")


def _origin(runs_root, ref: str) -> str:
    """'pulled from alice's server, ' for a teammate's run or group: where a refused side came from."""
    member, sep, _ = str(ref).partition("/")
    return f"pulled from {member}'s server, " if sep and (Path(runs_root) / TEAM_DIR / member).is_dir() else ""


def fold_groups(runs_root) -> list[str]:
    """Every fold group usable here: one's own (NAME) and teammates' pulled (MEMBER/NAME)."""
    from maskcls.orchestration.folds import list_fold_groups
    own = list_fold_groups(runs_root)
    team = Path(runs_root) / TEAM_DIR
    pulled = [f"{m.name}/{g}" for m in sorted(team.iterdir()) if m.is_dir() and NAME_RE.match(m.name)
              for g in list_fold_groups(m)] if team.is_dir() else []
    return own + pulled


def fold_member_refs(runs_root, ref: str) -> list[str]:
    """The member refs of a fold group's runs, in fold order (MEMBER/RUN for a pulled group): what a fold ensemble
    and `predict --folds` use. Every fold must have completed."""
    from maskcls.orchestration.folds import fold_runs
    root, name = group_root(runs_root, ref)
    prefix = f"{ref.split('/')[0]}/" if name != ref else ""
    return [prefix + r.name for r in fold_runs(root, name)]


def read_group_oof(runs_root, ref: str):
    """A fold group's out-of-fold table (own or pulled)."""
    from maskcls.orchestration.folds import read_oof
    return read_oof(*group_root(runs_root, ref))


def has_oof(runs_root, ref: str) -> bool:
    from maskcls.orchestration.folds import list_oof
    root, name = group_root(runs_root, ref)
    return name in list_oof(root)
