"""GitHub's secret-scanning partner format at `POST /api/v1/leaked-credentials` (issue 18 point 4):
a report signed by a configured key (ECDSA P-256, SHA-256, over the raw body) revokes and gets
GitHub's feedback; a report with no, an unknown or a bad signature is an anonymous report —
revoked if live, the same 202, no feedback. The tests sign with a key pair of their own."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from http import HTTPStatus

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from apikeys.tokens import generate_token
from audit.models import AuditEvent
from gateway.api import LEAK_ACCEPTED
from oauth.tokens import generate_access_token

pytestmark = pytest.mark.django_db

URL = "/api/v1/leaked-credentials"
KEY_ID = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a"


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(autouse=True)
def scanning_keys(settings, signing_key) -> None:
    pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    settings.GATEHOUSE_GITHUB_SCANNING_KEYS = {KEY_ID: pem}


def sign(key: ec.EllipticCurvePrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


def github_post(body: bytes, *, key_id: str | None = KEY_ID, signature: str | None = None):
    headers = {}
    if key_id is not None:
        headers["Github-Public-Key-Identifier"] = key_id
    if signature is not None:
        headers["Github-Public-Key-Signature"] = signature
    return Client().post(URL, body, content_type="application/json",
                         REMOTE_ADDR="192.0.2.50", headers=headers)


def matches(*tokens: str, url: str = "https://github.com/octo/repo/blob/main/.env") -> bytes:
    return json.dumps([
        {"token": token, "type": "gatehouse_api_key", "url": url, "source": "content"}
        for token in tokens
    ]).encode()


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_a_verified_report_revokes_and_answers_feedback(make_key, api, signing_key) -> None:
    key, token = make_key()
    unknown = generate_token("production")  # right shape and checksum, never issued
    body = matches(token, unknown, "not-a-gatehouse-token")

    response = github_post(body, signature=sign(signing_key, body))

    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json() == [
        {"token_hash": sha(token), "token_type": "gatehouse_api_key", "label": "true_positive"},
        {"token_hash": sha(unknown), "token_type": "gatehouse_api_key",
         "label": "false_positive"},
        {"token_hash": sha("not-a-gatehouse-token"), "token_type": "gatehouse_api_key",
         "label": "false_positive"},
    ]
    key.refresh_from_db()
    assert (key.status, key.revoked_reason) == ("revoked", "leaked")
    event = AuditEvent.objects.get(action="key.revoked", target_id=key.public_id)
    assert event.actor_label == "GitHub secret scanning"
    assert event.metadata["report"] == "github_secret_scanning"
    assert event.metadata["signature"] == "verified"
    assert event.metadata["source"] == "content"
    assert event.metadata["url"] == "https://github.com/octo/repo/blob/main/.env"
    assert token not in json.dumps(event.metadata)
    me = api(token).get("/api/v1/me")
    assert me.json()["error"] == "key_revoked"

    # Reported again: already revoked, still a real token.
    again = github_post(matches(token), signature=sign(signing_key, matches(token)))
    assert again.json()[0]["label"] == "true_positive"


def test_an_unissued_oauth_token_is_a_false_positive(signing_key) -> None:
    stranger = generate_access_token()
    body = matches(stranger)
    response = github_post(body, signature=sign(signing_key, body))
    assert response.json() == [
        {"token_hash": sha(stranger), "token_type": "gatehouse_api_key",
         "label": "false_positive"},
    ]


def test_a_verified_report_of_an_oauth_token_ends_its_grant(oauth_app, tokens_for, api,
                                                            signing_key) -> None:
    tokens = tokens_for(oauth_app, role="editor", scope="passports:read offline_access")
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    body = json.dumps([
        {"token": access, "type": "gatehouse_oauth_access_token", "url": "", "source": "npm"},
        {"token": refresh, "type": "gatehouse_oauth_refresh_token"},
    ]).encode()

    response = github_post(body, signature=sign(signing_key, body))

    assert response.status_code == HTTPStatus.OK, response.content
    assert [entry["label"] for entry in response.json()] == ["true_positive", "true_positive"]
    assert response.json()[1]["token_hash"] == sha(refresh)
    me = Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {access}")
    assert me.status_code == HTTPStatus.UNAUTHORIZED
    event = AuditEvent.objects.get(action="oauth.token_revoked")
    assert event.metadata["reason"] == "leaked"
    assert event.metadata["signature"] == "verified"
    # The access token was deleted by the revocation; it is still known as issued.
    again = github_post(matches(access), signature=sign(signing_key, matches(access)))
    assert again.json()[0]["label"] == "true_positive"


@pytest.mark.parametrize("case", ["no_headers", "unknown_key", "bad_signature", "other_key",
                                  "not_base64", "huge_header", "signature_of_other_body"])
def test_an_unverified_report_is_an_anonymous_report(case, make_key, signing_key) -> None:
    key, token = make_key()
    body = matches(token)
    other = ec.generate_private_key(ec.SECP256R1())
    key_id, signature = {
        "no_headers": (None, None),
        "unknown_key": ("ffff" * 16, sign(signing_key, body)),
        "bad_signature": (KEY_ID, base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()),
        "other_key": (KEY_ID, sign(other, body)),
        "not_base64": (KEY_ID, "%%%not base64\x7f"),
        "huge_header": (KEY_ID * 100, "A" * 5000),
        "signature_of_other_body": (KEY_ID, sign(signing_key, body + b" ")),
    }[case]

    response = github_post(body, key_id=key_id, signature=signature)

    # As today's anonymous intake: revoked (it is live), and the same 202 — no feedback.
    assert response.status_code == HTTPStatus.ACCEPTED, response.content
    assert response.json() == LEAK_ACCEPTED
    key.refresh_from_db()
    assert key.status == "revoked"
    event = AuditEvent.objects.get(action="key.revoked", target_id=key.public_id)
    assert event.actor_label == "leaked-credentials report"
    assert event.metadata["signature"] == "unverified"


@pytest.mark.parametrize("body", [
    b'[{"type": "x"}]',  # no token
    b'[{"token": 12}]',
    b'[{"token": ""}]',
    b'[{"token": "\\ud800"}]',  # lone surrogate
    b'[{"token": "gk_prod_x", "url": "\\u0000' + b"x" * 600 + b'"}]',
    b'[{"token": "a"}, "mixed"]',
    b"[" * 5000 + b"]" * 5000,
    json.dumps([{"token": "a"}] * 1001).encode(),
    b'[{"token": "' + b"a" * 600 + b'"}]',
])
def test_malformed_and_hostile_bodies_are_refused_cleanly(body, signing_key) -> None:
    response = github_post(body, signature=sign(signing_key, body))
    assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.ACCEPTED), response.content
    assert response.json()["error" if response.status_code == 400 else "status"]
    assert not AuditEvent.objects.filter(action="key.revoked").exists()


def test_unknown_members_are_ignored_and_a_bad_configured_key_never_verifies(
    settings, make_key, signing_key,
) -> None:
    settings.GATEHOUSE_GITHUB_SCANNING_KEYS = {KEY_ID: "not a pem"}
    _key, token = make_key()
    body = json.dumps([{"token": token, "type": "t", "future_field": {"x": 1}}]).encode()
    response = github_post(body, signature=sign(signing_key, body))
    assert response.status_code == HTTPStatus.ACCEPTED
    assert response.json() == LEAK_ACCEPTED


def test_nothing_secret_is_logged(make_key, signing_key, caplog) -> None:
    _key, token = make_key()
    body = matches(token)
    signature = sign(signing_key, body)
    with caplog.at_level(logging.DEBUG):
        assert github_post(body, signature=signature).status_code == HTTPStatus.OK
        github_post(body, signature="garbage")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert token not in logged
    assert token[-12:] not in logged
