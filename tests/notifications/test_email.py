"""Email notifications (SPEC §13, issue 18 point 2): who gets them, what they say, once each,
opt-outs, and the transaction rule — through the doors that cause them."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.core import mail
from django.db import transaction
from django.test import Client
from django.utils import timezone

from apikeys.services import apikey_revoke
from core.counters import counter_take
from notifications.models import DeliveryState, EmailDelivery, EmailOptOut, Event
from notifications.sweep import notify_due
from tests.factories import by, key_with_token
from tests.notifications.helpers import queued, run_tasks
from workspaces.quotas import Budget, budget_counter_key, next_utc_midnight

pytestmark = pytest.mark.django_db

LEAK_URL = "/api/v1/leaked-credentials"


def recipients() -> list[str]:
    return sorted(address for message in mail.outbox for address in message.to)


def test_a_leaked_key_is_emailed_to_owners_and_admins_once_without_the_token(
    workspace, members, make_key
) -> None:
    key, token = make_key()
    response = Client().post(LEAK_URL, {"credentials": [token], "url": "https://gist.example/x"},
                             content_type="application/json", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == HTTPStatus.ACCEPTED
    # Queued in the revocation's transaction; nothing is sent by the request itself.
    assert mail.outbox == []
    assert queued() >= 2

    run_tasks()

    leaked = [m for m in mail.outbox if "reported leaked" in m.subject]
    assert sorted(a for m in leaked for a in m.to) == ["admin@acme.test", "owner@acme.test"]
    message = leaked[0]
    assert key.name in message.subject
    assert "https://gist.example/x" in message.body
    html = message.alternatives[0]
    assert html.mimetype == "text/html" and "revoked at once" in html.content
    for m in mail.outbox:
        assert token not in m.body and token not in m.alternatives[0].content
        assert token[-12:] not in m.body
    event = Event.objects.get(type="key.leaked")
    assert set(EmailDelivery.objects.filter(event=event).values_list("state", flat=True)) == {
        DeliveryState.SENT
    }
    # Running the queue again (a duplicate task, a second worker) sends nothing more.
    for delivery in EmailDelivery.objects.filter(event=event):
        from notifications.tasks import send_email
        send_email.enqueue(delivery.pk)
    count = len(mail.outbox)
    assert set(run_tasks()) == {"not claimed"}
    assert len(mail.outbox) == count


def test_a_rolled_back_change_sends_nothing(workspace, members) -> None:
    key, _ = key_with_token(workspace)
    with pytest.raises(RuntimeError), transaction.atomic():
        apikey_revoke(key=key, reason="leaked", **by(members["owner"]))
        raise RuntimeError("the change fails after its audit event")
    assert not Event.objects.filter(type__in=["key.revoked", "key.leaked"]).exists()
    assert queued() == 0
    run_tasks()
    assert mail.outbox == []


def test_opting_out_stops_that_kind_only_for_that_member(workspace, members, owner_client):
    response = owner_client.post(
        f"/w/{workspace.slug}/settings/notifications/",
        {"email": ["key.expiring", "budget.threshold", "oauth.refresh_token_reused",
                   "app.connected", "app.awaiting_approval", "key.new_network",
                   "webhook.disabled"]},  # key.leaked unticked
    )
    assert response.status_code == HTTPStatus.FOUND
    assert list(EmailOptOut.objects.values_list("event_type", flat=True)) == ["key.leaked"]

    key, _ = key_with_token(workspace)
    apikey_revoke(key=key, reason="leaked", **by(members["admin"]))
    run_tasks()
    assert recipients() == ["admin@acme.test"]


def test_a_key_expiring_is_told_at_7_days_and_at_1_day_once_each(workspace, members) -> None:
    now = timezone.now()
    key, token = key_with_token(workspace, expires_at=now + timedelta(days=6, hours=12))
    assert notify_due(now).emitted == {"key.expiring": 1}
    assert notify_due(now).emitted == {}  # a second sweep (or a second scheduler) emits nothing
    run_tasks()
    assert recipients() == ["admin@acme.test", "owner@acme.test"]
    message = mail.outbox[0]
    assert message.subject == "[Gatehouse] API key Integration expires in 7 days"
    assert f"/w/{workspace.slug}/settings/api-keys/" in message.body  # the link to rotate it
    assert token not in message.body

    mail.outbox.clear()
    later = now + timedelta(days=5, hours=13)
    with time_machine.travel(later, tick=False):
        assert notify_due(later).emitted == {"key.expiring": 1}
        assert notify_due(later).emitted == {}
        run_tasks()
    assert [m.subject for m in mail.outbox] == [
        "[Gatehouse] API key Integration expires in 1 day"
    ] * 2


def test_a_revoked_or_far_off_key_is_not_told(workspace, members) -> None:
    now = timezone.now()
    key_with_token(workspace, expires_at=now + timedelta(days=30))
    gone, _ = key_with_token(workspace, expires_at=now + timedelta(days=2))
    apikey_revoke(key=gone, **by(members["owner"]))
    assert notify_due(now).emitted == {}


def test_the_daily_budget_is_told_at_80_and_100_percent(workspace, members, plan) -> None:
    now = timezone.now()
    limit = workspace.plan.writes_per_day
    assert limit
    key = budget_counter_key(workspace.pk, Budget.WRITES, now)
    for _ in range(int(limit * 0.8)):
        counter_take(key, limit=limit, expires_at=next_utc_midnight(now))
    assert notify_due(now).emitted == {"budget.threshold": 1}
    assert notify_due(now).emitted == {}
    for _ in range(limit - int(limit * 0.8)):
        counter_take(key, limit=limit, expires_at=next_utc_midnight(now))
    assert notify_due(now).emitted == {"budget.threshold": 1}
    run_tasks()
    subjects = sorted({m.subject for m in mail.outbox})
    assert subjects == [
        f"[Gatehouse] Daily writes budget at 100% ({limit} of {limit})",
        f"[Gatehouse] Daily writes budget at 80% ({int(limit * 0.8)} of {limit})",
    ]
    assert "refused with 429" in next(m for m in mail.outbox if "100%" in m.subject).body


def test_a_refresh_token_replay_is_emailed(workspace, members, oauth_app, tokens_for) -> None:
    from tests.oauth.test_tokens import refresh

    first = tokens_for(oauth_app)
    refresh(oauth_app, first["refresh_token"])
    with time_machine.travel(timezone.now() + timedelta(seconds=3), tick=False):
        assert refresh(oauth_app, first["refresh_token"]).status_code == HTTPStatus.BAD_REQUEST
        run_tasks()
    replayed = [m for m in mail.outbox if "replayed" in m.subject]
    assert sorted(a for m in replayed for a in m.to) == ["admin@acme.test", "owner@acme.test"]
    for m in mail.outbox:
        assert first["refresh_token"] not in m.body and "grt_" not in m.body


def test_a_new_app_connected_is_emailed(workspace, members, oauth_app, tokens_for) -> None:
    tokens_for(oauth_app, role="editor")
    run_tasks()
    connected = [m for m in mail.outbox if "was connected" in m.subject]
    assert sorted(a for m in connected for a in m.to) == ["admin@acme.test", "owner@acme.test"]
    assert "editor@acme.test" in connected[0].body  # who connected it
    assert "gat_" not in connected[0].body


def test_a_bounced_address_is_recorded_and_others_still_get_theirs(
    workspace, members, settings, monkeypatch
) -> None:
    from django.core.mail.backends.locmem import EmailBackend

    original = EmailBackend.send_messages

    def refuse_admin(self, messages):
        if any("admin@acme.test" in m.to for m in messages):
            raise smtplib.SMTPRecipientsRefused({"admin@acme.test": (550, b"no such user")})
        return original(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", refuse_admin)
    key, _ = key_with_token(workspace)
    apikey_revoke(key=key, reason="leaked", **by(members["owner"]))
    run_tasks()
    assert recipients() == ["owner@acme.test"]
    bounced = EmailDelivery.objects.get(address="admin@acme.test")
    assert bounced.state == DeliveryState.FAILED
    assert "recipient refused" in bounced.last_error
    assert EmailDelivery.objects.get(address="owner@acme.test").state == DeliveryState.SENT


def test_the_notifications_page_lists_events_with_their_delivery_state(
    workspace, members, client_for
) -> None:
    key, _ = key_with_token(workspace, name="Payroll")
    apikey_revoke(key=key, reason="leaked", **by(members["owner"]))
    run_tasks()
    page = client_for("admin").get(f"/w/{workspace.slug}/settings/notifications/")
    assert page.status_code == HTTPStatus.OK
    text = page.content.decode()
    event = Event.objects.get(type="key.leaked")
    assert event.public_id in text and "key.leaked" in text
    assert "owner@acme.test" in text and "Sent" in text
    # A viewer chooses their own emails but sees no workspace events.
    viewer_page = client_for("viewer").get(f"/w/{workspace.slug}/settings/notifications/")
    assert viewer_page.status_code == HTTPStatus.OK
    assert event.public_id not in viewer_page.content.decode()
    assert "you receive none" in viewer_page.content.decode()


def test_unknown_notification_types_are_a_form_error(workspace, members, owner_client) -> None:
    response = owner_client.post(f"/w/{workspace.slug}/settings/notifications/",
                                 {"email": ["key.expiring", "passport.created\x00"]})
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert not EmailOptOut.objects.exists()


def test_a_key_used_from_a_new_network_is_emailed(workspace, members, make_key) -> None:
    from datetime import UTC, datetime

    from apikeys.models import KeyNetwork
    from gateway.usage import usage_flush

    key, token = make_key()
    seen = datetime(2026, 11, 1, tzinfo=UTC)
    KeyNetwork.objects.create(api_key=key, network="203.0.113.0/24", request_count=40,
                              first_seen_at=seen, last_seen_at=seen)
    response = Client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                            REMOTE_ADDR="198.51.100.23")
    assert response.status_code == HTTPStatus.OK
    usage_flush()  # the networks are written (and the new one noticed) by the usage flush
    run_tasks()
    [message] = [m for m in mail.outbox if "new network" in m.subject and "owner" in m.to[0]]
    assert key.name in message.subject
    assert "198.51.100.0/24" in message.body
    assert f"/settings/api-keys/{key.public_id}/" in message.body
    assert sorted(a for m in mail.outbox if "new network" in m.subject for a in m.to) == [
        "admin@acme.test", "owner@acme.test"]
    assert token not in message.body and token[-12:] not in message.body


def test_an_app_awaiting_approval_is_emailed_instead_of_connected(workspace, members) -> None:
    from core.context import RequestContext
    from oauth import services as oauth_services

    workspace.app_access_policy = "approval"
    workspace.save(update_fields=["app_access_policy"])
    application, _secret = oauth_services.oauth_app_register_dynamic(
        name="Unvetted tool", redirect_uris=["https://tool.example.test/cb"], confidential=False,
        context=RequestContext(),
    )
    connection = oauth_services.connection_grant(
        user=members["editor"], application=application, workspace=workspace,
        scopes=["passports:read"], context=RequestContext(),
    )
    assert connection.is_pending
    run_tasks()
    awaiting = [m for m in mail.outbox if "awaits your approval" in m.subject]
    assert sorted(a for m in awaiting for a in m.to) == ["admin@acme.test", "owner@acme.test"]
    assert "Unvetted tool" in awaiting[0].subject
    assert "editor@acme.test" in awaiting[0].body
    assert "/settings/connected-apps/?status=pending" in awaiting[0].body
    assert not [m for m in mail.outbox if "was connected" in m.subject]
