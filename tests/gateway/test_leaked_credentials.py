"""`POST /api/v1/leaked-credentials`: strings found in the wild; live ones are revoked at once,
and the reporter learns nothing (always the same 202)."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apikeys.models import ApiKey
from apikeys.services import apikey_revoke
from apikeys.tokens import generate_token
from audit.models import AuditEvent
from gateway.api import LEAK_ACCEPTED, LEAK_REPORT_RATE
from oauth.tokens import generate_access_token, generate_refresh_token
from tests.factories import by
from workspaces.models import SecurityAlert

pytestmark = pytest.mark.django_db

URL = "/api/v1/leaked-credentials"
REPORTER_IP = "203.0.113.9"
TOKEN_ENDPOINT = "/api/oauth/token"


def report(body, *, ip: str = REPORTER_IP, content_type: str = "application/json", **headers):
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    return Client().post(URL, raw, content_type=content_type, REMOTE_ADDR=ip, headers=headers)


def assert_accepted(response) -> None:
    assert response.status_code == HTTPStatus.ACCEPTED, response.content
    assert response.json() == LEAK_ACCEPTED


def test_a_live_key_is_revoked_with_the_reporter_and_the_url(api, make_key) -> None:
    key, token = make_key()
    assert api(token).get("/api/v1/me").status_code == HTTPStatus.OK

    response = report({"credentials": [token], "url": "https://gist.example.com/x/1"})

    assert_accepted(response)
    key.refresh_from_db()
    assert (key.status, key.revoked_reason) == ("revoked", "leaked")
    event = AuditEvent.objects.get(action="key.revoked", target_id=key.public_id)
    assert event.metadata == {
        "reason": "leaked", "reporter_ip": REPORTER_IP, "url": "https://gist.example.com/x/1",
        "door": "api", "request_id": response["X-Request-Id"],
    }
    assert event.actor_type == "system"
    assert event.ip == REPORTER_IP
    me = api(token).get("/api/v1/me")
    assert (me.status_code, me.json()["error"]) == (HTTPStatus.UNAUTHORIZED, "key_revoked")
    alert = SecurityAlert.objects.get()
    assert alert.workspace == key.workspace
    assert alert.subject == f"API key {key.name} ({key.display_hint})"
    assert (alert.reporter_ip, alert.url, alert.acknowledged_at) == (
        REPORTER_IP, "https://gist.example.com/x/1", None)


def test_a_bare_array_works_and_a_paused_key_is_live_too(make_key, members) -> None:
    key, token = make_key()
    from apikeys.services import apikey_pause

    apikey_pause(key=key, **by(members["admin"]))
    assert_accepted(report(["not a credential", f"  {token}\n"]))
    key.refresh_from_db()
    assert key.status == "revoked"


def test_the_answer_is_the_same_whatever_was_sent(make_key, members) -> None:
    _live, live_token = make_key(name="live")
    dead, dead_token = make_key(name="dead")
    apikey_revoke(key=dead, **by(members["admin"]))
    bodies = {
        "live key": [live_token],
        "revoked key": [dead_token],
        "unknown key of the right shape": [generate_token("development")],
        "unknown access token": [generate_access_token()],
        "unknown refresh token": [generate_refresh_token()],
        "a bad checksum": [live_token[:-1] + ("A" if live_token[-1] != "A" else "B")],
        "garbage": ["hunter2"],
    }
    answers = set()
    for body in bodies.values():
        response = report(body)
        headers = {k: v for k, v in response.items() if k not in {"X-Request-Id"}}
        answers.add((response.status_code, response.content, tuple(sorted(headers.items()))))
    assert len(answers) == 1
    assert AuditEvent.objects.filter(metadata__reason="leaked").count() == 1


def test_the_work_does_not_grow_with_dead_strings(make_key) -> None:
    """Every well-formed string is looked up, in one query per kind, live or not."""
    def lookups(strings: list[str]) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert_accepted(report(strings))
        # The rate limiter's cache rows (DatabaseCache without Redis) are not the lookups.
        return [q["sql"] for q in captured if "gatehouse_cache" not in q["sql"]
                and "SAVEPOINT" not in q["sql"]]

    assert len(lookups([generate_token("development")])) == 1
    many = lookups([generate_token("development") for _ in range(300)]
                   + [generate_access_token() for _ in range(300)]
                   + [generate_refresh_token() for _ in range(300)] + ["x"] * 100)
    assert len(many) == 3  # one per kind: keys, access tokens, refresh tokens


def test_a_leaked_access_token_ends_its_grant(oauth_app, tokens_for, api) -> None:
    tokens = tokens_for(oauth_app, role="editor", scope="passports:read offline_access")
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    assert api(access).get("/api/v1/passports").status_code == HTTPStatus.OK

    assert_accepted(report({"credentials": [access], "url": "https://paste.example/abc"}))

    me = api(access).get("/api/v1/passports")
    assert (me.status_code, me.json()["error"]) == (HTTPStatus.UNAUTHORIZED, "invalid_token")
    refreshed = Client().post(TOKEN_ENDPOINT, {"grant_type": "refresh_token",
                                              "refresh_token": refresh},
                              **oauth_app.token_auth())
    assert refreshed.status_code == HTTPStatus.BAD_REQUEST
    event = AuditEvent.objects.get(action="oauth.token_revoked")
    assert event.metadata["reason"] == "leaked"
    assert event.metadata["reporter_ip"] == REPORTER_IP
    assert event.metadata["url"] == "https://paste.example/abc"
    assert SecurityAlert.objects.get().subject.startswith("OAuth access of Acme CRM")


def test_a_leaked_refresh_token_ends_its_grant(oauth_app, tokens_for, api) -> None:
    tokens = tokens_for(oauth_app, role="editor", scope="passports:read offline_access")
    assert_accepted(report([tokens["refresh_token"]]))
    response = api(tokens["access_token"]).get("/api/v1/passports")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert AuditEvent.objects.filter(action="oauth.token_revoked",
                                     metadata__reason="leaked").count() == 1


def test_a_token_inside_the_url_is_never_stored(make_key) -> None:
    key, token = make_key()
    other = generate_token("development")
    assert_accepted(report({"credentials": [token], "url": f"https://x.example/?k={other}"}))
    event = AuditEvent.objects.get(action="key.revoked")
    assert other not in json.dumps(event.metadata)
    assert other not in SecurityAlert.objects.get().url


@pytest.mark.parametrize(("body", "status", "field"), [
    (b"", 400, "body"),
    (b"{not json", 400, "body"),
    (b'"gk_dev_x"', 400, "body"),
    (b"[]", 400, "credentials"),
    (json.dumps(["x"] * 1001).encode(), 400, "credentials"),
    (b"[1]", 400, "credentials"),
    (b"[null]", 400, "credentials"),
    (b'[""]', 400, "credentials"),
    (json.dumps(["x" * 513]).encode(), 400, "credentials"),
    (b'{"url": "https://x"}', 400, "credentials"),
    (b'{"credentials": "gk_dev_x"}', 400, "credentials"),
    (b'{"credentials": ["x"], "url": 5}', 400, "url"),
    (json.dumps({"credentials": ["x"], "url": "u" * 501}).encode(), 400, "url"),
    (b'{"credentials": ["x"], "extra": 1}', 400, "extra"),
    (b'{"credentials": ["x"], "credentials": ["y"]}', 400, "credentials"),
    (b'["\\ud800"]', 400, "credentials"),
])
def test_bad_reports_are_400_naming_the_problem(body, status, field) -> None:
    response = report(body)
    assert response.status_code == status, response.content
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["fields"]


def test_other_refusals(client) -> None:
    assert report(b"[]", content_type="text/plain").status_code == (
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
    get = client.get(URL)
    assert (get.status_code, get["Allow"]) == (HTTPStatus.METHOD_NOT_ALLOWED, "POST")
    big = report(json.dumps(["x" * 500] * 2200))
    assert big.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE


def test_no_credential_is_needed_and_a_bad_one_is_ignored(make_key) -> None:
    key, token = make_key()
    response = report([token], HTTP_AUTHORIZATION="Bearer nonsense")
    assert_accepted(response)
    assert ApiKey.objects.get(pk=key.pk).status == "revoked"


def test_reports_are_rate_limited_per_ip() -> None:
    limit = int(LEAK_REPORT_RATE.split("/")[0])
    for _ in range(limit):
        assert_accepted(report(["x"]))
    refused = report(["x"])
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused.json()["error"] == "rate_limited"
    assert refused["Retry-After"] == "60"
    assert_accepted(report(["x"], ip="198.51.100.77"))  # another reporter is not held up


# --- the dashboard banner ----------------------------------------------------------------------

def test_the_banner_stays_until_an_admin_acknowledges(make_key, client_for, other_workspace
                                                      ) -> None:
    key, token = make_key(name="Deploy")
    assert_accepted(report({"credentials": [token], "url": "https://gist.example.com/1"}))
    page = "/w/acme/settings/api-keys/"

    viewer = client_for("viewer").get(page).content.decode()
    assert "Leaked credential revoked" in viewer
    assert f"API key Deploy ({key.display_hint})" in viewer
    assert "https://gist.example.com/1" in viewer
    assert "A workspace admin can acknowledge this." in viewer
    assert "Acknowledge</button>" not in viewer

    dismiss = "/w/acme/security-alerts/dismiss"
    assert client_for("viewer").post(dismiss).status_code == HTTPStatus.FORBIDDEN
    assert client_for("editor").post(dismiss).status_code == HTTPStatus.FORBIDDEN
    admin = client_for("admin")
    assert "Acknowledge</button>" in admin.get(page).content.decode()
    response = admin.post(dismiss, {"next": page})
    assert (response.status_code, response["Location"]) == (HTTPStatus.FOUND, page)
    alert = SecurityAlert.objects.get()
    assert alert.acknowledged_by is not None and alert.acknowledged_at is not None
    assert "Leaked credential revoked" not in client_for("owner").get(page).content.decode()


def test_dismiss_goes_nowhere_outside_and_touches_no_other_workspace(make_key, client_for,
                                                                     other_workspace) -> None:
    _key, token = make_key()
    _other_key, other_token = make_key(workspace=other_workspace)
    assert_accepted(report([token, other_token]))
    admin = client_for("admin")
    response = admin.post("/w/acme/security-alerts/dismiss", {"next": "https://evil.example/"})
    assert response["Location"] == "/w/acme/"
    assert SecurityAlert.objects.filter(acknowledged_at__isnull=True).get().workspace == (
        other_workspace)
    assert admin.post("/w/globex/security-alerts/dismiss").status_code == HTTPStatus.NOT_FOUND
