"""The team store: an MLflow tracking server one member starts (PostgreSQL behind it, artifacts served by it), that
every member's maskcls pushes runs to and pulls teammates' runs from.

Credentials come from where MLflow itself reads them (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or
~/.mlflow/credentials); maskcls never takes a password on its command line, writes one to a run folder or a log,
or shows a URI with one in it. A server that does not answer fails in seconds, naming the host.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from maskcls.common.settings import TEAM_ENV

EXPERIMENT = "maskcls-team"
TIMEOUT_S = 10  # one HTTP request to the store; MLflow's own retries are turned down to one


class TeamError(ValueError):
    """The team store cannot be used: not configured, unreachable, refusing us, or holding no such run."""


def shown(uri: str) -> str:
    """A URI safe to print: any user:password in it is left out."""
    parts = urlsplit(uri)
    if parts.password or parts.username:
        host = parts.hostname or ""
        return urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""), parts.path, "", ""))
    return uri


def team_uri(explicit: str | None = None) -> str:
    uri = explicit or os.environ.get(TEAM_ENV, "")
    if not uri:
        raise TeamError(f"no team store: give --team http://HOST:PORT or set {TEAM_ENV} (the MLflow server one member "
                        f"starts with `maskcls team serve`)")
    if not re.match(r"^https?://", uri):
        raise TeamError(f"the team store must be an MLflow server's http(s) address, got {shown(uri)!r}")
    if urlsplit(uri).password:
        raise TeamError(f"the team store address {shown(uri)!r} carries a password: leave it out and set "
                        f"MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD instead (they are never written down)")
    return uri.rstrip("/")


def member_name(explicit: str | None = None) -> str:
    from maskcls.common.settings import team_settings
    return team_settings("-", explicit)[1]


@dataclass
class TeamStore:
    """A connection to the team's MLflow server and its one experiment."""

    uri: str
    client: object
    experiment_id: str

    @classmethod
    def connect(cls, uri: str | None = None) -> "TeamStore":
        uri = team_uri(uri)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(TIMEOUT_S))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow.tracking import MlflowClient
        client = MlflowClient(uri)
        with reached(uri, "open the team's experiment"):
            exp = client.get_experiment_by_name(EXPERIMENT)
            exp_id = exp.experiment_id if exp is not None else client.create_experiment(EXPERIMENT)
        return cls(uri, client, exp_id)

    def find(self, member: str, run: str, kind: str = "run"):
        """The store's record of MEMBER's RUN (an MLflow run), or None."""
        with reached(self.uri, "look up a run"):
            found = self.client.search_runs([self.experiment_id], max_results=2, filter_string=(
                f"tags.`maskcls.member` = '{member}' and tags.`maskcls.run` = '{run}' and "
                f"tags.`maskcls.kind` = '{kind}'"))
        return found[0] if found else None

    def records(self, kind: str = "run") -> list:
        """Every record of this kind in the store, newest first (paged: a season holds thousands)."""
        out, token = [], None
        with reached(self.uri, "list the team's runs"):
            while True:
                page = self.client.search_runs([self.experiment_id], filter_string=f"tags.`maskcls.kind` = '{kind}'",
                                               max_results=1000, page_token=token, order_by=["attributes.start_time DESC"])
                out += list(page)
                token = page.token
                if not token:
                    return out


class reached:
    """Turn what a store call raises into one TeamError that names the host and what was being done."""

    def __init__(self, uri: str, doing: str):
        self.uri, self.doing = uri, doing

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None or isinstance(error, TeamError):
            return False
        text = str(error)
        host = urlsplit(self.uri).netloc
        if "401" in text or "not authenticated" in text or "403" in text:
            why = ("it refused our credentials (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or "
                   "~/.mlflow/credentials)")
        elif any(w in text for w in ("Name or service not known", "nodename nor servname", "getaddrinfo failed",
                                     "Temporary failure in name resolution", "NameResolutionError")):
            why = f"no host named {urlsplit(self.uri).hostname!r} could be found (a typo in MASKCLS_TEAM / --team?)"
        elif "Connection refused" in text or "ConnectionRefusedError" in text:
            why = "nothing listens on that port: the connection was refused (is `maskcls team serve` running there?)"
        elif any(w in text for w in ("Max retries", "timed out", "Timeout", "NewConnectionError", "ConnectionError",
                                     "Failed to establish")):
            why = f"it did not answer within {TIMEOUT_S} s (is `maskcls team serve` running there?)"
        else:
            why = f"{type(error).__name__}: {text.splitlines()[0][:200] if text else ''}"
        raise TeamError(f"could not {self.doing} on the team store at {host}: {why}") from None
