"""A run trained with `team=true` (or the Train form's checkbox) pushes itself to the team store when it ends; a
store that cannot be reached leaves a warning in the run's log, never a failed run."""
from __future__ import annotations


def push_if_asked(run) -> bool:
    """Push `run` when its config asks for it and it completed; True when it was pushed."""
    try:
        cfg = run.read_config()
    except (OSError, ValueError):
        return False
    if not cfg.get("team") or run.state()["state"] != "completed":
        return False
    from maskcls.orchestration.team.store import TeamStore, member_name
    from maskcls.orchestration.team.push import push_run
    try:
        done = push_run(TeamStore.connect(), run, member_name())
    except (ValueError, OSError) as e:
        run.log(f"WARNING: not pushed to the team store ({e}); push it later with `maskcls team push {run.name}`")
        return False
    run.log(f"pushed to the team store as {done['member']}/{done['run']} (version {done['version']})")
    return True
