"""Through a real gunicorn with two worker processes on the test database: a revocation is
refused by the very next request on another process (SPEC §3), and raw bad headers that the test
client cannot send (duplicates, non-ASCII bytes, 8 KiB lines) still get JSON answers."""

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from http import HTTPStatus

import pytest

from apikeys.services import apikey_pause, apikey_resume, apikey_revoke
from tests.factories import by
from tests.servers import gunicorn


@pytest.fixture
def server(transactional_db) -> Iterator[str]:
    """gunicorn with two worker processes on the test database (and the same cache)."""
    with gunicorn(workers=2) as base:
        yield base


def _get(url: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_revocation_and_pause_are_seen_by_the_next_request_on_another_process(
    server, make_key, members
) -> None:
    key, token = make_key()
    me = f"{server}/api/v1/me"
    for _ in range(6):  # both workers have served (and could have cached) this key
        status, body = _get(me, token)
        assert status == HTTPStatus.OK, body

    apikey_pause(key=key, **by(members["admin"]))
    for _ in range(6):
        assert _get(me, token) == (HTTPStatus.UNAUTHORIZED, {
            "error": "key_paused",
            "message": "This API key is paused; a workspace admin can resume it in the "
                       "dashboard.",
        })
    apikey_resume(key=key, **by(members["admin"]))
    assert _get(me, token)[0] == HTTPStatus.OK

    apikey_revoke(key=key, **by(members["admin"]))
    for _ in range(6):
        status, body = _get(me, token)
        assert status == HTTPStatus.UNAUTHORIZED
        assert body["error"] == "key_revoked"


def _raw_get(base: str, headers: list[tuple[str, bytes]]) -> tuple[int, str, dict]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", "/api/v1/me")
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), json.loads(response.read())
    finally:
        conn.close()


def test_raw_bad_authorization_headers_get_json_through_gunicorn(server, token) -> None:
    cases = {
        "8 KiB": ([("Authorization", b"Bearer " + b"A" * 8192)], 401, "invalid_credentials"),
        "non-ASCII bytes": (
            [("Authorization", "Bearer gk_dev_ñandú€".encode())], 401, "invalid_credentials",
        ),
        "latin-1 bytes": ([("Authorization", b"Bearer \xff\xfe\x80")], 401,
                          "invalid_credentials"),
        "two Authorization headers": (
            [("Authorization", f"Bearer {token}".encode()),
             ("Authorization", f"Bearer {token}".encode())], 400, "invalid_request",
        ),
        "empty": ([("Authorization", b"")], 401, "missing_credentials"),
    }
    for name, (headers, status, error) in cases.items():
        got_status, content_type, body = _raw_get(server, headers)
        assert (got_status, body["error"]) == (status, error), name
        assert content_type == "application/json", name
    assert _raw_get(server, [("Authorization", f"Bearer {token}".encode())])[0] == 200
