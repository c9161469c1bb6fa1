"""`maskcls team add-member NAME`: the store's admin gives a teammate an account (MLflow basic auth) and the
experiment only they write (maskcls-team/NAME, MANAGE for them, READ for everyone by the store's default), so who
pushed a record is who logged in, and the permission is MLflow's own, not a check a client could skip.

The new member's password comes from MASKCLS_NEW_MEMBER_PASSWORD (never a command-line argument, never written).
An experiment of that name that someone else created before the member existed (a squatter) is renamed away first.
"""
from __future__ import annotations

import os

from maskcls.common.fileio import check_name
from maskcls.orchestration.team.store import PREFIX, TeamError, TeamStore, reached

PASSWORD_ENV = "MASKCLS_NEW_MEMBER_PASSWORD"


def auth_client(store: TeamStore):
    from maskcls.common.settings import quiet_mlflow
    quiet_mlflow()
    from mlflow.server.auth.client import AuthServiceClient
    return AuthServiceClient(store.uri)


def add_member(store: TeamStore, name: str) -> dict:
    """Create NAME's account (when new) and experiment, and grant NAME MANAGE on it; returns what was done."""
    name = check_name(name, "member name")
    if not store.auth:
        raise TeamError("this team store does not check who calls it (started without --auth): members need no "
                        "account there; restart it with `maskcls team serve --auth` for accounts and permissions")
    if not store.is_admin():
        raise TeamError(f"only the team store's admin adds members, and you are {store.user!r} on it, not its admin: "
                        f"ask the one who started `maskcls team serve --auth`")
    password = os.environ.get(PASSWORD_ENV, "")
    client = auth_client(store)
    with reached(store.uri, f"add member {name!r}"):
        existed = _user_exists(client, name)
        if not existed:
            if len(password) < 12:
                raise TeamError(f"set {PASSWORD_ENV} to the new member's password (12 characters or more, as MLflow asks; it is sent "
                                f"to the store once and never written down), then run this again")
            client.create_user(name, password)
        exp = store.client.get_experiment_by_name(PREFIX + name)
        renamed = None
        if exp is not None and not existed:  # made before its member existed: not theirs
            renamed = f"maskcls-unclaimed/{name}-{exp.experiment_id}"
            store.client.rename_experiment(exp.experiment_id, renamed)
            exp = None
        exp_id = exp.experiment_id if exp is not None else store.client.create_experiment(PREFIX + name)
        granted = _grant_manage(client, name, exp_id)
    return {"member": name, "account": "existed" if existed else "created", "experiment": PREFIX + name,
            "already_member": existed and not granted,
            "experiment_id": exp_id, "renamed_away": renamed}


def _grant_manage(client, name: str, exp_id: str) -> bool:
    """MANAGE on the experiment for its member; False when they hold a permission on it already (it is then made
    MANAGE, whatever it was)."""
    from mlflow.exceptions import RestException
    try:
        client.grant_user_permission(name, "experiment", exp_id, "MANAGE")
        return True
    except RestException as e:
        if "RESOURCE_ALREADY_EXISTS" not in str(e):
            raise
        held = client.get_user_permission(name, "experiment", exp_id).permission
        if held != "MANAGE":  # MLflow's client has no update of a user's grant: revoke, then grant anew
            client.revoke_user_permission(name, "experiment", exp_id)
            client.grant_user_permission(name, "experiment", exp_id, "MANAGE")
        return False


def _user_exists(client, name: str) -> bool:
    from mlflow.exceptions import RestException
    try:
        client.get_user(name)
        return True
    except RestException as e:
        if "RESOURCE_DOES_NOT_EXIST" in str(e) or "not found" in str(e).lower():
            return False
        raise
