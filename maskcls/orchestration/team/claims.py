"""A group's planned runs (a ladder's rungs, a repeat group's seeds, a fold group's folds) claimed in a database
every worker reaches (the sweeps' PostgreSQL), so workers on servers with no shared folder split one group and none
trains a run twice.

A claim is a lease: one INSERT ... ON CONFLICT gives a run to exactly one worker, until `lease_until`. While the run
trains, its worker renews the lease (a heartbeat every third of the lease); a worker that dies stops renewing, and
once the lease lapses the next worker that asks takes the run over (so a killed worker's run is trained again
elsewhere). A worker started again on the same host frees its own dead claims at once (their pid and its start time
no longer name a live process). A finished run leaves its state and validation predictions in the row, so every
worker's report reads the whole group wherever it trained. The URL is stored without its password
(MASKCLS_STORAGE_PASSWORD, PGPASSWORD or ~/.pgpass on each machine).

Tables: maskcls_groups (name, kind, definition) and maskcls_claims (group_name, run, worker, host, pid, pid_start,
state, predictions, status, claimed, updated, lease_until).
"""
from __future__ import annotations

import json
import os
import socket
import threading

SCHEMA = """
CREATE TABLE IF NOT EXISTS maskcls_groups (name text PRIMARY KEY, kind text NOT NULL, definition jsonb NOT NULL,
                                           created timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS maskcls_claims (group_name text NOT NULL, run text NOT NULL, worker text NOT NULL,
                                           host text NOT NULL, state text NOT NULL, predictions text,
                                           status jsonb, claimed timestamptz NOT NULL DEFAULT now(),
                                           updated timestamptz NOT NULL DEFAULT now(),
                                           PRIMARY KEY (group_name, run));
ALTER TABLE maskcls_claims ADD COLUMN IF NOT EXISTS lease_until timestamptz;
ALTER TABLE maskcls_claims ADD COLUMN IF NOT EXISTS pid integer;
ALTER TABLE maskcls_claims ADD COLUMN IF NOT EXISTS pid_start bigint;
"""
SCHEMA_LOCK = 0x6D61736B636C73  # "maskcls": the advisory lock two workers' first connections take in turn
CONNECT_TIMEOUT_S = 10
FINAL = ("completed", "failed", "cancelled", "pruned")


def lease_seconds() -> float:
    """How long a claim holds without a heartbeat ($MASKCLS_CLAIM_LEASE_S, default 120 s): a dead worker's run is
    taken over that long after its last heartbeat."""
    try:
        return max(1.0, float(os.environ.get("MASKCLS_CLAIM_LEASE_S", 120)))
    except ValueError:
        return 120.0


class ClaimsError(ValueError):
    """The claims database cannot be used; the message names the host, never the password."""


def _connect(url: str):
    from maskcls.orchestration.sweeps.storage import shown_url, with_password
    if not url.startswith(("postgresql://", "postgres://")):
        raise ClaimsError(f"claims need a PostgreSQL URL (postgresql://USER@HOST/DB), got {shown_url(url)!r}")
    import psycopg
    try:
        return psycopg.connect(with_password(url).replace("postgresql+psycopg://", "postgresql://"),
                               connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    except psycopg.OperationalError as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        why = ("the password was refused (set MASKCLS_STORAGE_PASSWORD, PGPASSWORD or ~/.pgpass)"
               if "password" in text else f"it did not answer within {CONNECT_TIMEOUT_S} s"
               if "timeout" in text.lower() else text)
        raise ClaimsError(f"cannot reach the claims database {shown_url(url)}: {why}") from None


class Claims:
    """One connection to the claims database."""

    def __init__(self, url: str):
        from maskcls.orchestration.sweeps.storage import shown_url
        self.raw_url, self.url = url, shown_url(url)
        self.conn = _connect(url)
        self._ensure_schema()

    def _ensure_schema(self) -> None:
        """Create the tables once. Two workers' CREATE TABLE IF NOT EXISTS at the same moment on a fresh database
        collide in PostgreSQL's catalogue (a unique violation on pg_type), so the creation takes a transaction-scoped
        advisory lock: the second worker waits, then finds the tables there."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
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
        definition = json.loads(json.dumps(definition))  # as the database gives it back: tuples are lists
        self.conn.execute("INSERT INTO maskcls_groups (name, kind, definition) VALUES (%s, %s, %s) "
                          "ON CONFLICT (name) DO NOTHING", (name, kind, Jsonb(definition)))
        row = self.conn.execute("SELECT kind, definition FROM maskcls_groups WHERE name = %s", (name,)).fetchone()
        same = row is not None and row[0] == kind and {k: v for k, v in row[1].items() if k != "created"} == \
            {k: v for k, v in definition.items() if k != "created"}
        if not same:
            raise ClaimsError(f"the claims database {self.url} already holds a {row[0] if row else kind} named "
                              f"{name!r} with other steps or settings: choose another name")

    def definition(self, name: str) -> dict | None:
        row = self.conn.execute("SELECT definition FROM maskcls_groups WHERE name = %s", (name,)).fetchone()
        return row[0] if row else None

    def claim(self, group: str, run: str, worker: str) -> bool:
        """True for exactly one worker that asks for this run while no live lease holds it: a new run, or one whose
        worker stopped renewing its lease (died) and so let it lapse."""
        from maskcls.common.procs import proc_start
        lease = f"{lease_seconds()} seconds"
        row = self.conn.execute(
            "INSERT INTO maskcls_claims (group_name, run, worker, host, pid, pid_start, state, lease_until) "
            "VALUES (%s, %s, %s, %s, %s, %s, 'running', now() + %s::interval) "
            "ON CONFLICT (group_name, run) DO UPDATE SET worker = EXCLUDED.worker, host = EXCLUDED.host, "
            "pid = EXCLUDED.pid, pid_start = EXCLUDED.pid_start, state = 'running', predictions = NULL, "
            "status = NULL, claimed = now(), updated = now(), lease_until = EXCLUDED.lease_until "
            "WHERE maskcls_claims.state = 'running' AND maskcls_claims.lease_until IS NOT NULL "
            "AND maskcls_claims.lease_until < now() RETURNING run",
            (group, run, worker, socket.gethostname(), os.getpid(), proc_start(os.getpid()), lease)).fetchone()
        return row is not None

    def free_own_dead(self, group: str) -> list[str]:
        """This host's claims whose worker process is gone (a restart after a crash): their leases end now."""
        from maskcls.common.procs import proc_start
        rows = self.conn.execute("SELECT run, pid, pid_start FROM maskcls_claims WHERE group_name = %s AND "
                                 "state = 'running' AND host = %s", (group, socket.gethostname())).fetchall()
        dead = [run for run, pid, start in rows if pid is not None and (proc_start(pid) is None or
                                                                        (start and proc_start(pid) != start))]
        for run in dead:
            self.conn.execute("UPDATE maskcls_claims SET lease_until = now() - interval '1 second' WHERE "
                              "group_name = %s AND run = %s AND state = 'running'", (group, run))
        return dead

    def renew(self, group: str, run: str, worker: str) -> bool:
        """Extend this worker's lease on its run (False when it is no longer this worker's)."""
        row = self.conn.execute("UPDATE maskcls_claims SET lease_until = now() + %s::interval, updated = now() "
                                "WHERE group_name = %s AND run = %s AND worker = %s AND state = 'running' "
                                "RETURNING run", (f"{lease_seconds()} seconds", group, run, worker)).fetchone()
        return row is not None

    def finish(self, group: str, run: str, state: str, predictions: str | None, status: dict) -> None:
        from psycopg.types.json import Jsonb
        self.conn.execute("UPDATE maskcls_claims SET state = %s, predictions = %s, status = %s, updated = now(), "
                          "lease_until = NULL WHERE group_name = %s AND run = %s",
                          (state, predictions, Jsonb(json.loads(json.dumps(status, default=str))), group, run))

    def rows(self, group: str) -> dict[str, dict]:
        """run -> {worker, host, state, predictions, status, lapsed} of every claimed run of the group; `lapsed`:
        a running claim whose lease ran out (its worker stopped renewing it: it will be trained again)."""
        got = self.conn.execute("SELECT run, worker, host, state, predictions, status, "
                                "(state = 'running' AND lease_until IS NOT NULL AND lease_until < now()) "
                                "FROM maskcls_claims WHERE group_name = %s", (group,)).fetchall()
        return {r[0]: {"worker": r[1], "host": r[2], "state": "lapsed" if r[6] else r[3], "predictions": r[4],
                       "status": r[5], "lapsed": bool(r[6])} for r in got}


class Heartbeat:
    """Renews a claim's lease every third of the lease while the run trains (its own connection, a daemon thread);
    a worker that dies stops it, and the lease lapses."""

    def __init__(self, url: str, group: str, run: str, worker: str):
        self.args, self.url = (group, run, worker), url
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat {run}")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=CONNECT_TIMEOUT_S)

    def _beat(self) -> None:
        conn = None
        while not self.stop.wait(lease_seconds() / 3):
            try:
                conn = conn or Claims(self.url)
                conn.renew(*self.args)
            except Exception:  # a lost connection: try again next beat (the lease outlives two missed beats)
                conn = None
        if conn is not None:
            conn.close()


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
