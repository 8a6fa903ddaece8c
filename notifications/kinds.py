"""The catalogue of outbound event types (SPEC §13): which are emailed, which webhooks may pick.

An event type is emailed to a workspace's owners and admins (each may opt out per type on
Settings → Notifications) when `email` is true, and offered to webhook endpoints when `webhook`
is true. Audit actions that produce an event are mapped in `AUDIT_ACTIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    label: str
    email: bool
    webhook: bool


_TYPES = [
    EventType("key.expiring", "API key expiring in 7 days or 1 day", email=True, webhook=True),
    EventType("key.leaked", "Credential revoked because it was reported leaked",
              email=True, webhook=True),
    EventType("oauth.refresh_token_reused", "Refresh token replayed: the grant was ended",
              email=True, webhook=True),
    EventType("budget.threshold", "Daily budget at 80% or 100%", email=True, webhook=True),
    EventType("app.connected", "A new app was connected", email=True, webhook=True),
    EventType("app.awaiting_approval", "An app a member connected awaits approval",
              email=True, webhook=True),
    EventType("key.new_network", "API key used from a network it was never used from",
              email=True, webhook=True),
    EventType("webhook.disabled", "A webhook endpoint was disabled after failing for 3 days",
              email=True, webhook=False),
    EventType("key.created", "API key created", email=False, webhook=True),
    EventType("key.rotated", "API key rotated", email=False, webhook=True),
    EventType("key.revoked", "API key revoked", email=False, webhook=True),
    EventType("webhook.test", "Test event (sent from the dashboard)", email=False, webhook=False),
]

EVENT_TYPES: dict[str, EventType] = {t.name: t for t in _TYPES}
EMAIL_TYPES = [t for t in _TYPES if t.email]
WEBHOOK_TYPES = [t for t in _TYPES if t.webhook]

# Audit actions (audit.actions) that emit an outbound event, and its type. `key.revoked` and
# `oauth.token_revoked` with reason "leaked" become `key.leaked` as well (notifications.hooks).
AUDIT_ACTIONS: dict[str, str] = {
    "key.created": "key.created",
    "key.rotated": "key.rotated",
    "key.revoked": "key.revoked",
    "oauth.refresh_token_reused": "oauth.refresh_token_reused",
    "oauth.consent_granted": "app.connected",  # app.awaiting_approval when pending
    "key.new_network": "key.new_network",
}
HOOKED_ACTIONS = frozenset({*AUDIT_ACTIONS, "oauth.token_revoked"})
