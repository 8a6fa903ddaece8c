"""A leak reporter's free text reaches the workspace banner as one short, escaped line (12c)."""

from __future__ import annotations

import json
import re
import unicodedata
from html import unescape
from http import HTTPStatus

import pytest
from django.test import Client

from audit.models import AuditEvent
from gateway.leaks import BANNER_URL_LENGTH, MAX_URL_LENGTH
from workspaces.models import SecurityAlert

pytestmark = pytest.mark.django_db

PAGE = "/w/acme/settings/api-keys/"
NASTY = (
    "https://paste.example/raw/1\r\n\r\n"
    "URGENT: your account is suspended.\nCall +1 555 0100 now\x00\x07\x1b[31m"
    "\u202egnp.exe\u2028\u2029<script>alert(1)</script>\t" + "padding " * 40
)


def _report(body: dict) -> object:
    return Client().post("/api/v1/leaked-credentials", json.dumps(body),
                         content_type="application/json", REMOTE_ADDR="203.0.113.9")


def _banner_code(html: str) -> str:
    section = re.search(r'data-testid="security-alert">(.*?)</section>', html, re.S).group(1)
    return re.search(r"<code>(.*?)</code>", section, re.S).group(1)


def _assert_one_clean_line(text: str, limit: int) -> None:
    assert len(text) <= limit
    assert "\n" not in text and "\r" not in text
    assert not [ch for ch in text if unicodedata.category(ch)[0] in "CZ" and ch != " "]


def test_reporter_text_is_one_short_escaped_line_on_the_banner(make_key, client_for) -> None:
    _key, token = make_key(name="Deploy")
    assert len(NASTY) <= MAX_URL_LENGTH  # accepted by the endpoint, as today

    response = _report({"credentials": [token], "url": NASTY})

    assert response.status_code == HTTPStatus.ACCEPTED, response.content
    alert = SecurityAlert.objects.get()
    _assert_one_clean_line(alert.url, BANNER_URL_LENGTH)
    assert alert.url.startswith("https://paste.example/raw/1 URGENT: your account is suspended.")
    assert alert.url.endswith("…")
    event = AuditEvent.objects.get(action="key.revoked")
    _assert_one_clean_line(event.metadata["url"], MAX_URL_LENGTH)

    html = client_for("admin").get(PAGE).content.decode()
    shown = _banner_code(html)
    _assert_one_clean_line(unescape(shown), BANNER_URL_LENGTH)
    assert "<script>" not in html.split('data-testid="security-alert"')[1].split("</section>")[0]
    assert "&lt;script&gt;alert(1)" in shown


def test_a_short_clean_url_is_shown_as_sent(make_key, client_for) -> None:
    _key, token = make_key()
    _report({"credentials": [token], "url": "https://gist.example.com/u/1?a=1&b=2"})
    html = client_for("viewer").get(PAGE).content.decode()
    assert _banner_code(html) == "https://gist.example.com/u/1?a=1&amp;b=2"


def test_markup_within_the_line_stays_escaped(make_key, client_for) -> None:
    _key, token = make_key()
    _report({"credentials": [token], "url": 'x"><img src=x onerror=alert(1)>'})
    shown = _banner_code(client_for("viewer").get(PAGE).content.decode())
    assert shown == "x&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"


def test_old_multiline_alerts_are_cut_on_the_page_too(make_key, client_for, workspace) -> None:
    SecurityAlert.objects.create(workspace=workspace, kind=SecurityAlert.Kind.CREDENTIAL_LEAKED,
                                 subject="API key Old", url="line one\n" + "y" * 400)
    shown = _banner_code(client_for("viewer").get(PAGE).content.decode())
    assert len(unescape(shown)) <= BANNER_URL_LENGTH
