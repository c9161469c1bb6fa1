"""Throwaway local servers for the budgets and the tests that need real ones: a PostgreSQL server from Debian's
package in a temporary folder (run as `nobody` when we are root, on 127.0.0.1 only), removed when done."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


class ServerUnavailable(RuntimeError):
    """A server this machine cannot start (its package is not installed): says which command installs it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path:
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdb:
        raise ServerUnavailable("PostgreSQL is not installed here (Debian: apt-get install postgresql; .ci/run "
                                "installs it)")
    return initdb[-1].parent


@contextmanager
def throwaway_postgres(*databases: str, password: str):
    """A PostgreSQL server with `databases` created, user `maskcls` with `password`; yields (host, port, user)."""
    import signal

    import psycopg
    bindir = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="maskcls-pg-"))
    who = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        who = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    (folder / "pw").write_text(password)  # read once by initdb, removed with the folder
    subprocess.run([str(bindir / "initdb"), "-D", str(folder / "data"), "-U", "maskcls", "--auth=scram-sha-256",
                    f"--pwfile={folder / 'pw'}", "-E", "UTF8"], check=True, capture_output=True, **who)
    (folder / "pw").unlink()
    port = free_port()
    server = subprocess.Popen([str(bindir / "postgres"), "-D", str(folder / "data"), "-p", str(port), "-k", str(folder),
                               "-c", "listen_addresses=127.0.0.1"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, **who)
    try:
        conn = _connect_when_up(psycopg, port, password, server)
        for db in databases:
            conn.execute(f"CREATE DATABASE {db}")
        conn.close()
        yield "127.0.0.1", port, "maskcls"
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown of the server this context started
        server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


def _connect_when_up(psycopg, port: int, password: str, server: subprocess.Popen, wait: float = 30.0):
    end = time.time() + wait
    while True:
        try:
            return psycopg.connect(host="127.0.0.1", port=port, user="maskcls", password=password, dbname="postgres",
                                   autocommit=True)
        except psycopg.OperationalError:
            if time.time() > end or server.poll() is not None:
                raise
            time.sleep(0.3)
