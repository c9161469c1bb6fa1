"""`maskcls team serve`: the MLflow server command a team's store needs, with nothing written that holds a password.

    mlflow server --backend-store-uri postgresql://USER@HOST/DB --artifacts-destination DIR --serve-artifacts
                  --host 127.0.0.1 --port 5000 [--app-name basic-auth]

The database password comes from MASKCLS_STORAGE_PASSWORD (or PGPASSWORD / ~/.pgpass, which the driver reads) and
reaches the server through its environment, never its command line. With `auth`, MLflow's basic-auth app checks
every member's user and password; its admin is MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD of the member
who serves, written only to a 0600 file that is removed once the server has read it. Everyone reads everything
(MLflow's default permission READ); each member writes only the experiment of their own records, which they (or
`maskcls team add-member`) created and so MANAGE. The server's own files (auth.db, its log) live in
<artifacts>-server/, readable by its owner only.
"""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


WORKERS = 4  # the store's server processes: a push and a pull never wait behind another member's password check


def serve_command(*, host: str, port: int, artifacts: Path, auth: bool) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--artifacts-destination",
           str(artifacts), "--serve-artifacts", "--workers", str(WORKERS)]
    return cmd + (["--app-name", "basic-auth"] if auth else [])


def state_folder(artifacts: Path) -> Path:
    """The store's own files (auth.db: the members' password hashes; its log) in a folder of their own beside the
    artifacts, readable by its owner only (0700; the files 0600)."""
    folder = artifacts.parent / f"{artifacts.name}-server"
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def auth_config(folder: Path) -> Path:
    """The basic-auth app's settings, its admin from this member's MLflow credentials (0600, removed after start)."""
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not user or not password:
        raise ValueError("--auth needs the admin's MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the "
                         "environment (the store's first user; add the others with MLflow's user API)")
    fd, path = tempfile.mkstemp(prefix=".auth-", suffix=".ini", dir=folder)
    with os.fdopen(fd, "w") as f:
        f.write(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{folder / 'auth.db'}\n"
                f"admin_username = {user}\nadmin_password = {password}\n"
                f"authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return Path(path)


def check_port(host: str, port: int) -> None:
    """A port that is out of range or already taken is refused before a server starts: on a taken port the
    readiness check would hear the other server and tell teammates to push into it."""
    import socket
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"--port must be a whole number from 1 to 65535, got {port!r}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a closed one's TIME_WAIT is free
        try:
            s.bind((host, port))
        except OSError as e:
            raise ValueError(f"{host}:{port} is already in use or cannot be bound ({e.strerror}): another team store "
                             f"or server is there; stop it or choose another --port") from None


def failure_line(text: str) -> str:
    """The line of a server's log that says why it stopped: the last exception line, not SQLAlchemy's footer."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.search(r"(Error|Exception|refused|denied|No such)\b", ln) and not ln.startswith("(Background"):
            return ln
    return lines[-1] if lines else ""


def check_backend(backend: str) -> None:
    """A PostgreSQL backend the store cannot reach is named before MLflow starts (it would retry for minutes
    behind a port that never answers)."""
    from maskcls.orchestration.sweeps.storage import connect_timeout, shown_url, with_password
    if not backend.startswith(("postgresql://", "postgres://")):
        return
    import psycopg
    try:
        psycopg.connect(with_password(backend), connect_timeout=connect_timeout()).close()
    except psycopg.Error as e:
        why = " ".join(str(e).split())[:300]
        raise ValueError(f"the team store's database at {shown_url(backend)} cannot be reached: {why}") from None


def start_store(backend: str, artifacts: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 5000,
                auth: bool = False, wait: float = 120.0, started: list | None = None) -> subprocess.Popen:
    """Start the team store and return once it answers (its own process group, stopped by the caller); a store
    that stops or never answers is stopped and named with the line of its log that says why. `started` gets the
    process as soon as it exists, so a caller interrupted between any two lines still knows what to stop."""
    from maskcls.orchestration.sweeps.storage import shown_url, with_password
    check_port(host, port)
    check_backend(backend)
    artifacts = Path(artifacts).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": with_password(backend),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(16)),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true")}  # its job runners (GenAI jobs): six processes a store never uses
    state = state_folder(artifacts)
    ini = auth_config(state) if auth else None
    if ini:
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
    log_path = state / "store.log"
    log = open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")  # read by its owner only
    start = log.tell()
    proc = subprocess.Popen(serve_command(host=host, port=port, artifacts=artifacts, auth=auth), env=env,
                            start_new_session=True, stdout=log, stderr=log)
    if started is not None:
        started.append(proc)
    log.close()

    def this_start(raw: bool = False) -> str:
        with open(log_path, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        return text if raw else failure_line(text)
    try:
        end = time.time() + wait
        while not (proc.poll() is None and answers(f"http://{host}:{port}")):
            if proc.poll() is not None or "Traceback (most recent call last)" in this_start(raw=True):
                # its workers may live on after the app failed (a database it cannot reach): not worth waiting for
                raise ValueError(f"the team store did not start (backend {shown_url(backend)}): "
                                 f"{this_start() or 'exit ' + str(proc.returncode)}")
            if time.time() > end:
                raise ValueError(f"the team store did not answer on {host}:{port} within {wait:.0f} s "
                                 f"({this_start() or 'nothing in its log'})")
            time.sleep(0.5)
    except BaseException:
        stop_store(proc)
        raise
    finally:
        if ini:
            ini.unlink(missing_ok=True)
    if (state / "auth.db").exists():
        os.chmod(state / "auth.db", 0o600)  # the members' password hashes: the owner's alone
    return proc


def stop_store(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM the store's process group (start_store made it and proc leads it), SIGKILL after `grace`."""
    import signal
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/health", timeout=2).status == 200
    except OSError:
        return False
