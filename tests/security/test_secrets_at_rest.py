"""Secrets at rest and in logs, end to end (SPEC §3: a token is never logged, never in the
database, never in a cache).

One full flow through the doors people use — sign in, create a key in the dashboard (without
JavaScript, so the token crosses a redirect), use it on the API (an idempotent write too),
rotate it, register an OAuth app, authorize with PKCE, exchange the code, refresh, use the
access token, revoke through RFC 7009, revoke the key, report a token as leaked — with DEBUG on
and every logger at DEBUG (SQL included). Then every issued secret is searched for, raw and
base64- and hex-encoded:
- in a dump of every table and every column of the database (bytes too; signed session data
  and base64 cache values decoded);
- in the cache: every Redis key and value when REDIS_URL is set (else it is the DatabaseCache
  table, part of the dump);
- in every log record, formatted, exceptions included.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import cache
from django.db import connection
from django.test import Client

from tests.factories import PASSWORD
from tests.oauth.conftest import pkce_pair

pytestmark = pytest.mark.django_db

REDIRECT_URI = "https://app.example.com/callback"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def debug_logs(settings) -> Iterator[Capture]:
    settings.DEBUG = True  # Django logs every SQL statement with its parameters only then
    capture = Capture()
    loggers = [logging.getLogger(), *(
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
    )]
    levels = [(logger, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    logging.getLogger().addHandler(capture)
    try:
        yield capture
    finally:
        logging.getLogger().removeHandler(capture)
        for logger, level, disabled in levels:
            logger.setLevel(level)
            logger.disabled = disabled


def _csrf(client: Client) -> dict[str, str]:
    return {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value} if "csrftoken" in (
        client.cookies) else {}


def run_the_flow(members) -> dict[str, str]:
    """Every secret issued along the way, by name."""
    secrets: dict[str, str] = {"password": PASSWORD}
    owner = Client(enforce_csrf_checks=False)
    signed_in = owner.post("/accounts/login/", {"username": "owner@acme.test",
                                                "password": PASSWORD})
    assert signed_in.status_code == HTTPStatus.FOUND

    # A key from the dashboard, without JavaScript: POST → 303 → the list shows it once.
    created = owner.post("/w/acme/settings/api-keys/new/", {
        "name": "Deploy", "scopes": ["passports:read", "passports:write", "keys:read"],
        "environment": "development",
    })
    assert created.status_code in (HTTPStatus.FOUND, HTTPStatus.SEE_OTHER), created.content[:300]
    page = owner.get(created["Location"])
    key_token = page.context["token"]
    secrets["api key"] = key_token
    key_id = page.context["new_key"].public_id

    api = Client(headers={"Authorization": f"Bearer {key_token}"})
    assert api.get("/api/v1/me").status_code == HTTPStatus.OK
    made = api.post("/api/v1/passports", {"gtin": "4006381333931", "serial_number": "S-1",
                                          "product_name": "Drill"},
                    content_type="application/json", headers={"Idempotency-Key": "flow-1"})
    assert made.status_code == HTTPStatus.CREATED
    assert api.get("/api/v1/keys").status_code == HTTPStatus.OK

    rotated = owner.post(f"/w/acme/settings/api-keys/{key_id}/rotate/", {"overlap": "1h"},
                         headers={"HX-Request": "true"})
    assert rotated.status_code == HTTPStatus.OK, rotated.content[:300]
    secrets["rotated api key"] = rotated.context["token"]
    rotated_api = Client(headers={"Authorization": f"ApiKey {secrets['rotated api key']}"})
    assert rotated_api.get("/api/v1/me").status_code == HTTPStatus.OK

    # An OAuth app registered in the dashboard without JavaScript: its secret is shown once,
    # after the redirect (carried across it in two halves, neither stored in the clear).
    registered = owner.post("/w/acme/settings/oauth-apps/new", {
        "name": "Flow CRM", "redirect_uris": REDIRECT_URI, "client_type": "confidential",
    }, follow=True)
    assert registered.status_code == HTTPStatus.OK, registered.content[:300]
    assert registered.redirect_chain == [("/w/acme/settings/oauth-apps/", HTTPStatus.SEE_OTHER)]
    client_id = registered.context["app"].application.client_id
    client_secret = registered.context["secret"]
    secrets["client secret"] = client_secret
    basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()

    verifier, challenge = pkce_pair()
    secrets["PKCE verifier"] = verifier
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
              "scope": "passports:read passports:write offline_access", "state": "s-1",
              "code_challenge": challenge, "code_challenge_method": "S256"}
    consent = owner.get("/api/oauth/authorize", params)
    assert consent.status_code == HTTPStatus.OK
    context = consent.context
    decision = owner.post("/api/oauth/authorize", {
        **context["fields"], "scope": context["scope"], "decision": "allow", "workspace": "acme",
        **({"resource": context["resource"]} if context["resource"] else {}),
    })
    code = re.search(r"[?&]code=([^&]+)", decision["Location"]).group(1)
    secrets["authorization code"] = code

    token_client = Client(headers={"Authorization": basic})
    issued = token_client.post("/api/oauth/token", {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }).json()
    secrets["access token"], secrets["refresh token"] = (
        issued["access_token"], issued["refresh_token"])
    oauth_api = Client(headers={"Authorization": f"Bearer {issued['access_token']}"})
    assert oauth_api.get("/api/v1/passports").status_code == HTTPStatus.OK

    refreshed = token_client.post("/api/oauth/token", {
        "grant_type": "refresh_token", "refresh_token": issued["refresh_token"],
    }).json()
    secrets["refreshed access token"] = refreshed["access_token"]
    secrets["rotated refresh token"] = refreshed["refresh_token"]
    assert Client(headers={"Authorization": f"Bearer {refreshed['access_token']}"}).get(
        "/api/v1/me").status_code == HTTPStatus.OK
    introspected = token_client.post("/api/oauth/introspect",
                                     {"token": refreshed["access_token"]})
    assert introspected.status_code == HTTPStatus.OK

    revoked = token_client.post("/api/oauth/revoke", {
        "token": refreshed["refresh_token"], "token_type_hint": "refresh_token",
    })
    assert revoked.status_code == HTTPStatus.OK
    assert owner.post(f"/w/acme/settings/api-keys/{key_id}/revoke/").status_code in (
        HTTPStatus.OK, HTTPStatus.FOUND, HTTPStatus.SEE_OTHER)
    assert api.get("/api/v1/me").status_code == HTTPStatus.UNAUTHORIZED
    assert Client().post("/api/v1/leaked-credentials", [secrets["rotated api key"]],
                         content_type="application/json").status_code == HTTPStatus.ACCEPTED
    # A failed sign-in that types a token as the username, and a bad token on the API.
    Client().post("/accounts/login/", {"username": secrets["access token"], "password": "x"})
    Client(headers={"Authorization": f"Bearer {secrets['rotated api key']}x"}).get("/api/v1/me")
    return secrets


def _texts(value: Any) -> Iterator[str]:
    """A stored value as text, plus every decoding a secret could hide behind."""
    if value is None:
        return
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        yield value.decode("latin-1")
        yield value.hex()
        return
    text = str(value)
    yield text
    if len(text) >= 16 and re.fullmatch(r"[A-Za-z0-9+/=_\-:.]+", text):
        for part in re.split(r"[:.]", text):  # signed values: base64 parts joined by : or .
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                with contextlib.suppress(binascii.Error, ValueError):
                    yield decode(part + "=" * (-len(part) % 4)).decode("latin-1")


def database_dump() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    rows.extend((table, text) for text in _texts(value))
    for session in SessionStore.get_model_class().objects.all():
        rows.append(("django_session (decoded)", repr(SessionStore().decode(
            session.session_data))))
    return rows


def cache_dump() -> list[tuple[str, str]]:
    if not django_settings.REDIS_URL:
        return []  # the DatabaseCache is a table: database_dump has it
    client = cache._cache.get_client()
    found: list[tuple[str, str]] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key)]
        elif kind == "hash":
            values = [b" ".join(pair) for pair in client.hgetall(key).items()]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = client.zrange(key, 0, -1)
        else:
            values = []
        for value in [key, *values]:
            found.extend(("redis", text) for text in _texts(value))
    return found


def variants(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex()]


def test_no_issued_secret_is_stored_cached_or_logged(members, debug_logs) -> None:
    secrets = run_the_flow(members)
    assert len(secrets) == 10
    logs = "\n".join(debug_logs.lines)
    assert "SELECT" in logs  # SQL logging was on: the search below covers it
    places = {
        "database": database_dump(),
        "cache": cache_dump(),
        "logs": [("log", line) for line in debug_logs.lines],
    }
    leaks = [
        f"{name} in {where} ({label}): {text[text.find(variant)-300:text.find(variant)+50]}"
        for name, secret in secrets.items()
        for where, texts in places.items()
        for label, text in texts
        for variant in variants(secret)
        if variant in text
    ]
    assert leaks == [], "\n".join(sorted(set(leaks)))
