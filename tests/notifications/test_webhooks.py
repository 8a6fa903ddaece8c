"""Signed webhooks (SPEC §13, issue 18 point 3) against a real receiver on loopback that checks
every signature: endpoints from the dashboard, the secret shown once and sealed, retries with
backoff, timeouts, redirects, huge answers, disabling after 3 days, rotation with overlap,
test events and resend, and the SSRF refusals."""

from __future__ import annotations

import json
from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from apikeys.services import apikey_revoke
from audit.models import AuditEvent
from core.sealing import unseal
from notifications.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from notifications.services import (
    SEAL_PURPOSE,
    webhook_endpoint_create,
    webhook_secret_rotate,
)
from tests.factories import by, key_with_token
from tests.notifications.helpers import run_tasks
from tests.notifications.receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    with Receiver(secret="") as r:
        yield r


def endpoint_for(workspace, receiver, members, types=("key.created", "key.revoked", "key.leaked")):
    endpoint, secret = webhook_endpoint_create(
        workspace=workspace, url=receiver.url, event_types=list(types), **by(members["admin"])
    )
    receiver.secret = secret
    return endpoint, secret


def test_an_endpoint_is_created_on_the_dashboard_and_its_secret_shown_once(
    workspace, members, client_for, receiver
) -> None:
    client = client_for("admin")
    response = client.post(f"/w/{workspace.slug}/settings/webhooks/", {
        "url": receiver.url, "description": "CRM", "event_types": ["key.created", "key.leaked"],
    })
    assert response.status_code == HTTPStatus.FOUND
    endpoint = WebhookEndpoint.objects.get()
    page = client.get(response["Location"])
    assert page.status_code == HTTPStatus.OK
    secret = unseal(endpoint.sealed_secret, purpose=SEAL_PURPOSE)
    assert secret.startswith("whsec_") and secret in page.content.decode()
    assert page["Cache-Control"] == "no-store"
    assert secret not in client.get(response["Location"]).content.decode()  # once
    assert secret not in endpoint.sealed_secret
    event = AuditEvent.objects.get(action="webhook.created")
    assert event.target_id == endpoint.public_id and event.metadata["url"] == receiver.url
    assert secret not in json.dumps(event.metadata)
    assert endpoint.event_types == ["key.created", "key.leaked"]


def test_an_event_is_delivered_signed_with_the_stripe_scheme(workspace, members, receiver):
    endpoint, secret = endpoint_for(workspace, receiver, members)
    key, token = key_with_token(workspace, name="Billing sync")
    assert receiver.requests == []  # queued, not sent by the change
    assert run_tasks() == ["sent"]
    [request] = receiver.requests
    assert request.verified
    header = request.headers["Gatehouse-Signature"]
    assert header.startswith("t=") and header.count("v1=") == 1
    body = request.event
    assert body["type"] == "key.created" and body["workspace"] == workspace.slug
    assert body["id"].startswith("evt_") and isinstance(body["created"], int)
    assert body["data"]["target"] == {"type": "api_key", "id": key.public_id,
                                      "label": f"Billing sync ({key.display_hint})"}
    assert request.headers["Gatehouse-Event-Id"] == body["id"]
    assert token not in request.body.decode()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.SENT and delivery.attempts == 1
    attempt = WebhookAttempt.objects.get()
    assert attempt.status == 200 and attempt.response_excerpt == "ok"


def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(
    workspace, members, receiver
) -> None:
    endpoint_for(workspace, receiver, members)
    receiver.plan = [500, 503]
    key_with_token(workspace)
    start = timezone.now()
    assert run_tasks() == ["retry"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING and delivery.last_status == 500
    first_delay = delivery.next_attempt_at - start
    assert timedelta(seconds=59) < first_delay < timedelta(seconds=62)
    assert run_tasks() == []  # not due yet
    with time_machine.travel(start + timedelta(seconds=61)):
        assert run_tasks() == ["retry"]
    delivery.refresh_from_db()
    assert timedelta(minutes=5) < delivery.next_attempt_at - start < timedelta(minutes=7)
    with time_machine.travel(start + timedelta(minutes=7)):
        assert run_tasks() == ["sent"]
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SENT and delivery.attempts == 3
    assert [r.answered for r in receiver.requests] == [500, 503, 200]
    assert len({r.event["id"] for r in receiver.requests}) == 1  # one event, three attempts
    assert all(r.verified for r in receiver.requests)
    assert list(WebhookAttempt.objects.order_by("pk").values_list("status", flat=True)) == [
        500, 503, 200]


def test_a_hanging_receiver_times_out_and_is_retried(workspace, members, receiver, settings):
    settings.GATEHOUSE_WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.hang_seconds = 3
    receiver.plan = ["hang"]
    endpoint_for(workspace, receiver, members)
    key_with_token(workspace)
    assert run_tasks() == ["retry"]
    attempt = WebhookAttempt.objects.get()
    assert attempt.status is None and attempt.error.startswith("timeout")
    assert 900 <= attempt.latency_ms < 2900


def test_a_redirect_is_not_followed(workspace, members, receiver) -> None:
    receiver.plan = ["redirect"]
    endpoint_for(workspace, receiver, members)
    key_with_token(workspace)
    assert run_tasks() == ["retry"]
    assert len(receiver.requests) == 1
    attempt = WebhookAttempt.objects.get()
    assert attempt.status == 302 and "redirects are not followed" in attempt.error


def test_a_huge_answer_is_cut(workspace, members, receiver, settings) -> None:
    receiver.plan = ["huge"]
    endpoint_for(workspace, receiver, members)
    key_with_token(workspace)
    assert run_tasks() == ["sent"]
    attempt = WebhookAttempt.objects.get()
    assert attempt.status == 200 and len(attempt.response_excerpt) == 500


def test_three_days_of_failures_disable_the_endpoint_and_tell_the_owners(
    workspace, members, receiver
) -> None:
    receiver.default = 500
    endpoint, _ = endpoint_for(workspace, receiver, members)
    key_with_token(workspace)
    start = timezone.now()
    outcomes = run_tasks()
    for hours in range(1, 80):
        with time_machine.travel(start + timedelta(hours=hours)):
            outcomes += run_tasks()
    retries = outcomes.index("failed")
    # Every attempt failed and was retried, the last one gave up; then the two emails.
    assert outcomes == ["retry"] * retries + ["failed", "sent", "sent"]
    assert 8 <= retries <= 14  # backoff: 1 min, 5 min, 25 min, ~2 h, then every 10 h
    endpoint.refresh_from_db()
    assert not endpoint.enabled and "3 days" in endpoint.disabled_reason
    assert WebhookDelivery.objects.get().state == DeliveryState.FAILED
    assert AuditEvent.objects.filter(action="webhook.disabled",
                                     target_id=endpoint.public_id).count() == 1
    disabled = [m for m in mail.outbox if "was disabled" in m.subject]
    assert sorted(a for m in disabled for a in m.to) == ["admin@acme.test", "owner@acme.test"]
    # Later events are not sent to a disabled endpoint.
    receiver.requests.clear()
    with time_machine.travel(start + timedelta(hours=81)):
        key_with_token(workspace, name="After")
        run_tasks()
    assert receiver.requests == []


def test_a_rotated_secret_overlaps_with_the_old_one(workspace, members, receiver) -> None:
    endpoint, old = endpoint_for(workspace, receiver, members)
    endpoint, new = webhook_secret_rotate(endpoint=endpoint, overlap=timedelta(hours=1),
                                          **by(members["admin"]))
    assert new != old
    key_with_token(workspace)
    run_tasks()
    request = receiver.requests[-1]
    assert request.headers["Gatehouse-Signature"].count("v1=") == 2
    from notifications.signing import verify
    header, body, now = request.headers["Gatehouse-Signature"], request.body, int(
        timezone.now().timestamp())
    assert verify(header, body, old, now=now) and verify(header, body, new, now=now)
    event = AuditEvent.objects.get(action="webhook.secret_rotated")
    assert old not in json.dumps(event.metadata) and new not in json.dumps(event.metadata)

    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        key_with_token(workspace, name="Later")
        run_tasks()
        request = receiver.requests[-1]
        now = int(timezone.now().timestamp())
        assert request.headers["Gatehouse-Signature"].count("v1=") == 1
        assert verify(request.headers["Gatehouse-Signature"], request.body, new, now=now)
        assert not verify(request.headers["Gatehouse-Signature"], request.body, old, now=now)


def test_send_test_event_and_resend_from_the_dashboard(workspace, members, client_for,
                                                       receiver) -> None:
    endpoint, _ = endpoint_for(workspace, receiver, members, types=["key.revoked"])
    client = client_for("admin")
    base = f"/w/{workspace.slug}/settings/webhooks/{endpoint.public_id}/"
    assert client.post(base + "test").status_code == HTTPStatus.FOUND
    run_tasks()
    [request] = receiver.requests
    assert request.event["type"] == "webhook.test" and request.verified
    delivery = WebhookDelivery.objects.get()
    page = client.get(base).content.decode()
    assert delivery.public_id in page and "HTTP 200" in page

    assert client.post(base + f"deliveries/{delivery.public_id}/resend").status_code == 302
    run_tasks()
    assert [r.event["id"] for r in receiver.requests] == [request.event["id"]] * 2
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.state == DeliveryState.SENT


def test_a_leak_report_is_webhooked(workspace, members, receiver, make_key) -> None:
    endpoint_for(workspace, receiver, members, types=["key.leaked"])
    key, _ = make_key()
    apikey_revoke(key=key, reason="leaked", **by())
    run_tasks()
    [request] = receiver.requests
    assert request.event["type"] == "key.leaked"
    assert request.event["data"]["target"]["id"] == key.public_id


# --- SSRF and hostile input ---------------------------------------------------------------------

BAD_URLS = {
    "": "Enter the endpoint",
    "not a url": "spaces or control",
    "ftp://example.com/x": "must start with https",
    "http://example.com/hook": "must use https",
    "https://10.0.0.7/hook": "non-public",
    "https://192.168.1.1/": "non-public",
    "https://169.254.169.254/latest/meta-data/": "non-public",
    "https://100.64.0.1/": "non-public",
    "https://[fd00::1]/": "non-public",
    "https://[::ffff:10.0.0.1]/": "non-public",
    "https://0.0.0.0/": "non-public",
    "https://[::1/": "not valid",
    "https://example.com:99999/": "not valid",
    "https://user:pass@example.com/": "user name or password",
    "https://example.com/a\x00b": "Null characters are not allowed",
    "https://" + "a" * 2100 + ".com/": "longer than",
    "https://example.com/#frag": "fragment",
}


@pytest.mark.parametrize("url", list(BAD_URLS))
def test_a_bad_or_private_url_is_a_form_error_and_nothing_is_saved(
    url, workspace, members, client_for
) -> None:
    client = client_for("admin")
    response = client.post(f"/w/{workspace.slug}/settings/webhooks/",
                           {"url": url, "event_types": ["key.created"]})
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    text = response.content.decode()
    if len(url) <= 2000:  # the form's own max_length speaks first for the longest
        assert BAD_URLS[url] in text or "This field is required" in text, text[-2000:]
    assert not WebhookEndpoint.objects.exists()
    assert not AuditEvent.objects.filter(action="webhook.created").exists()


def test_loopback_is_refused_outside_development(workspace, members, client_for,
                                                 settings) -> None:
    settings.GATEHOUSE_WEBHOOK_ALLOW_LOOPBACK = False
    client = client_for("admin")
    for url in ("http://127.0.0.1:8080/", "https://127.0.0.1/", "https://localhost/",
                "https://[::1]/"):
        response = client.post(f"/w/{workspace.slug}/settings/webhooks/",
                               {"url": url, "event_types": ["key.created"]})
        assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY, url
    assert not WebhookEndpoint.objects.exists()


def test_the_address_is_checked_again_at_delivery(workspace, members, receiver, settings):
    """An endpoint saved while its address was allowed, then no longer (DNS now points it
    inside, or the setting changed): the delivery is refused, not sent, and recorded."""
    endpoint_for(workspace, receiver, members)
    settings.GATEHOUSE_WEBHOOK_ALLOW_LOOPBACK = False
    key_with_token(workspace)
    assert run_tasks() == ["retry"]
    assert receiver.requests == []
    assert WebhookAttempt.objects.get().error.startswith("refused")


def test_unknown_event_types_and_nul_descriptions_are_form_errors(workspace, members,
                                                                   client_for, receiver):
    client = client_for("admin")
    for data in ({"url": receiver.url, "event_types": ["passport.created"]},
                 {"url": receiver.url, "event_types": []},
                 {"url": receiver.url, "event_types": ["key.created"], "description": "a\x00b"},
                 {"url": receiver.url, "event_types": ["key.created"], "description": "d" * 500}):
        response = client.post(f"/w/{workspace.slug}/settings/webhooks/", data)
        assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY, data
    assert not WebhookEndpoint.objects.exists()


def test_viewers_and_editors_cannot_manage_webhooks(workspace, members, client_for) -> None:
    for role in ("viewer", "editor"):
        assert client_for(role).get(
            f"/w/{workspace.slug}/settings/webhooks/").status_code == HTTPStatus.FORBIDDEN


def test_a_secret_in_the_endpoint_url_query_stays_out_of_the_audit_log(
    workspace, members, client_for, receiver
) -> None:
    url = receiver.url + "?token=receiver-own-secret-123"
    response = client_for("admin").post(f"/w/{workspace.slug}/settings/webhooks/",
                                        {"url": url, "event_types": ["key.created"]})
    assert response.status_code == HTTPStatus.FOUND
    assert WebhookEndpoint.objects.get().url == url  # needed to deliver
    event = AuditEvent.objects.get(action="webhook.created")
    assert "receiver-own-secret-123" not in json.dumps(event.metadata) + event.target_label
    assert event.metadata["url"] == receiver.url + "?…"


def test_a_signing_secret_is_redacted_from_logs_like_every_credential(
    workspace, members, client_for, receiver, caplog
) -> None:
    import logging

    from core.credentials import redact_credentials

    endpoint, secret = endpoint_for(workspace, receiver, members)
    assert redact_credentials(f"secret={secret}!") == "secret=whsec_[REDACTED]!"
    with caplog.at_level(logging.DEBUG):
        client_for("admin").post(f"/w/{workspace.slug}/settings/webhooks/{endpoint.public_id}/"
                                 "rotate")
        key_with_token(workspace)
        run_tasks()
    assert "whsec_" not in caplog.text.replace("whsec_[REDACTED]", "")


def test_adding_changing_or_rotating_needs_a_recent_sign_in(workspace, members, client_for,
                                                           receiver) -> None:
    from audit import signin

    endpoint, _ = endpoint_for(workspace, receiver, members)
    client = client_for("admin")
    session = client.session
    session.pop(signin.RECENT_KEY)
    session.save()
    base = f"/w/{workspace.slug}/settings/webhooks/"
    hook = f"{base}{endpoint.public_id}/"
    for path, data in ((base, {"url": receiver.url, "event_types": ["key.created"]}),
                       (hook, {"url": "https://127.0.0.2/x", "event_types": ["key.created"],
                               "enabled": "on"}),
                       (hook + "rotate", {})):
        response = client.post(path, data)
        assert response.status_code != HTTPStatus.FOUND, path
        assert b"password" in response.content.lower(), path
    endpoint.refresh_from_db()
    assert endpoint.url == receiver.url and WebhookEndpoint.objects.count() == 1
    assert not AuditEvent.objects.filter(action__in=["webhook.updated",
                                                     "webhook.secret_rotated"]).exists()
