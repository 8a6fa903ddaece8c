"""Writes of the notifications app: events and their fan-out, webhook endpoints, preferences.

`event_emit` is called inside the transaction of the change that causes the event (from the
audit hook, `notifications.hooks`) or by the sweep (`notifications.sweep`); the event, its
deliveries and their queued tasks (django-tasks-db rows) commit together with the change.
Webhook endpoint changes are changes of access to the workspace's data and are audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from core.context import Actor, RequestContext
from core.sealing import seal
from workspaces.models import Membership, Workspace
from workspaces.roles import Role

from . import tasks
from .kinds import EVENT_TYPES, WEBHOOK_TYPES
from .models import (
    DeliveryState,
    EmailDelivery,
    EmailOptOut,
    Event,
    WebhookDelivery,
    WebhookEndpoint,
)
from .outbound import UrlRefused, resolve
from .signing import new_secret

SEAL_PURPOSE = "webhook-secret"
MAX_ENDPOINTS_PER_WORKSPACE = 16
MAX_DESCRIPTION_LENGTH = 200
RECIPIENT_ROLES = (Role.OWNER, Role.ADMIN)


def event_emit(
    *,
    workspace: Workspace,
    type: str,
    dedup_key: str,
    subject: str,
    data: dict[str, Any],
    endpoints: list[WebhookEndpoint] | None = None,
) -> Event | None:
    """Store one event and fan it out: an email per owner/admin who has not opted out (for the
    types that are emailed), a webhook delivery per enabled endpoint that subscribed (or to
    `endpoints` only: a test event). Returns None when an event with `dedup_key` exists already
    in the workspace (emitted by another worker, an earlier sweep or a retried change).

    Call it inside the transaction of the cause; it queues one task per delivery in it."""
    if Event.objects.filter(workspace=workspace, dedup_key=dedup_key[:200]).exists():
        return None
    try:
        with transaction.atomic():
            event = Event.objects.create(
                workspace=workspace, type=type, dedup_key=dedup_key[:200], subject=subject[:200],
                data=data,
            )
    except IntegrityError:  # emitted concurrently by another process
        return None
    event_type = EVENT_TYPES[type]
    emails: list[EmailDelivery] = []
    if event_type.email:
        opted_out = set(
            EmailOptOut.objects.filter(workspace=workspace, event_type=type)
            .values_list("user_id", flat=True)
        )
        members = (
            Membership.objects.filter(workspace=workspace, role__in=RECIPIENT_ROLES,
                                      user__is_active=True)
            .exclude(user__email="").select_related("user").order_by("user_id")
        )
        emails = [
            EmailDelivery(event=event, user=m.user, address=m.user.email)
            for m in members if m.user_id not in opted_out
        ]
        EmailDelivery.objects.bulk_create(emails)
    if endpoints is None:
        endpoints = [
            e for e in WebhookEndpoint.objects.for_workspace(workspace).filter(enabled=True)
            if type in e.event_types
        ]
    hooks = [WebhookDelivery(endpoint=e, event=event) for e in endpoints]
    WebhookDelivery.objects.bulk_create(hooks)
    # bulk_create set the primary keys (PostgreSQL and SQLite return them).
    for email in emails:
        tasks.send_email.enqueue(email.pk)
    for hook in hooks:
        tasks.deliver_webhook.enqueue(hook.pk)
    return event


# --- Preferences --------------------------------------------------------------------------------

def email_preferences_update(*, user: Any, workspace: Workspace, opted_out: set[str]) -> None:
    """Replace the member's opt-outs in `workspace` by `opted_out` (email event type names)."""
    unknown = opted_out - {name for name, t in EVENT_TYPES.items() if t.email}
    if unknown:
        raise ValidationError("Unknown notification types.")
    with transaction.atomic():
        EmailOptOut.objects.filter(user=user, workspace=workspace).exclude(
            event_type__in=opted_out
        ).delete()
        have = set(
            EmailOptOut.objects.filter(user=user, workspace=workspace)
            .values_list("event_type", flat=True)
        )
        EmailOptOut.objects.bulk_create(
            [EmailOptOut(user=user, workspace=workspace, event_type=t)
             for t in sorted(opted_out - have)],
            ignore_conflicts=True,
        )


# --- Webhook endpoints --------------------------------------------------------------------------

def _clean_endpoint(url: str, event_types: list[str], description: str) -> tuple[str, list[str]]:
    errors: dict[str, str] = {}
    try:
        resolve(url)
    except UrlRefused as exc:
        errors["url"] = str(exc)
    allowed = {t.name for t in WEBHOOK_TYPES}
    if not event_types:
        errors["event_types"] = "Choose at least one event type."
    elif not set(event_types) <= allowed:
        errors["event_types"] = "Unknown event type."
    if len(description) > MAX_DESCRIPTION_LENGTH or "\x00" in description:
        errors["description"] = f"At most {MAX_DESCRIPTION_LENGTH} characters, no NUL."
    if errors:
        raise ValidationError(errors)
    return url.strip(), sorted(set(event_types))


def url_for_display(url: str) -> str:
    """The URL without its query string: receivers often put their own secret there (Slack-
    style hook URLs), and the audit log and its exports are read by more people."""
    base, sep, _query = url.partition("?")
    return f"{base}?…" if sep else base


def _audit_endpoint(endpoint: WebhookEndpoint, action: str, *, actor: Actor,
                    context: RequestContext, metadata: dict[str, Any] | None = None) -> None:
    audit_record(
        action=action, actor=actor, workspace=endpoint.workspace, target_type="webhook",
        target_id=endpoint.public_id, target_label=url_for_display(endpoint.url)[:255],
        context=context,
        metadata=metadata or {},
    )


def webhook_endpoint_create(
    *, workspace: Workspace, url: str, event_types: list[str], description: str = "",
    actor: Actor, context: RequestContext,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret, returned once (stored sealed, never shown again)."""
    url, event_types = _clean_endpoint(url, event_types, description)
    secret = new_secret()
    with transaction.atomic():
        Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
        if WebhookEndpoint.objects.for_workspace(workspace).count() >= MAX_ENDPOINTS_PER_WORKSPACE:
            raise ValidationError(
                f"A workspace has at most {MAX_ENDPOINTS_PER_WORKSPACE} webhook endpoints."
            )
        endpoint = WebhookEndpoint.objects.create(
            workspace=workspace, url=url, event_types=event_types, description=description,
            sealed_secret=seal(secret, purpose=SEAL_PURPOSE), secret_hint=secret[-4:],
        )
        _audit_endpoint(endpoint, "webhook.created", actor=actor, context=context,
                        metadata={"url": url_for_display(url), "event_types": event_types})
    return endpoint, secret


def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, url: str, event_types: list[str], description: str,
    enabled: bool, actor: Actor, context: RequestContext,
) -> WebhookEndpoint:
    url, event_types = _clean_endpoint(url, event_types, description)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = {"url": url_for_display(endpoint.url), "event_types": endpoint.event_types,
                  "enabled": endpoint.enabled}
        endpoint.url, endpoint.event_types, endpoint.description = url, event_types, description
        if enabled and not endpoint.enabled:
            endpoint.disabled_reason, endpoint.consecutive_failures = "", 0
        endpoint.enabled = enabled
        endpoint.save()
        after = {"url": url_for_display(endpoint.url), "event_types": endpoint.event_types,
                 "enabled": endpoint.enabled}
        if before != after:
            _audit_endpoint(endpoint, "webhook.updated", actor=actor, context=context,
                            metadata={"from": before, "to": after})
    return endpoint


def webhook_secret_rotate(
    *, endpoint: WebhookEndpoint, actor: Actor, context: RequestContext,
    overlap: timedelta | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new secret, returned once; the current one keeps signing beside it (two `v1=`) for
    `overlap` (GATEHOUSE_WEBHOOK_SECRET_OVERLAP_SECONDS, 24 h by default; 0: ends at once)."""
    if overlap is None:
        overlap = timedelta(seconds=settings.GATEHOUSE_WEBHOOK_SECRET_OVERLAP_SECONDS)
    if overlap < timedelta(0) or overlap > timedelta(days=7):
        raise ValidationError("The overlap must be between 0 and 7 days.")
    secret = new_secret()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if overlap:
            endpoint.sealed_previous_secret = endpoint.sealed_secret
            endpoint.previous_secret_expires_at = timezone.now() + overlap
        else:
            endpoint.sealed_previous_secret, endpoint.previous_secret_expires_at = "", None
        endpoint.sealed_secret = seal(secret, purpose=SEAL_PURPOSE)
        endpoint.secret_hint = secret[-4:]
        endpoint.save()
        _audit_endpoint(endpoint, "webhook.secret_rotated", actor=actor, context=context,
                        metadata={"overlap_seconds": int(overlap.total_seconds())})
    return endpoint, secret


def webhook_endpoint_delete(
    *, endpoint: WebhookEndpoint, actor: Actor, context: RequestContext
) -> None:
    with transaction.atomic():
        _audit_endpoint(endpoint, "webhook.deleted", actor=actor, context=context,
                        metadata={"url": url_for_display(endpoint.url)})
        endpoint.delete()


def webhook_endpoint_disable(
    *, endpoint: WebhookEndpoint, reason: str, actor: Actor, context: RequestContext
) -> bool:
    """Turn the endpoint off (after 3 days of failed deliveries) and email the owners and
    admins; False if it was off already. Its pending deliveries are skipped."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if not endpoint.enabled:
            return False
        endpoint.enabled, endpoint.disabled_reason = False, reason[:200]
        endpoint.save(update_fields=["enabled", "disabled_reason"])
        WebhookDelivery.objects.filter(endpoint=endpoint, state=DeliveryState.PENDING).update(
            state=DeliveryState.SKIPPED, leased_until=None
        )
        _audit_endpoint(endpoint, "webhook.disabled", actor=actor, context=context,
                        metadata={"reason": reason[:200]})
        event_emit(
            workspace=endpoint.workspace, type="webhook.disabled",
            dedup_key=f"webhook.disabled:{endpoint.public_id}:{timezone.now().isoformat()}",
            subject=f"Webhook endpoint {url_for_display(endpoint.url)[:120]} was disabled",
            data={"endpoint": endpoint.public_id, "url": url_for_display(endpoint.url),
                  "reason": reason[:200]},
        )
    return True


def webhook_test_send(*, endpoint: WebhookEndpoint) -> Event:
    """A `webhook.test` event to this endpoint only (whatever types it picked)."""
    with transaction.atomic():
        event = event_emit(
            workspace=endpoint.workspace, type="webhook.test",
            dedup_key=f"webhook.test:{endpoint.public_id}:{timezone.now().isoformat()}",
            subject="Test event", data={"endpoint": endpoint.public_id}, endpoints=[endpoint],
        )
    assert event is not None
    return event


@dataclass(frozen=True, slots=True)
class Resent:
    delivery: WebhookDelivery
    queued: bool


def webhook_delivery_resend(*, delivery: WebhookDelivery) -> Resent:
    """Send the delivery's event again now (same event id: a receiver that has it ignores it);
    not queued when a worker is sending it at this moment or the endpoint is disabled."""
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(
            pk=delivery.pk
        )
        busy = delivery.leased_until is not None and delivery.leased_until > now
        if busy or not delivery.endpoint.enabled:
            return Resent(delivery, queued=False)
        delivery.state, delivery.next_attempt_at = DeliveryState.PENDING, now
        delivery.created_at = now  # the 3-day retry window starts again
        delivery.save(update_fields=["state", "next_attempt_at", "created_at"])
        tasks.deliver_webhook.enqueue(delivery.pk)
    return Resent(delivery, queued=True)
