"""Reads of the notifications pages, always from the workspace."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from workspaces.models import Workspace

from .models import EmailDelivery, Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint

RECENT = 50


def recent_events(workspace: Workspace) -> QuerySet[Event]:
    return (
        Event.objects.for_workspace(workspace).order_by("-created_at", "-pk")
        .prefetch_related(
            Prefetch("emails", queryset=EmailDelivery.objects.order_by("address")),
            Prefetch("webhook_deliveries",
                     queryset=WebhookDelivery.objects.select_related("endpoint")),
        )[:RECENT]
    )


def endpoints_for(workspace: Workspace) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.for_workspace(workspace).order_by("created_at", "pk")


def endpoint_deliveries(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event")
        .order_by("-created_at", "-pk")
        .prefetch_related(Prefetch(
            "attempt_log", queryset=WebhookAttempt.objects.order_by("-started_at", "-pk")
        ))[:RECENT]
    )
