"""A verified GitHub secret-scanning report (issue 18 point 4) revokes, and then notifies and
webhooks like any leak (points 2 and 3); a report with a bad signature is handled as anonymous
and still notifies its revocation — never trusted more."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core import mail

from notifications.services import webhook_endpoint_create
from tests.factories import by
from tests.gateway.test_github_secret_scanning import KEY_ID, github_post, matches, sign
from tests.notifications.helpers import run_tasks
from tests.notifications.receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def github_key(settings) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    settings.GATEHOUSE_GITHUB_SCANNING_KEYS = {KEY_ID: key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()}
    return key


@pytest.mark.parametrize("signed", [True, False], ids=["verified", "bad-signature"])
def test_a_github_report_notifies_and_webhooks(signed, workspace, members, make_key,
                                               github_key) -> None:
    key, token = make_key()
    with Receiver(secret="") as receiver:
        _, receiver.secret = webhook_endpoint_create(
            workspace=workspace, url=receiver.url, event_types=["key.leaked"],
            **by(members["admin"]),
        )
        body = matches(token)
        signature = sign(github_key, body) if signed else sign(github_key, body + b" ")
        response = github_post(body, signature=signature)
        assert response.status_code in (HTTPStatus.OK, HTTPStatus.ACCEPTED)
        run_tasks()
        [request] = receiver.requests
    assert request.verified and request.event["type"] == "key.leaked"
    data = request.event["data"]
    assert data["target"]["id"] == key.public_id
    if signed:
        assert data["source"] == "content"
        assert data["actor"]["label"] == "GitHub secret scanning"
    else:  # handled as an anonymous report: not attributed to GitHub
        assert data["actor"]["label"] == "leaked-credentials report"
    leaked = [m for m in mail.outbox if "reported leaked" in m.subject]
    assert sorted(a for m in leaked for a in m.to) == ["admin@acme.test", "owner@acme.test"]
    assert all(token not in m.body for m in mail.outbox)
    assert token not in request.body.decode()
