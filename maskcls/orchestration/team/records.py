"""What the team store holds, as rows: every member's runs and groups, their claimed figures (recomputed on pull)
and whether they are pulled here; a record that cannot be shown is named, never fatal."""
from __future__ import annotations

from maskcls.common.runfolder import RunFolder
from maskcls.orchestration.team.pull import pulled_folder
from maskcls.orchestration.team.store import TeamStore


def team_rows(store: TeamStore, runs_root, skipped: list | None = None) -> list[dict]:
    """One row per record: member, run, state, macro F1 and interval (as its pusher claims them: recomputed on
    pull), fingerprints, pulled here or not. A record that cannot be shown (a member named `../../etc`, an F1
    that is no number in [0, 1]) is left out and named in `skipped`, never fatal to the listing."""
    rows = []
    for r in store.records():
        try:
            check_owner(r)
            rows.append(_team_row(r.data.tags, runs_root))
        except (ValueError, TypeError) as e:
            if skipped is not None:
                skipped.append(f"record {r.info.run_id}: {e}")
    return rows


def check_owner(record) -> None:
    """A record counts as MEMBER's only in MEMBER's own experiment (which only MEMBER may write): one whose member
    tag names someone else (bob's record saying it is alice's) is refused. Records of the legacy shared experiment
    (earlier versions, no owner) keep their tag."""
    owner, member = getattr(record, "owner", ""), record.data.tags.get("maskcls.member", "")
    if owner and member != owner:
        raise ValueError(f"it says it is {member[:40]!r}'s but lies in {owner!r}'s experiment (only {owner!r} writes "
                         f"there): not shown as {member[:40]!r}'s")


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




def team_group_rows(store: TeamStore, skipped: list | None = None) -> list[dict]:
    """One row per pushed repeat or fold group: member, name, kind and its runs."""
    rows = []
    for r in store.records(kind="group"):
        try:
            check_owner(r)
            t = r.data.tags
            rows.append({"member": t.get("maskcls.member", ""), "group": t.get("maskcls.run", ""),
                         "ref": f"{t.get('maskcls.member', '')}/{t.get('maskcls.run', '')}",
                         "kind": t.get("maskcls.group_kind"), "runs": [n for n in t.get("maskcls.runs", "").split(",")
                                                                       if n], "oof": bool(t.get("maskcls.oof"))})
        except (ValueError, TypeError) as e:
            if skipped is not None:
                skipped.append(f"record {r.info.run_id}: {e}")
    return rows
