"""What a store call's failure is called: the CI run of 2026-12-07 saw five members' pushes on a loaded two-core
machine fail as "did not answer within 10 s"; a request now waits a minute (or MLFLOW_HTTP_REQUEST_TIMEOUT), and a
run of 5xx answers is not called a silence."""
import pytest

from maskcls.orchestration.team.store import TIMEOUT_S, TeamError, reached, request_timeout


def test_a_request_waits_a_minute_unless_the_user_says_otherwise(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    assert request_timeout() == TIMEOUT_S >= 60
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    assert request_timeout() == 3
    for bad in ("soon", "-1", "0"):
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", bad)
        assert request_timeout() == TIMEOUT_S


def test_the_silence_message_names_the_timeout_in_force(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    with pytest.raises(TeamError, match=r"127\.0\.0\.1:5077: it did not answer within 7 s"):
        with reached("http://127.0.0.1:5077", "push 'fresh'"):
            raise ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=5077): Read timed out.")


def test_server_errors_are_not_called_a_silence():
    with pytest.raises(TeamError, match=r"server errors \(HTTP 5xx\)") as caught:
        with reached("http://127.0.0.1:5077", "push 'fresh'"):
            raise RuntimeError("API request to endpoint /api/2.0/mlflow/runs/create failed with exception "
                               "HTTPConnectionPool(host='127.0.0.1', port=5077): Max retries exceeded with url: "
                               "(Caused by ResponseError('too many 500 error responses'))")
    assert "did not answer" not in str(caught.value)


def test_a_trackers_ten_seconds_do_not_become_the_stores_and_the_users_value_wins(monkeypatch):
    """`train --push` with the MLflow tracker: the tracker's 10 s default was left in the environment, so the push
    after the run got 10 s instead of the store's minute."""
    from maskcls.common import settings
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.setattr(settings, "_MLFLOW_TIMEOUT_OURS", None)
    settings.mlflow_requests(10)  # the tracker, as a run starts
    assert request_timeout() == 10
    settings.mlflow_requests(TIMEOUT_S)  # the store, as the push after it connects
    assert request_timeout() == TIMEOUT_S
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")  # the user's own
    settings.mlflow_requests(10)
    settings.mlflow_requests(TIMEOUT_S)
    assert request_timeout() == 5


def test_the_serve_announcement_names_what_members_export_on_each_kind_of_store():
    """A store with accounts takes the member from the login and ignores MASKCLS_MEMBER: the announcement must
    not send members to a variable that does nothing (outside round, left alone until 2026-12-07)."""
    from maskcls.cli.team import members_setup
    with_accounts = members_setup("127.0.0.1", 5000, auth=True)
    assert "MASKCLS_TEAM=http://127.0.0.1:5000" in with_accounts and "MASKCLS_MEMBER" not in with_accounts
    assert "MLFLOW_TRACKING_USERNAME=<name>" in with_accounts and "team add-member" in with_accounts
    assert members_setup("127.0.0.1", 5000, auth=False) == \
        "members: export MASKCLS_TEAM=http://127.0.0.1:5000 MASKCLS_MEMBER=<name>"
