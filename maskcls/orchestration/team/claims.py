"""A group's planned runs claimed in a database every worker reaches (the sweeps' PostgreSQL), so workers on
servers with no shared folder split one ladder and none trains a run twice.

Each claim is one INSERT ... ON CONFLICT DO NOTHING: exactly one worker gets a run. A finished run leaves its state
and its validation predictions in the row, so the ladder's report reads every rung wherever it trained. The URL is
stored without its password (MASKCLS_STORAGE_PASSWORD, PGPASSWORD or ~/.pgpass on each machine).

Tables: maskcls_groups (name, kind, definition) and maskcls_claims (group_name, run, worker, host, state,
predictions, status, claimed, updated).
"""
from __future__ import annotations

import json
import os
import socket

SCHEMA = """
CREATE TABLE IF NOT EXISTS maskcls_groups (name text PRIMARY KEY, kind text NOT NULL, definition jsonb NOT NULL,
                                           created timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS maskcls_claims (group_name text NOT NULL, run text NOT NULL, worker text NOT NULL,
                                           host text NOT NULL, state text NOT NULL, predictions text,
                                           status jsonb, claimed timestamptz NOT NULL DEFAULT now(),
                                           updated timestamptz NOT NULL DEFAULT now(),
                                           PRIMARY KEY (group_name, run));
"""
CONNECT_TIMEOUT_S = 10


class ClaimsError(ValueError):
    """The claims database cannot be used; the message names the host, never the password."""


class Claims:
    """One connection to the claims database."""

    def __init__(self, url: str):
        from maskcls.orchestration.sweeps.storage import shown_url, with_password
        if not url.startswith(("postgresql://", "postgres://")):
            raise ClaimsError(f"claims need a PostgreSQL URL (postgresql://USER@HOST/DB), got {shown_url(url)!r}")
        import psycopg
        self.url = shown_url(url)
        try:
            self.conn = psycopg.connect(with_password(url).replace("postgresql+psycopg://", "postgresql://"),
                                        connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        except psycopg.OperationalError as e:
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            why = ("the password was refused (set MASKCLS_STORAGE_PASSWORD, PGPASSWORD or ~/.pgpass)"
                   if "password" in text else f"it did not answer within {CONNECT_TIMEOUT_S} s"
                   if "timeout" in text.lower() else text)
            raise ClaimsError(f"cannot reach the claims database {self.url}: {why}") from None
        self.conn.execute(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def publish(self, name: str, kind: str, definition: dict) -> None:
        """Make a group known to every worker; the same name with another definition is refused."""
        from psycopg.types.json import Jsonb
        self.conn.execute("INSERT INTO maskcls_groups (name, kind, definition) VALUES (%s, %s, %s) "
                          "ON CONFLICT (name) DO NOTHING", (name, kind, Jsonb(definition)))
        stored = self.definition(name)
        if {k: v for k, v in stored.items() if k != "created"} != {k: v for k, v in definition.items()
                                                                   if k != "created"}:
            raise ClaimsError(f"the claims database {self.url} already holds a {kind} named {name!r} with other "
                              f"steps or settings: choose another name")

    def definition(self, name: str) -> dict | None:
        row = self.conn.execute("SELECT definition FROM maskcls_groups WHERE name = %s", (name,)).fetchone()
        return row[0] if row else None

    def claim(self, group: str, run: str, worker: str) -> bool:
        """True for exactly one worker that asks for this run."""
        row = self.conn.execute("INSERT INTO maskcls_claims (group_name, run, worker, host, state) "
                                "VALUES (%s, %s, %s, %s, 'running') ON CONFLICT DO NOTHING RETURNING run",
                                (group, run, worker, socket.gethostname())).fetchone()
        return row is not None

    def finish(self, group: str, run: str, state: str, predictions: str | None, status: dict) -> None:
        from psycopg.types.json import Jsonb
        self.conn.execute("UPDATE maskcls_claims SET state = %s, predictions = %s, status = %s, updated = now() "
                          "WHERE group_name = %s AND run = %s", (state, predictions, Jsonb(json.loads(json.dumps(
                              status, default=str))), group, run))

    def rows(self, group: str) -> dict[str, dict]:
        """run -> {worker, host, state, predictions, status} of every claimed run of the group."""
        got = self.conn.execute("SELECT run, worker, host, state, predictions, status FROM maskcls_claims "
                                "WHERE group_name = %s", (group,)).fetchall()
        return {r[0]: {"worker": r[1], "host": r[2], "state": r[3], "predictions": r[4], "status": r[5]} for r in got}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
