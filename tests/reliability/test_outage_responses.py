"""Which errors become a 503, and through which door, with DEBUG on and off (config/outages.py).

The fault suite (test_faults.py) stops real servers; these tests pin the mapping itself: an
outage raised in a view, in a middleware (the API gateway authenticating) or while loading the
session becomes 503 `service_unavailable` (JSON under /api/, the 503 page elsewhere), and any
other exception stays a 500. Each error is raised at Django's database boundary — a
`connection.execute_wrapper` failing the statements on one table — so the code under test runs
exactly as it does when the server goes away; which table picks the layer it surfaces in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from http import HTTPStatus

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.test import Client
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.counters import CounterUnavailable

pytestmark = pytest.mark.django_db

OUTAGES = [
    OperationalError("connection refused"),
    InterfaceError("connection already closed"),
    RedisConnectionError("Error 111 connecting to 127.0.0.1:6379."),
    RedisTimeoutError("Timeout reading from socket"),
    CounterUnavailable("redis down"),
]


@contextlib.contextmanager
def failing(table: str, exc: BaseException) -> Iterator[None]:
    """Every statement touching `table` raises `exc`, as a driver does when its server is gone."""

    def execute(execute, sql, params, many, context):
        if f'"{table}"' in sql:
            raise exc
        return execute(sql, params, many, context)

    with connection.execute_wrapper(execute):
        yield


@pytest.fixture(params=[False, True], ids=["DEBUG=0", "DEBUG=1"])
def debug(request, settings) -> bool:
    settings.DEBUG = request.param
    return request.param


def _client(user=None) -> Client:
    # Django's test client re-raises a request's exception by default; a real server does not.
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def _assert_api_503(response) -> None:
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "service_unavailable"
    assert response["Retry-After"] == "5"


def _assert_page_503(response) -> None:
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert "Gatehouse is temporarily unavailable" in body
    assert "Traceback" not in body


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
def test_outage_in_an_api_view_is_503_json(debug, exc, token) -> None:
    with failing("passports_passport", exc):
        response = _client().get(
            "/api/v1/passports", headers={"Authorization": f"Bearer {token}"}
        )
    _assert_api_503(response)
    assert response["X-Request-Id"].startswith("req_")


@pytest.mark.parametrize("exc", OUTAGES[:3], ids=lambda e: type(e).__name__)
def test_outage_in_the_gateway_middleware_is_503_json(debug, exc, token) -> None:
    """Raised while the gateway looks the key up (process_view), outside any view."""
    with failing("apikeys_apikey", exc):  # a key this process has not cached yet
        response = _client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    _assert_api_503(response)


@pytest.mark.parametrize("exc", OUTAGES[:3], ids=lambda e: type(e).__name__)
def test_outage_in_a_dashboard_view_is_the_503_page(debug, exc, members) -> None:
    client = _client(members["owner"])
    with failing("apikeys_apikey", exc):  # the session and the user load; the key list fails
        response = client.get("/w/acme/settings/api-keys/")
    _assert_page_503(response)


def test_outage_loading_the_session_is_the_503_page(debug, members) -> None:
    """`request.user` is loaded lazily from the session by a middleware-set attribute."""
    client = _client(members["owner"])
    with failing("django_session", OperationalError("the database system is shutting down")):
        response = client.get("/w/acme/settings/api-keys/")
    _assert_page_503(response)


def test_a_wrapped_outage_is_an_outage(debug, token) -> None:
    try:
        raise OperationalError("server closed the connection unexpectedly")
    except OperationalError as cause:
        wrapped = RuntimeError("while verifying")
        wrapped.__cause__ = cause
    with failing("passports_passport", wrapped):
        response = _client().get(
            "/api/v1/passports", headers={"Authorization": f"Bearer {token}"}
        )
    _assert_api_503(response)


def test_any_other_error_stays_a_500(settings, token) -> None:
    settings.DEBUG = False
    with failing("passports_passport", ValueError("a bug")):
        response = _client().get(
            "/api/v1/passports", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert response.json()["error"] == "server_error"


def test_the_503_is_logged_as_a_warning_without_credentials(caplog, token) -> None:
    with failing("passports_passport", OperationalError("refused")):
        _client().get("/api/v1/passports", headers={"Authorization": f"Bearer {token}"})
    records = [r for r in caplog.records if r.name == "gatehouse.outages"]
    assert [r.levelname for r in records] == ["WARNING"]
    assert (
        "GET /api/v1/passports: database unavailable (OperationalError: refused)"
        in records[0].message
    )
    assert token not in caplog.text
