"""Where a sweep's study lives: an Optuna storage URL (SQLite in the runs root by default, or a database the workers
of several machines share), its password (used, never stored), and opening it without hanging on a silent host.
"""
from __future__ import annotations

import os
from pathlib import Path

from maskcls.orchestration.sweeps.space import SweepError

HEARTBEAT_S, GRACE_S = 10, 30  # a worker's heartbeat; another machine's lost trial fails after the grace period


PASSWORD_ENV = "MASKCLS_STORAGE_PASSWORD"  # the storage's password, never written to sweep.json or a command line


def _parsed(url: str):
    """The URL as SQLAlchemy reads it, None when it is not one (then open_storage refuses it by name)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        return None


def split_password(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password or None): what a sweep may store and show to `ps`."""
    from sqlalchemy.engine import URL
    u = _parsed(url)
    if u is None or u.password is None:
        return url, None
    plain = URL.create(u.drivername, u.username, None, u.host, u.port, u.database, u.query)
    return plain.render_as_string(hide_password=False), str(u.password)


def with_password(url: str) -> str:
    """A stored URL with a user and no password, completed from MASKCLS_STORAGE_PASSWORD when it is set
    (PostgreSQL's driver also reads PGPASSWORD and ~/.pgpass by itself)."""
    password = os.environ.get(PASSWORD_ENV)
    u = _parsed(url) if password else None
    if u is None or not u.username or u.password is not None:
        return url
    return u.set(password=password).render_as_string(hide_password=False)



def shown_url(url: str) -> str:
    """A storage URL fit to print: the password hidden."""
    u = _parsed(url)
    return url if u is None else u.render_as_string(hide_password=True)


def _quiet_optuna():
    """Optuna's INFO lines and its 'experimental feature' warnings (heartbeats) are not the user's business."""
    import warnings

    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


TIMEOUT_ENV = "MASKCLS_STORAGE_TIMEOUT"  # seconds to wait for a database server to answer (default 10)


def connect_timeout() -> int:
    try:
        return max(1, int(os.environ.get(TIMEOUT_ENV, "10")))
    except ValueError:
        return 10


def open_storage(url: str, create: bool = False):
    """The RDBStorage at `url` (a SweepError naming the host and the way on when it cannot be opened). A SQLite
    file that does not exist is made only by a sweep's creation (`create`): elsewhere a mistyped path would
    leave an empty database behind and look for the study in it."""
    import optuna
    _quiet_optuna()
    if url.startswith("sqlite") and not create:
        file = url.split("sqlite:///", 1)[-1]
        if file and file != ":memory:" and not Path(file).is_file():
            raise SweepError(f"no sweep storage at {shown_url(url)}: the file {file} does not exist (mistyped "
                             f"--storage? `maskcls sweep list` shows the sweeps of this runs root)")
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    else:  # a host that accepts and never answers must not hang a command or a page draw
        kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": connect_timeout()}}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S,
                                          grace_period=GRACE_S)
    except Exception as e:  # a bad URL, a missing driver, a server that does not answer
        raise SweepError(storage_failure(url, e)) from None


def storage_failure(url: str, e: BaseException) -> str:
    """Why the storage could not be opened, naming the host, with the way on for the usual causes."""
    text = str(e).splitlines()[0] if str(e) else ""
    u = _parsed(url)
    where = f" (host {u.host}:{u.port or 5432})" if u is not None and u.host else ""
    if "timeout" in text.lower() or "timed out" in text.lower():
        return (f"cannot reach the sweep storage {shown_url(url)}{where}: no answer within {connect_timeout()} s "
                f"(is the database server running there, and is this the right port? {TIMEOUT_ENV} sets the wait)")
    if "no password supplied" in text or "password authentication failed" in text:
        return (f"cannot open the sweep storage {shown_url(url)}{where}: {text}. Give the password on each machine in "
                f"{PASSWORD_ENV} (or PGPASSWORD, or ~/.pgpass); it is never stored in sweep.json")
    return f"cannot open the sweep storage {shown_url(url)}{where}: {type(e).__name__}: {text}"


