"""The team store: an MLflow tracking server one member starts (PostgreSQL behind it, artifacts served by it), that
every member's maskcls pushes runs to and pulls teammates' runs from.

Credentials come from where MLflow itself reads them (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or
~/.mlflow/credentials); maskcls never takes a password on its command line, writes one to a run folder or a log,
or shows a URI with one in it. A server that does not answer fails in seconds, naming the host.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from maskcls.common.settings import TEAM_ENV

EXPERIMENT = "maskcls-team"
TIMEOUT_S = 60  # one HTTP request to the store: a bundle over a slow link, or five members at once on a small server


def request_timeout() -> float:
    """Seconds one request to the store may take: MLFLOW_HTTP_REQUEST_TIMEOUT where the user set it (MLflow reads
    the same variable), else TIMEOUT_S. A store that is down refuses at once; this bounds one that hangs."""
    try:
        value = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or TIMEOUT_S)
    except ValueError:
        return TIMEOUT_S
    return value if value > 0 else TIMEOUT_S


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


PREFIX = EXPERIMENT + "/"  # one experiment per member: maskcls-team/alice holds alice's records, writable by her alone


def has_auth(uri: str) -> bool:
    """Whether the store checks who calls it (MLflow's basic-auth app): a request without credentials is refused."""
    import urllib.error
    import urllib.request
    try:
        urllib.request.urlopen(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=request_timeout())
        return False
    except urllib.error.HTTPError as e:
        return e.code in (401, 403)
    except OSError:
        return False  # unreachable: the first real call says so, naming the host


@dataclass
class TeamStore:
    """A connection to the team's MLflow server: every member's experiment to read, one's own to write. What the
    store holds is asked once per command (each request pays the store's password check)."""

    uri: str
    client: object
    legacy: str = ""  # unused, kept for callers of earlier versions' signature
    auth: bool = False
    user: str | None = None  # who the store knows this caller as (basic auth), None without auth
    _exps: dict | None = field(default=None, repr=False)

    @classmethod
    def connect(cls, uri: str | None = None) -> "TeamStore":
        uri = team_uri(uri)
        from maskcls.common.settings import mlflow_requests, quiet_mlflow
        mlflow_requests(TIMEOUT_S)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        quiet_mlflow()
        from mlflow.tracking import MlflowClient
        auth = has_auth(uri)  # one request without credentials: no password check
        return cls(uri, MlflowClient(uri), "", auth, os.environ.get("MLFLOW_TRACKING_USERNAME") if auth else None)

    @property
    def experiment_id(self) -> str:
        """The legacy shared experiment (records of earlier versions; read only), "" when there is none."""
        return next((i for i, m in self.experiments().items() if m == ""), "")

    def member_for(self, asked: str | None) -> str:
        """Who pushes: with auth, the user the store knows (`--member` may only repeat it); without, the name given
        (`--member` or MASKCLS_MEMBER), which nothing checks: said in `team list`."""
        from maskcls.common.fileio import check_name
        if self.auth:
            if not self.user:
                raise TeamError("the team store checks who you are: set MLFLOW_TRACKING_USERNAME and "
                                "MLFLOW_TRACKING_PASSWORD (your account on it)")
            if asked and asked != self.user:
                raise TeamError(f"the team store checks who you are: you are {self.user!r} on it, so you push as "
                                f"{self.user!r}, never as {asked!r} (--member only repeats your name there)")
            return check_name(self.user, "member name")
        return member_name(asked)

    def own_experiment(self, member: str) -> str:
        """The experiment of `member`'s records; without auth (or for the admin) created when it is missing."""
        name = PREFIX + member
        found = next((i for i, m in self.experiments().items() if m == member), None)
        if found is not None:
            return found
        with reached(self.uri, f"open {member}'s experiment"):
            exp = self.client.get_experiment_by_name(name)  # made since we looked
            if exp is not None:
                return exp.experiment_id
            if self.auth and not self.is_admin():
                raise TeamError(f"the team store holds no experiment of yours ({name}) yet: ask its admin to run "
                                f"`maskcls team add-member {member}` (only the admin makes members' experiments, so "
                                f"no one can take another's name)")
            exp_id = self.client.create_experiment(name)
        self._exps[exp_id] = member
        return exp_id

    def is_admin(self) -> bool:
        """Whether the caller is the store's basic-auth admin."""
        import base64
        import json
        import urllib.parse
        import urllib.request
        login = f"{self.user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
        req = urllib.request.Request(f"{self.uri}/api/2.0/mlflow/users/get?"
                                     f"{urllib.parse.urlencode({'username': self.user or ''})}",
                                     headers={"Authorization": "Basic " + base64.b64encode(login).decode()})
        try:  # one plain request: MLflow's auth client would import its whole server first (seconds)
            with urllib.request.urlopen(req, timeout=request_timeout()) as r:
                return bool(json.loads(r.read(1 << 20)).get("user", {}).get("is_admin"))
        except (OSError, ValueError):
            return False

    def experiments(self) -> dict[str, str]:
        """experiment id -> member ("" for the legacy shared experiment) of every member's records (asked once)."""
        if self._exps is None:
            with reached(self.uri, "list the team's experiments"):
                found = self.client.search_experiments(filter_string=f"name LIKE '{EXPERIMENT}%'", max_results=1000)
            self._exps = {}
            for e in found:
                if e.name == EXPERIMENT:
                    self._exps[e.experiment_id] = ""
                elif e.name.startswith(PREFIX):
                    self._exps[e.experiment_id] = e.name[len(PREFIX):]
        return self._exps

    def find(self, member: str, run: str, kind: str = "run"):
        """The store's record of MEMBER's RUN (an MLflow run) in MEMBER's experiment (or the legacy one), or None."""
        exps = [i for i, m in self.experiments().items() if m in (member, "")]
        if not exps:
            return None
        with reached(self.uri, "look up a run"):
            found = self.client.search_runs(exps, max_results=2, filter_string=(
                f"tags.`maskcls.member` = '{member}' and tags.`maskcls.run` = '{run}' and "
                f"tags.`maskcls.kind` = '{kind}'"))
        return found[0] if found else None

    def artifacts(self, record):
        """The record's artifact store, reached directly (no request to look the run up again)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        return get_artifact_repository(record.info.artifact_uri, tracking_uri=self.uri)

    def records(self, kind: str = "run") -> list:
        """Every record of this kind in every member's experiment, newest first (paged: a season holds
        thousands); each carries `.owner`, the member whose experiment holds it."""
        exps = self.experiments()
        if not exps:
            return []
        out, token = [], None
        with reached(self.uri, "list the team's runs"):
            while True:
                page = self.client.search_runs(list(exps), filter_string=f"tags.`maskcls.kind` = '{kind}'",
                                               max_results=1000, page_token=token, order_by=["attributes.start_time DESC"])
                for r in page:
                    r.owner = exps.get(r.info.experiment_id, "")
                    out.append(r)
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
        if "403" in text or "PERMISSION_DENIED" in text or "Permission denied" in text:
            why = ("it refused: you may read every member's records but write only your own (MLflow's permissions "
                   "on the team store)")
        elif "401" in text or "not authenticated" in text:
            why = ("it refused our credentials (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or "
                   "~/.mlflow/credentials)")
        elif any(w in text for w in ("Name or service not known", "nodename nor servname", "getaddrinfo failed",
                                     "Temporary failure in name resolution", "NameResolutionError")):
            why = f"no host named {urlsplit(self.uri).hostname!r} could be found (a typo in MASKCLS_TEAM / --team?)"
        elif "Connection refused" in text or "ConnectionRefusedError" in text:
            why = "nothing listens on that port: the connection was refused (is `maskcls team serve` running there?)"
        elif "error responses" in text or "ResponseError" in text:  # urllib3 gave up on the server's 5xx answers
            why = "it answered with server errors (HTTP 5xx) again and again: its log (`maskcls team serve`) says why"
        elif any(w in text for w in ("Max retries", "timed out", "Timeout", "NewConnectionError", "ConnectionError",
                                     "Failed to establish")):
            why = f"it did not answer within {request_timeout():g} s (is `maskcls team serve` running there?)"
        elif any(w in text for w in ("404", "NOT_FOUND", "No such file", "does not exist", "not found")):
            why = ("the store no longer holds a file its record names (removed on the server?): ask its owner to "
                   "push it again")
        else:  # the whole text on one line: MLflow's first line often ends in a colon, its reason after it
            why = f"{type(error).__name__}: {' '.join(text.split())[:300]}"
        raise TeamError(f"could not {self.doing} on the team store at {host}: {why}") from None
