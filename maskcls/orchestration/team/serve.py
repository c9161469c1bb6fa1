"""`maskcls team serve`: the MLflow server command a team's store needs, with nothing written that holds a password.

    mlflow server --backend-store-uri postgresql://USER@HOST/DB --artifacts-destination DIR --serve-artifacts
                  --host 127.0.0.1 --port 5000 [--app-name basic-auth]

The database password comes from MASKCLS_STORAGE_PASSWORD (or PGPASSWORD / ~/.pgpass, which the driver reads) and
reaches the server through its environment, never its command line. With `auth`, MLflow's basic-auth app checks
every member's user and password; its admin is MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD of the member
who serves, written only to a 0600 file that is removed once the server has read it.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def serve_command(*, host: str, port: int, artifacts: Path, auth: bool) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--artifacts-destination",
           str(artifacts), "--serve-artifacts", "--workers", "1"]
    return cmd + (["--app-name", "basic-auth"] if auth else [])


def auth_config(folder: Path) -> Path:
    """The basic-auth app's settings, its admin from this member's MLflow credentials (0600, removed after start)."""
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not user or not password:
        raise ValueError("--auth needs the admin's MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the "
                         "environment (the store's first user; add the others with MLflow's user API)")
    fd, path = tempfile.mkstemp(prefix=".auth-", suffix=".ini", dir=folder)
    with os.fdopen(fd, "w") as f:
        f.write(f"[mlflow]\ndefault_permission = EDIT\ndatabase_uri = sqlite:///{folder / 'auth.db'}\n"
                f"admin_username = {user}\nadmin_password = {password}\n"
                f"authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return Path(path)


def start_store(backend: str, artifacts: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 5000,
                auth: bool = False, wait: float = 120.0) -> subprocess.Popen:
    """Start the team store and return once it answers (its own process group, stopped by the caller)."""
    from maskcls.orchestration.sweeps.storage import shown_url, with_password
    artifacts = Path(artifacts).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": with_password(backend),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(16))}
    ini = auth_config(artifacts.parent) if auth else None
    if ini:
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
    log = open(artifacts.parent / "store.log", "ab")  # a pipe nobody reads would stall a long-running server
    proc = subprocess.Popen(serve_command(host=host, port=port, artifacts=artifacts, auth=auth), env=env,
                            start_new_session=True, stdout=log, stderr=log)
    log.close()
    try:
        end = time.time() + wait
        while not answers(f"http://{host}:{port}"):
            if proc.poll() is not None:
                err = (artifacts.parent / "store.log").read_text(errors="replace").strip().splitlines()
                raise ValueError(f"the team store did not start (backend {shown_url(backend)}): "
                                 f"{err[-1] if err else 'exit ' + str(proc.returncode)}")
            if time.time() > end:
                raise ValueError(f"the team store did not answer on {host}:{port} within {wait:.0f} s")
            time.sleep(0.5)
    finally:
        if ini:
            ini.unlink(missing_ok=True)
    return proc


def answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/health", timeout=2).status == 200
    except OSError:
        return False
