"""Sending: one email or one webhook delivery per call, at least once, never twice at a time.

A call first *claims* its delivery with one conditional UPDATE — pending, due, and not leased
(or its lease ran out) — which sets a lease (`leased_until`) and counts the attempt. Only the
process whose UPDATE changed the row sends; the others (a duplicate task, a second worker)
return. No transaction is held while the request or the SMTP conversation runs; the outcome is
written afterwards. A worker killed mid-send leaves the lease to run out, and the sweep queues
the delivery again (`notifications.sweep`): the receiver may then see the same event twice,
with the same `id` and `Gatehouse-Delivery` — at least once, deduplicated by the receiver.

Webhook retries back off exponentially (GATEHOUSE_WEBHOOK_RETRY_BASE_SECONDS × 5ⁿ, at most
GATEHOUSE_WEBHOOK_RETRY_MAX_DELAY_SECONDS apart) for GATEHOUSE_WEBHOOK_RETRY_WINDOW_SECONDS
(3 days) from the first attempt; then the delivery fails and the endpoint is disabled, its
owners emailed. A non-2xx answer, a timeout, a refused address and a redirect are failures.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone

from core.context import Actor, RequestContext
from core.sealing import SealBroken, unseal

from . import services, tasks
from .kinds import EVENT_TYPES
from .models import (
    DeliveryState,
    EmailDelivery,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from .outbound import post
from .signing import HEADER, signature_header

log = logging.getLogger(__name__)
SYSTEM = Actor.system("webhook delivery")
EMAIL_ATTEMPTS = 5


def _claim(model: type[EmailDelivery] | type[WebhookDelivery], pk: int, lease: float,
           now: datetime) -> bool:
    return bool(
        model.objects.filter(pk=pk, state=DeliveryState.PENDING, next_attempt_at__lte=now)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
        .update(leased_until=now + timedelta(seconds=lease), attempts=F("attempts") + 1)
    )


def webhook_lease_seconds() -> float:
    """How long a claimed webhook delivery is its worker's: the request's deadline twice over
    and 5 s (the outcome's write included); then the sweep may queue it again."""
    return float(settings.GATEHOUSE_WEBHOOK_TIMEOUT_SECONDS) * 2 + 5


def retry_delay(attempts: int) -> float:
    base = float(settings.GATEHOUSE_WEBHOOK_RETRY_BASE_SECONDS)
    return min(base * 5 ** max(attempts - 1, 0),
               float(settings.GATEHOUSE_WEBHOOK_RETRY_MAX_DELAY_SECONDS))


# --- Webhooks -----------------------------------------------------------------------------------

def event_payload(event: Event) -> bytes:
    """The body every attempt of every delivery of `event` sends, byte for byte."""
    return json.dumps(
        {
            "id": event.public_id,
            "type": event.type,
            "created": int(event.created_at.timestamp()),
            "workspace": event.workspace.slug,
            "data": event.data,
        },
        separators=(",", ":"), sort_keys=True, ensure_ascii=True,
    ).encode()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    secrets_ = [unseal(endpoint.sealed_secret, purpose=services.SEAL_PURPOSE)]
    if endpoint.sealed_previous_secret and endpoint.previous_secret_expires_at and (
        endpoint.previous_secret_expires_at > now
    ):
        secrets_.append(unseal(endpoint.sealed_previous_secret, purpose=services.SEAL_PURPOSE))
    return secrets_


def webhook_deliver(delivery_id: int) -> str:
    now = timezone.now()
    lease = webhook_lease_seconds()
    if not _claim(WebhookDelivery, delivery_id, lease, now):
        return "not claimed"
    delivery = WebhookDelivery.objects.select_related("endpoint", "event__workspace").get(
        pk=delivery_id
    )
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            state=DeliveryState.SKIPPED, leased_until=None
        )
        return "skipped"
    body = event_payload(delivery.event)
    try:
        secrets_ = signing_secrets(endpoint, now)
    except SealBroken:
        return _webhook_failed(delivery, None, "the signing secret cannot be opened", now)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Gatehouse-Webhooks/1.0",
        HEADER: signature_header(secrets_, timestamp, body),
        "Gatehouse-Event-Id": delivery.event.public_id,
        "Gatehouse-Delivery": delivery.public_id,
    }
    started = timezone.now()
    response = post(endpoint.url, body=body, headers=headers)
    excerpt = response.body[:500].decode("utf-8", "replace").replace("\x00", "")
    error = response.error
    if response.status is not None and not response.ok:
        error = f"HTTP {response.status}" + (" (redirects are not followed)"
                                             if 300 <= response.status < 400 else "")
    WebhookAttempt.objects.create(
        delivery=delivery, started_at=started, status=response.status,
        latency_ms=min(response.latency_ms, 2**31 - 1), error=error[:300],
        response_excerpt=excerpt,
    )
    if response.ok:
        with transaction.atomic():
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                state=DeliveryState.SENT, delivered_at=timezone.now(), leased_until=None,
                last_status=response.status, last_error="",
            )
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0)
        return "sent"
    return _webhook_failed(delivery, response.status, error, timezone.now())


def _webhook_failed(delivery: WebhookDelivery, status: int | None, error: str,
                    now: datetime) -> str:
    window = timedelta(seconds=float(settings.GATEHOUSE_WEBHOOK_RETRY_WINDOW_SECONDS))
    attempts = WebhookDelivery.objects.values_list("attempts", flat=True).get(pk=delivery.pk)
    next_at = now + timedelta(seconds=retry_delay(attempts))
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(
            consecutive_failures=F("consecutive_failures") + 1
        )
        if next_at - delivery.created_at > window:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                state=DeliveryState.FAILED, leased_until=None, last_status=status,
                last_error=error[:300],
            )
            services.webhook_endpoint_disable(
                endpoint=delivery.endpoint, actor=SYSTEM,
                context=RequestContext(door="worker"),
                reason=f"Deliveries failed for {window.total_seconds() / 86400:g} days "
                       f"(last: {error[:100]}).",
            )
            return "failed"
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=next_at, leased_until=None, last_status=status,
            last_error=error[:300],
        )
        tasks.deliver_webhook.using(run_after=next_at).enqueue(delivery.pk)
    return "retry"


# --- Email --------------------------------------------------------------------------------------

def email_message(delivery: EmailDelivery) -> EmailMultiAlternatives:
    event = delivery.event
    context = {
        "event": event, "type": EVENT_TYPES[event.type], "data": event.data,
        "workspace": event.workspace, "user": delivery.user,
        "base_url": settings.GATEHOUSE_PUBLIC_URL.rstrip("/"),
    }
    text = render_to_string("notifications/email.txt", context)
    html = render_to_string("notifications/email.html", context)
    message = EmailMultiAlternatives(
        subject=f"[Gatehouse] {event.subject}", body=text,
        from_email=settings.DEFAULT_FROM_EMAIL, to=[delivery.address],
        headers={"X-Gatehouse-Event": event.public_id},
    )
    message.attach_alternative(html, "text/html")
    return message


def email_deliver(delivery_id: int) -> str:
    now = timezone.now()
    if not _claim(EmailDelivery, delivery_id, 120, now):
        return "not claimed"
    delivery = EmailDelivery.objects.select_related("event__workspace", "user").get(
        pk=delivery_id
    )
    try:
        email_message(delivery).send()
    except smtplib.SMTPRecipientsRefused as exc:
        # The address bounced: recorded, not retried; the other recipients are not affected.
        EmailDelivery.objects.filter(pk=delivery_id).update(
            state=DeliveryState.FAILED, leased_until=None,
            last_error=f"recipient refused: {sorted(exc.recipients)[:1]}"[:300],
        )
        return "bounced"
    except (smtplib.SMTPException, OSError) as exc:
        if delivery.attempts >= EMAIL_ATTEMPTS:
            EmailDelivery.objects.filter(pk=delivery_id).update(
                state=DeliveryState.FAILED, leased_until=None,
                last_error=f"{type(exc).__name__}: {exc}"[:300],
            )
            return "failed"
        next_at = timezone.now() + timedelta(seconds=retry_delay(delivery.attempts))
        with transaction.atomic():
            EmailDelivery.objects.filter(pk=delivery_id).update(
                next_attempt_at=next_at, leased_until=None,
                last_error=f"{type(exc).__name__}: {exc}"[:300],
            )
            tasks.send_email.using(run_after=next_at).enqueue(delivery_id)
        return "retry"
    EmailDelivery.objects.filter(pk=delivery_id).update(
        state=DeliveryState.SENT, sent_at=timezone.now(), leased_until=None, last_error="",
    )
    return "sent"
