"""Every response under /api/ is JSON: 400, 404, 405, 413, 415 and 500 — and nothing changes."""

import json
import logging
from http import HTTPStatus

import pytest
from django.test import Client

import passports.api
from passports.models import Passport

pytestmark = pytest.mark.django_db

DRILL = {"gtin": "4006381333931", "serial_number": "SN-1", "product_name": "Drill"}


def assert_json_error(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    return body


# --- 404 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/v1/nowhere", "/api/v1/me/", "/api/v1/passports/", "/api/v1/", "/api/v2/me",
     "/api/v1", "/api/", "/api/v1/%00", "/api/v1/a/b/c?x=1"],
)
def test_unknown_api_paths_are_json_404(client, client_api, path) -> None:
    for c in (client, client_api):
        assert_json_error(c.get(path), HTTPStatus.NOT_FOUND, "not_found")
    assert_json_error(client_api.post(path, "{}", content_type="application/json"),
                      HTTPStatus.NOT_FOUND, "not_found")


def test_unknown_api_paths_are_json_404_with_debug_on(client, settings) -> None:
    settings.DEBUG = True
    assert_json_error(client.get("/api/v1/nowhere"), HTTPStatus.NOT_FOUND, "not_found")


def test_dashboard_404_is_still_the_html_page(client) -> None:
    response = client.get("/no/such/page/")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["Content-Type"].startswith("text/html")
    assert b"Not found" in response.content
    assert "X-Request-Id" not in response


def test_too_many_query_parameters_is_a_json_400(client_api) -> None:
    # 1001 fields (Django's limit is 1000) within the 4096-byte URL limit (longer: 414).
    query = "&".join("a=1" for _ in range(1001))
    response = client_api.get(f"/api/v1/passports?{query}")
    assert_json_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")


def test_a_bad_host_under_api_is_a_json_400(client) -> None:
    response = client.get("/api/v1/me", headers={"Host": "evil.example"})
    assert_json_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")


# --- 413 / 415 / 400 on bodies ----------------------------------------------------------------


def test_bodies_over_1_mib_are_413_before_anything_else(client_api, client) -> None:
    big = json.dumps({**DRILL, "product_name": "x" * (1024 * 1024)})
    for c in (client_api, client):
        response = c.post("/api/v1/passports", big, content_type="application/json")
        body = assert_json_error(response, HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                 "request_too_large")
        assert "1 MiB" in body["message"]
    assert not Passport.objects.exists()


def test_a_body_of_exactly_1_mib_is_read(client_api) -> None:
    padded = json.dumps(DRILL)
    padded = padded[:-1] + " " * (1024 * 1024 - len(padded)) + "}"
    assert len(padded.encode()) == 1024 * 1024
    assert client_api.post("/api/v1/passports", padded,
                           content_type="application/json").status_code == HTTPStatus.CREATED


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml",
     "application/json; charset=latin-1", "application/jsonp"],
)
def test_non_json_bodies_are_415(client_api, content_type) -> None:
    response = client_api.post("/api/v1/passports", json.dumps(DRILL),
                               content_type=content_type)
    assert_json_error(response, HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    assert not Passport.objects.exists()


def test_multipart_form_is_415(client_api) -> None:
    response = client_api.post("/api/v1/passports", DRILL)  # the test client's default: multipart
    assert_json_error(response, HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")


def test_json_with_a_suffix_type_and_charset_is_accepted(client_api) -> None:
    response = client_api.post("/api/v1/passports", json.dumps(DRILL),
                               content_type="application/merge-patch+json; charset=UTF-8")
    assert response.status_code == HTTPStatus.CREATED


BAD_BODIES = {
    "empty": (b"", "body"),
    "malformed": (b'{"gtin": ', "body"),
    "trailing garbage": (b'{"gtin": "1"} x', "body"),
    "array": (b"[1, 2]", "body"),
    "string": (b'"a passport"', "body"),
    "number": (b"42", "body"),
    "null": (b"null", "body"),
    "NaN": (b'{"gtin": NaN}', "body"),
    "invalid UTF-8": (b'{"product_name": "\xff\xfe"}', "body"),
    "deep nesting": (b'{"gtin": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "body"),
    "duplicate field": (
        b'{"gtin": "4006381333931", "gtin": "96385074", "serial_number": "A", '
        b'"product_name": "x"}', "gtin",
    ),
    "unknown field": (json.dumps({**DRILL, "colour": "red"}).encode(), "colour"),
    "gtin as a number": (json.dumps({**DRILL, "gtin": 4006381333931}).encode(), "gtin"),
    "status as a bool": (json.dumps({**DRILL, "status": True}).encode(), "status"),
    "null name": (json.dumps({**DRILL, "product_name": None}).encode(), "product_name"),
    "lone surrogate": (
        b'{"gtin": "4006381333931", "serial_number": "A1", "product_name": "x\\ud800"}',
        "product_name",
    ),
    "missing fields": (json.dumps({"gtin": "4006381333931"}).encode(), "serial_number"),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_bad_json_bodies_are_400_naming_the_problem(client_api, case) -> None:
    raw, field = BAD_BODIES[case]
    response = client_api.post("/api/v1/passports", raw, content_type="application/json")
    body = assert_json_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert field in body["fields"]
    assert len(body["message"]) < 300
    assert not Passport.objects.exists()


def test_all_problems_are_reported_at_once(client_api) -> None:
    response = client_api.post(
        "/api/v1/passports", json.dumps({"gtin": 1, "colour": "red", "size": 3}),
        content_type="application/json",
    )
    body = assert_json_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert body["fields"] == {
        "colour": "Unknown field.",
        "size": "Unknown field.",
        "serial_number": "This field is required.",
        "product_name": "This field is required.",
        "gtin": "Must be a string.",
    }
    assert body["message"] == "These fields are invalid: colour, gtin, product_name, " \
                              "serial_number, size."


def test_unknown_query_parameters_on_a_write_are_400(client_api) -> None:
    response = client_api.post("/api/v1/passports?dry_run=1", json.dumps(DRILL),
                               content_type="application/json")
    body = assert_json_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert body["fields"] == {"dry_run": "Unknown parameter."}
    assert not Passport.objects.exists()


# --- 500 -----------------------------------------------------------------------------------------


def test_a_server_error_is_json_with_a_request_id_and_no_traceback(
    client_api, monkeypatch, caplog
) -> None:
    def broken(**kwargs):
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(passports.api, "passport_page", broken)
    client_api.raise_request_exception = False
    with caplog.at_level(logging.ERROR):
        response = client_api.get("/api/v1/passports")
    body = assert_json_error(response, HTTPStatus.INTERNAL_SERVER_ERROR, "server_error")
    assert body["request_id"] == response["X-Request-Id"]
    assert body["request_id"] in body["message"]
    assert b"internal detail" not in response.content
    assert b"Traceback" not in response.content
    assert body["request_id"] in caplog.text


def test_a_dashboard_server_error_is_still_the_html_page(client, monkeypatch) -> None:
    import workspaces.views

    def broken(user):
        raise RuntimeError("boom")

    monkeypatch.setattr(workspaces.views, "last_used_workspace", broken)
    client.raise_request_exception = False
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    response = client.get("/")
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert response["Content-Type"].startswith("text/html")


def test_the_openapi_document_is_public(client) -> None:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == HTTPStatus.OK
    assert response.json()["openapi"] == "3.1.0"
    assert client.get("/api/v1/openapi.json",
                      headers={"Authorization": "Bearer garbage"}).status_code == HTTPStatus.OK
