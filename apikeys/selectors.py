"""Reads for API keys, starting from the tenant, plus the gateway's verification question."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import (
    BigIntegerField,
    Exists,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    TextField,
)
from django.db.models.functions import Cast, Coalesce
from django.urls import reverse
from django.utils import timezone

from core.leases import lease_ticket
from core.pagination import keyset_page
from passports.models import Passport
from workspaces.credential_policy import Violation, enforcing, key_violations
from workspaces.hooks import NoncompliantCredential
from workspaces.models import Plan, Workspace
from workspaces.quotas import quota_usage_today

from .keycache import key_cache, keycache_versions
from .models import RECENT_PER_KEY, ApiKey, KeyNetwork, KeyRequest, KeyStatus, KeyUsageDay

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """The answer to "is this token valid for this request right now".

    `error` is one of SPEC §4's codes (`invalid_credentials`, `key_revoked`, `key_expired`,
    `key_paused`, `ip_not_allowed`, `policy_violation` — then `message` names the rules of the
    workspace's enforced credential policy the key breaks, SPEC §12) or None with `key` set; the
    token's shape and environment are
    the verifier's (`apikeys.verifier`), checked before the digest is looked up.
    `versions` is set when the key came from the per-process cache (`apikeys.keycache`): the
    version markers the request must confirm before it is served.
    """

    key: ApiKey | None = None
    error: str | None = None
    versions: dict[str, str] | None = None
    message: str = ""
    lease: int = 0  # the cached entry's lease ticket (core.leases); 0: confirm with Redis

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


def apikey_check_digest(
    digest: str,
    *,
    ip: str | None,
    now: datetime | None = None,
    cache: bool = False,
    fresh: bool = False,
) -> KeyCheck:
    """Verify the digest of a token whose shape and environment were checked: one indexed lookup,
    then status, expiry (which includes a rotation's overlap), allowed IPs.

    With `cache`, a key that passed before may come from this process's cache
    (`apikeys.keycache`, no I/O; the answer carries the versions to confirm), unless `fresh`;
    a key that passes a lookup is cached. A refusal is never answered from the cache.
    """
    versions, ticket = None, 0
    if cache:
        entry = None if fresh else key_cache.get(digest)
        if entry is not None:
            check = _check(entry.value, ip, now)
            if check.ok:
                return KeyCheck(key=entry.value, versions=entry.versions, lease=entry.ticket)
        key_cache.discard(digest)
        ticket = lease_ticket()  # before the markers and the row: see core.leases
        versions = keycache_versions(digest)  # before the row: see apikeys.keycache
    check = _check(apikey_by_digest(digest), ip, now)
    if versions is not None and check.ok:
        key_cache.put(digest, check.key, versions, ticket)
    return check


def _check(key: ApiKey | None, ip: str | None, now: datetime | None) -> KeyCheck:
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
    if enforcing(key.workspace):  # refused until edited to comply, never revoked
        violations = apikey_policy_violations(key, now)
        if violations:
            return KeyCheck(key=key, error="policy_violation", message=" ".join(
                [*(v.message for v in violations), "A workspace admin can edit the key to comply."]
            ))
    return KeyCheck(key=key)


_BY_DIGEST_MODELS = (ApiKey, Workspace, Plan)
_by_digest_converters: WeakKeyDictionary = WeakKeyDictionary()


def _by_digest_sql(conn: BaseDatabaseWrapper) -> str:
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


def _row_converters(conn: BaseDatabaseWrapper) -> tuple[str, list]:
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


# `key_` + 22 base62 characters (core.ids). Anything else is refused before the database,
# which would choke on some bytes (PostgreSQL refuses NUL in text: a 500 instead of a 404).
KEY_PUBLIC_ID = re.compile(r"key_[0-9A-Za-z]{22}")


def _by_public_id(keys: QuerySet[ApiKey], public_id: str) -> ApiKey:
    if not KEY_PUBLIC_ID.fullmatch(public_id):
        raise ApiKey.DoesNotExist
    return keys.get(public_id=public_id)


def apikey_get(*, workspace: Workspace, public_id: str) -> ApiKey:
    """A key of this workspace by public id; DoesNotExist for other workspaces' keys."""
    return _by_public_id(ApiKey.objects.for_workspace(workspace), public_id)


def _dashboard_keys(workspace: Workspace) -> QuerySet[ApiKey]:
    return (
        ApiKey.objects.for_workspace(workspace)
        .select_related("created_by", "revoked_by")
        .annotate(has_successor=Exists(ApiKey.objects.filter(rotated_from=OuterRef("pk"))))
    )


# `gk_prod_…abcd` (as the dashboard shows a key), a pasted token, `…abcd` or `abcd`: the hint.
HINT_QUERY = re.compile(
    r"^(?:gk_(?:prod|stg|dev)_(?:…|\.\.\.)?[0-9A-Za-z]*?|…|\.\.\.)?([0-9A-Za-z]{4})$"
)
INACTIVE_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """The key list's search (name, note or hint) and filters; empty strings filter nothing."""

    q: str = ""
    status: str = ""  # active, paused, expired, revoked
    environment: str = ""
    scope: str = ""

    @property
    def active(self) -> bool:
        return bool(self.q or self.status or self.environment or self.scope)

    def cursor_scope(self, workspace: Workspace) -> str:
        """Ties a page cursor to this workspace and this filter: another filter's cursor is
        refused rather than paging somewhere unexpected."""
        fingerprint = hashlib.sha256(
            "\x1f".join((self.q, self.status, self.environment, self.scope)).encode()
        ).hexdigest()[:16]
        return f"dashboard-keys:{workspace.pk}:{fingerprint}"


def _filtered(keys: QuerySet[ApiKey], where: KeyFilter) -> QuerySet[ApiKey]:
    if where.q:
        match = Q(name__icontains=where.q) | Q(note__icontains=where.q)
        hint = HINT_QUERY.match(where.q)
        if hint:
            match |= Q(hint=hint.group(1))
        keys = keys.filter(match)
    if where.environment:
        keys = keys.filter(environment=where.environment)
    if where.scope:
        # Scopes are a JSON list of registered names (the form allows no other): its text holds
        # `"<scope>"` on every database, which `__contains` on a JSONField would not (SQLite).
        keys = keys.annotate(scopes_text=Cast("scopes", TextField())).filter(
            scopes_text__contains=f'"{where.scope}"'
        )
    return keys


def apikeys_for_dashboard(
    workspace: Workspace,
    now: datetime | None = None,
    *,
    where: KeyFilter | None = None,
    cursor: str | None = None,
) -> tuple[list[ApiKey], list[ApiKey], str | None]:
    """(live keys, one page of revoked-or-expired keys, the next page's cursor), with their
    creators and revokers, in two queries, both narrowed by `where`.

    Live keys are few (the plan caps them) and listed whole; the revoked and expired ones grow
    forever, so they come in keyset pages (`core.pagination`, newest key first, no OFFSET; a bad
    cursor is `InvalidPageRequest`). Each key carries `has_successor`: it was rotated, so its
    expiry is when it stops.
    """
    now = now or timezone.now()
    where = where or KeyFilter()
    base = _filtered(_dashboard_keys(workspace), where)
    live_qs = base.live(now)
    inactive_qs = base.inactive(now)
    if where.status in (KeyStatus.ACTIVE, KeyStatus.PAUSED):
        live_qs = live_qs.filter(status=where.status)
        inactive_qs = inactive_qs.none()
    elif where.status == KeyStatus.REVOKED:
        live_qs = live_qs.none()
        inactive_qs = inactive_qs.filter(status=KeyStatus.REVOKED)
    elif where.status == "expired":
        live_qs = live_qs.none()
        inactive_qs = inactive_qs.exclude(status=KeyStatus.REVOKED)
    live = list(live_qs.order_by("-created_at", "-id"))
    inactive, next_cursor = keyset_page(
        inactive_qs, cursor=cursor, limit=INACTIVE_PAGE_SIZE,
        scope=where.cursor_scope(workspace), descending=True,
    )
    return live, inactive, next_cursor


# SPEC/issue 15 §7: a key nobody used within a week of its creation, or for a month, is probably
# forgotten (or leaked and idle): worth a look before it is needed or abused.
NEVER_USED_AFTER = timedelta(days=7)
UNUSED_FOR = timedelta(days=30)


def apikey_warnings(
    key: ApiKey, *, deployment: str, now: datetime | None = None
) -> list[dict]:
    """The warnings of a live key, each `{"code", "text"}`: `other_environment` (its token is
    refused here with `environment_mismatch`), `never_used` (not once in the 7 days since it was
    created), `unused` (not for 30 days). No queries: it reads the key's own columns."""
    now = now or timezone.now()
    if key.effective_status(now) in (KeyStatus.REVOKED, "expired"):
        return []
    warnings = []
    if key.environment != deployment:
        warnings.append({
            "code": "other_environment",
            "text": f"{key.get_environment_display()} key: this deployment is {deployment}, so "
                    "it is refused here (environment_mismatch); it works only against a "
                    f"{key.environment} deployment.",
        })
    if key.last_used_at is None:
        age = now - key.created_at
        if age >= NEVER_USED_AFTER:
            warnings.append({
                "code": "never_used",
                "text": f"Never used in the {age.days} days since it was created.",
            })
    elif now - key.last_used_at >= UNUSED_FOR:
        warnings.append({
            "code": "unused",
            "text": f"Not used for {(now - key.last_used_at).days} days.",
        })
    if key.new_network:
        warnings.append({
            "code": "new_network",
            "text": f"Used from a new network, {key.new_network}, on "
                    f"{key.new_network_at:%Y-%m-%d %H:%M} UTC. If you do not expect it, revoke "
                    "the key.",
        })
    return warnings


def apikey_networks(key: ApiKey) -> list[KeyNetwork]:
    """The networks the key was used from (at most NETWORKS_PER_KEY), busiest first."""
    return list(KeyNetwork.objects.filter(api_key=key).order_by("-request_count", "network"))


def live_key_count(workspace: Workspace, now: datetime | None = None) -> int:
    """Keys counting against the plan's limit, whatever the list's filter shows."""
    return ApiKey.objects.for_workspace(workspace).live(now).count()


def apikey_for_dashboard(*, workspace: Workspace, public_id: str) -> ApiKey:
    """One key of this workspace as the dashboard shows it (DoesNotExist for other workspaces')."""
    return _by_public_id(_dashboard_keys(workspace), public_id)


# --- Usage: the Usage page and the key detail page (read from the database and the counters) ---

REQUESTS_CHART_DAYS = 30


@dataclass(frozen=True, slots=True)
class WorkspaceUsage:
    budgets: list[dict]
    keys: list[ApiKey]  # each with `requests_today` and `is_live`
    live_keys: int
    passports: int


def usage_for_dashboard(workspace: Workspace, now: datetime | None = None) -> WorkspaceUsage:
    """Today's budgets from the shared counters (one round trip, as the gateway counts them, each
    with its `percent` of the limit), the plan's numbers, and today's requests per key: every live
    key and any other key used today, busiest first. Two queries besides the counters, whatever
    the number of keys. Requests per key come from the usage flush, so they lag by seconds."""
    now = now or timezone.now()
    # Counters down (CounterUnavailable): the page is a 503 like any outage (config/outages.py).
    budgets = [
        {**b, "percent": min(100, b["used"] * 100 // b["limit"]) if b["limit"] else None}
        for b in quota_usage_today(workspace_id=workspace.pk, plan=workspace.plan, now=now)
    ]
    today = now.astimezone(UTC).date()
    todays = KeyUsageDay.objects.filter(api_key=OuterRef("pk"), day=today).values("count")
    keys = list(
        ApiKey.objects.for_workspace(workspace)
        .annotate(
            requests_today=Coalesce(Subquery(todays), 0, output_field=BigIntegerField()),
            is_live=Exists(ApiKey.objects.live(now).filter(pk=OuterRef("pk"))),
        )
        .filter(Q(is_live=True) | Q(requests_today__gt=0))
        .order_by("-requests_today", "name", "-id")
    )
    return WorkspaceUsage(
        budgets=budgets,
        keys=keys,
        live_keys=sum(key.is_live for key in keys),
        passports=Passport.objects.for_workspace(workspace).count(),
    )


def apikey_for_detail(*, workspace: Workspace, public_id: str) -> ApiKey:
    """`apikey_for_dashboard` plus the rotation chain: `rotated_from` and `successors`."""
    keys = (
        _dashboard_keys(workspace)
        .select_related("rotated_from")
        .prefetch_related(
            Prefetch("successors", queryset=ApiKey.objects.order_by("created_at", "id"))
        )
    )
    return _by_public_id(keys, public_id)


def apikey_requests_per_day(
    key: ApiKey, *, days: int = REQUESTS_CHART_DAYS, now: datetime | None = None
) -> list[tuple[date, int]]:
    """(UTC day, requests) for the `days` days ending today, oldest first, days without use as 0."""
    today = (now or timezone.now()).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    counts = dict(
        KeyUsageDay.objects.filter(api_key=key, day__gte=first, day__lte=today)
        .values_list("day", "count")
    )
    span = (first + timedelta(days=n) for n in range(days))
    return [(day, counts.get(day, 0)) for day in span]


def apikey_recent_requests(key: ApiKey) -> list[KeyRequest]:
    """The key's last requests as the usage flush keeps them, newest first."""
    return list(key.recent_requests.order_by("-at", "-id")[:RECENT_PER_KEY])


def apikey_policy_violations(
    key: ApiKey, now: datetime | None = None, *, workspace: Workspace | None = None
) -> list[Violation]:
    """The workspace credential policy's rules the key breaks now (SPEC §12); `workspace` is the
    key's, when the caller already has it."""
    return key_violations(
        workspace or key.workspace, environment=key.environment, expires_at=key.expires_at,
        allowed_ips=key.allowed_ips, now=now or timezone.now(),
    )


def apikeys_noncompliant(*, workspace: Workspace, now: datetime) -> list[NoncompliantCredential]:
    """The live keys that break the workspace's credential policy, with the reasons (the Security
    page lists them; `workspaces.hooks`). Live keys are bounded by the plan's active-key limit."""
    if not (workspace.key_max_lifetime_days or workspace.key_environments
            or workspace.production_keys_need_ip_allowlist):
        return []
    found = []
    for key in ApiKey.objects.for_workspace(workspace).live(now).only(
        "public_id", "name", "environment", "hint", "expires_at", "allowed_ips", "workspace_id",
    ).order_by("name", "id"):
        key.workspace = workspace
        violations = apikey_policy_violations(key, now)
        if violations:
            found.append(NoncompliantCredential(
                label=f"{key.name} ({key.display_hint})",
                url=reverse("apikeys:detail", kwargs={"slug": workspace.slug,
                                                      "key_id": key.public_id}),
                reasons=tuple(v.message for v in violations),
            ))
    return found
ATTENTION_EXPIRY = timedelta(days=7)
ATTENTION_LIMIT = 5  # per kind: the list page has the rest


def apikey_attention(workspace: Workspace, now: datetime | None = None) -> list[dict]:
    """The Overview's "Needs attention" from keys (`workspaces.overview`): live keys expiring
    within 7 days, and keys never used since creation (after 7 days) or unused for 30 days.
    Two queries."""
    now = now or timezone.now()
    live = ApiKey.objects.for_workspace(workspace).live(now)
    items = []

    def url(key: ApiKey) -> str:
        return reverse("apikeys:detail", kwargs={"slug": workspace.slug, "key_id": key.public_id})

    for key in live.filter(expires_at__lte=now + ATTENTION_EXPIRY).order_by("expires_at")[
        :ATTENTION_LIMIT
    ]:
        seconds = (key.expires_at - now).total_seconds()
        # Rounded to the nearest unit, as the key list says it ("expires in 3 days").
        if seconds >= 23.5 * 3600:
            n, unit = round(seconds / 86400), "day"
        else:
            n, unit = max(1, round(seconds / 3600)), "hour"
        when = f"{n} {unit}{'s' if n != 1 else ''}"
        items.append({"level": "warning", "text": f"API key “{key.name}” ({key.display_hint}) "
                                                  f"expires in {when}: rotate it before then.",
                      "url": url(key), "link": "Open the key"})
    stale = live.filter(
        Q(last_used_at__isnull=True, created_at__lte=now - NEVER_USED_AFTER)
        | Q(last_used_at__lte=now - UNUSED_FOR)
    ).order_by("created_at")[:ATTENTION_LIMIT]
    for key in stale:
        warning = apikey_warnings(key, deployment=settings.GATEHOUSE_ENVIRONMENT, now=now)
        text = next((w["text"] for w in warning if w["code"] in ("never_used", "unused")), "")
        items.append({"level": "info", "text": f"API key “{key.name}” ({key.display_hint}): "
                                               f"{text} Revoke it if nothing needs it.",
                      "url": url(key), "link": "Open the key"})
    return items
