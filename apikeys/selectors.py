"""Reads for API keys, starting from the tenant, plus the gateway's verification question."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from workspaces.models import Workspace

from .models import ApiKey, KeyStatus
from .tokens import parse_token, token_digest


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """The answer to "is this token valid for this request right now".

    `error` is one of SPEC §4's codes (`invalid_credentials`, `environment_mismatch`,
    `key_revoked`, `key_expired`, `key_paused`, `ip_not_allowed`) or None with `key` set.
    """

    key: ApiKey | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def ip_allowed(ip: str | None, allowed: list[str]) -> bool:
    if not allowed:
        return True
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in allowed)


def apikey_check(token: str, *, ip: str | None, now: datetime | None = None) -> KeyCheck:
    """Verify a presented token: shape and checksum (no I/O), environment, then one indexed
    lookup by digest, then status, expiry (which includes a rotation's overlap), allowed IPs."""
    parsed = parse_token(token)
    if parsed is None:
        return KeyCheck(error="invalid_credentials")
    if parsed.environment != settings.GATEHOUSE_ENVIRONMENT:
        return KeyCheck(error="environment_mismatch")
    key = (
        ApiKey.objects.select_related("workspace", "workspace__plan")
        .filter(digest=token_digest(token))
        .first()
    )
    if key is None:
        return KeyCheck(error="invalid_credentials")
    if key.status == KeyStatus.REVOKED:
        return KeyCheck(key=key, error="key_revoked")
    if key.is_expired(now):
        return KeyCheck(key=key, error="key_expired")
    if key.status == KeyStatus.PAUSED:
        return KeyCheck(key=key, error="key_paused")
    if not ip_allowed(ip, key.allowed_ips):
        return KeyCheck(key=key, error="ip_not_allowed")
    return KeyCheck(key=key)


def apikey_get(*, workspace: Workspace, public_id: str) -> ApiKey:
    """A key of this workspace by public id; DoesNotExist for other workspaces' keys."""
    return ApiKey.objects.for_workspace(workspace).get(public_id=public_id)


def _dashboard_keys(workspace: Workspace) -> QuerySet[ApiKey]:
    return (
        ApiKey.objects.for_workspace(workspace)
        .select_related("created_by", "revoked_by")
        .annotate(has_successor=Exists(ApiKey.objects.filter(rotated_from=OuterRef("pk"))))
    )


def apikeys_for_dashboard(
    workspace: Workspace, now: datetime | None = None
) -> tuple[list[ApiKey], list[ApiKey]]:
    """(live keys, revoked-or-expired keys) with their creators and revokers, in two queries.

    Each key carries `has_successor`: it was rotated, so its expiry is when it stops.
    """
    now = now or timezone.now()
    base = _dashboard_keys(workspace)
    live = list(base.live(now).order_by("-created_at", "-id"))
    # Most recently ended first, whether by revocation or expiry (same order on every database).
    ended = Coalesce("revoked_at", "expires_at")
    inactive = list(base.inactive(now).order_by(ended.desc(), "-id")[:200])
    return live, inactive


def apikey_for_dashboard(*, workspace: Workspace, public_id: str) -> ApiKey:
    """One key of this workspace as the dashboard shows it (DoesNotExist for other workspaces')."""
    return _dashboard_keys(workspace).get(public_id=public_id)
