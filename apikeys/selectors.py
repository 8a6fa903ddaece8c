"""Reads for API keys, starting from the tenant, plus the gateway's verification question."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from workspaces.models import Plan, Workspace

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
    key = apikey_by_digest(token_digest(token))
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


_BY_DIGEST_MODELS = (ApiKey, Workspace, Plan)
_by_digest_converters: WeakKeyDictionary = WeakKeyDictionary()


def _by_digest_sql(conn) -> str:  # noqa: ANN001
    qn = conn.ops.quote_name
    columns = [
        f"{alias}.{qn(field.column)}"
        for model, alias in zip(_BY_DIGEST_MODELS, "kwp", strict=True)
        for field in model._meta.concrete_fields
    ]
    key, ws, plan = (qn(model._meta.db_table) for model in _BY_DIGEST_MODELS)
    # Identifiers from the models' metadata, quoted; the digest is a bound parameter.
    return (
        f"SELECT {', '.join(columns)} FROM {key} k "  # noqa: S608
        f"JOIN {ws} w ON w.{qn('id')} = k.{qn('workspace_id')} "
        f"JOIN {plan} p ON p.{qn('id')} = w.{qn('plan_id')} "
        f"WHERE k.{qn('digest')} = %s"
    )


def _row_converters(conn) -> tuple[str, list]:  # noqa: ANN001
    """The statement and, per column, the converters the ORM would apply (JSON, datetimes on
    SQLite...), computed once per connection."""
    cached = _by_digest_converters.get(conn)
    if cached is None:
        converters = []
        for model in _BY_DIGEST_MODELS:
            for field in model._meta.concrete_fields:
                col = field.get_col(model._meta.db_table)
                convs = conn.ops.get_db_converters(col) + col.get_db_converters(conn)
                converters.append((convs, col))
        cached = _by_digest_converters[conn] = (_by_digest_sql(conn), converters)
    return cached


def apikey_by_digest(digest: str) -> ApiKey | None:
    """The key with this digest, its workspace and plan attached, in one raw SQL statement.

    This is the authentication hot path: the ORM's query building costs ~1.3 ms a request
    against ~0.36 ms for the same statement raw (measured on PostgreSQL), so the statement is
    built once and the rows are turned into model instances with the ORM's own converters.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    sql, converters = _row_converters(conn)
    with conn.cursor() as cursor:
        cursor.execute(sql, [digest])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, (convs, col) in enumerate(converters):
        for convert in convs:
            values[index] = convert(values[index], col, conn)
    instances = []
    start = 0
    for model in _BY_DIGEST_MODELS:
        end = start + len(model._meta.concrete_fields)
        instances.append(model.from_db(conn.alias, None, values[start:end]))
        start = end
    key, workspace, plan = instances
    Workspace.plan.field.set_cached_value(workspace, plan)
    ApiKey.workspace.field.set_cached_value(key, workspace)
    return key


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
