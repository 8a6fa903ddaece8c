"""HTTP edges that once answered outside the JSON contract (issue 13 point 8): a long request
line (gunicorn's HTML 414), a chunked body (read as empty) and `HEAD` (405). Through a real
gunicorn with two workers where the server is the point, the test client elsewhere."""

import http.client
import json
from collections.abc import Iterator
from http import HTTPStatus
from urllib.parse import urlsplit

import pytest
from django.test import Client

from apikeys.models import KeyRequest
from gateway.middleware import MAX_BODY_BYTES, MAX_URL_BYTES
from gateway.usage import usage_flush
from passports.models import Passport
from passports.services import passport_create
from tests.factories import by
from tests.servers import gunicorn

GTIN = "4006381333931"


@pytest.fixture
def server(transactional_db) -> Iterator[str]:
    with gunicorn(workers=2) as base:
        yield base


def _request(base: str, method: str, target: str, *, token: str | None = None,
             body=None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    try:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        conn.request(method, target, body=body, headers=all_headers,
                     encode_chunked=not isinstance(body, (bytes, str, type(None))))
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# --- a too-long URL -------------------------------------------------------------------------------


def test_a_url_over_the_limit_is_a_json_414(client_api) -> None:
    response = client_api.get("/api/v1/passports", {"q": "x" * MAX_URL_BYTES})
    assert response.status_code == HTTPStatus.REQUEST_URI_TOO_LONG
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "request_too_large"
    assert response["X-Request-Id"]
    assert client_api.get("/api/v1/passports").status_code == HTTPStatus.OK


@pytest.mark.parametrize("length", [4200, 8100, 9000, 20000])
def test_gunicorn_answers_every_long_request_line_with_json(server, token, length) -> None:
    """Lines up to gunicorn's 8190-byte limit reach the API's 414; longer ones get the worker's
    JSON 414 (config/gunicorn_worker.py); neither is gunicorn's HTML page."""
    target = "/api/v1/passports?q=" + "x" * (length - len("GET /api/v1/passports?q= HTTP/1.1"))
    status, headers, body = _request(server, "GET", target, token=token)
    assert status == HTTPStatus.REQUEST_URI_TOO_LONG, body[:200]
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == "request_too_large"
    assert _request(server, "GET", "/api/v1/me", token=token)[0] == HTTPStatus.OK


# --- a chunked body -------------------------------------------------------------------------------


def _chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_a_chunked_json_body_is_read(server, token, workspace) -> None:
    body = json.dumps({"gtin": GTIN, "serial_number": "CHUNKED-1", "product_name": "Drill " * 30})
    status, _headers, answer = _request(
        server, "POST", "/api/v1/passports", token=token, body=_chunks(body.encode(), 16),
        headers={"Content-Type": "application/json"},
    )
    assert status == HTTPStatus.CREATED, answer
    created = json.loads(answer)
    stored = Passport.objects.get(public_id=created["id"])
    assert stored.workspace == workspace
    assert stored.serial_number == "CHUNKED-1"
    assert stored.product_name == ("Drill " * 30).strip()


def test_a_chunked_body_over_1_mib_is_a_413_and_writes_nothing(server, token) -> None:
    huge = json.dumps({"gtin": GTIN, "serial_number": "HUGE", "product_name": "x" * MAX_BODY_BYTES})
    status, headers, answer = _request(
        server, "POST", "/api/v1/passports", token=token, body=_chunks(huge.encode(), 65536),
        headers={"Content-Type": "application/json"},
    )
    assert status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert headers["Content-Type"] == "application/json"
    assert json.loads(answer)["error"] == "request_too_large"
    assert not Passport.objects.filter(serial_number="HUGE").exists()


# --- HEAD -----------------------------------------------------------------------------------------


def test_head_is_get_without_a_body_and_counts_as_a_passport_read(server, token, workspace) -> None:
    passport = passport_create(
        workspace=workspace, gtin=GTIN, serial_number="SN-HEAD", product_name="Widget",
        status="draft", **by(),
    )
    target = f"/api/v1/passports/{passport.public_id}"
    get_status, get_headers, get_body = _request(server, "GET", target, token=token)
    assert get_status == HTTPStatus.OK
    assert get_headers["X-RateLimit-Remaining"] == "99"
    status, headers, body = _request(server, "HEAD", target, token=token)
    assert status == HTTPStatus.OK
    assert body == b""
    assert headers["Content-Type"] == "application/json"
    assert headers["X-RateLimit-Limit"] == "100"
    assert headers["X-RateLimit-Remaining"] == "98"  # a HEAD is a passport read (docs)
    assert headers["X-Request-Id"]
    after = _request(server, "GET", target, token=token)[1]
    assert after["X-RateLimit-Remaining"] == "97"
    assert _request(server, "HEAD", "/api/v1/me", token=token)[0] == HTTPStatus.OK
    assert _request(server, "HEAD", "/api/v1/passports", token=token)[0] == HTTPStatus.OK


def test_head_needs_the_same_credentials_and_scope_as_get(client_api, api, make_key) -> None:
    anonymous = api("gk_dev_" + "0" * 36)
    assert anonymous.head("/api/v1/me").status_code == HTTPStatus.UNAUTHORIZED
    none = Client().head("/api/v1/me")
    assert none.status_code == HTTPStatus.UNAUTHORIZED
    assert "resource_metadata" in none["WWW-Authenticate"]
    _key, audit_only = make_key(scopes=["audit:read"])
    refused = api(audit_only).head("/api/v1/passports")
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert client_api.head("/api/v1/passports").status_code == HTTPStatus.OK


def test_head_is_recorded_as_head_and_listed_in_allow(client_api) -> None:
    usage_flush()
    assert client_api.head("/api/v1/me").status_code == HTTPStatus.OK
    usage_flush()
    assert KeyRequest.objects.filter(method="HEAD", path="/api/v1/me").count() == 1
    refused = client_api.put("/api/v1/passports", {}, content_type="application/json")
    assert refused.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert refused["Allow"] == "GET, HEAD, POST"
