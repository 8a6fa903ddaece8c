"""Reads for passports, always from the caller's workspace."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, timedelta

from django.utils import timezone

from core.pagination import keyset_page
from workspaces.models import Workspace

from .models import Collection, Passport, PassportOverageDay

PUBLIC_ID = re.compile(r"psp_[0-9A-Za-z]{22}")
COLLECTION_ID = re.compile(r"col_[0-9A-Za-z]{22}")


def _reach(collections: frozenset[int] | None) -> str:
    """A short tag of a restriction for cursor scopes: a cursor of one reach is refused by
    another."""
    if collections is None:
        return "*"
    joined = ",".join(map(str, sorted(collections))).encode()
    return hashlib.sha256(joined).hexdigest()[:16]


def passport_get(
    *, workspace: Workspace, public_id: str, collections: frozenset[int] | None = None
) -> Passport:
    """A passport of this workspace that a credential restricted to `collections` reaches
    (None: any); DoesNotExist for unknown ids, other workspaces' and unreachable ones alike."""
    if not PUBLIC_ID.fullmatch(public_id):  # never send arbitrary bytes (NUL...) to the database
        raise Passport.DoesNotExist
    return (
        Passport.objects.for_workspace(workspace).within(collections)
        .select_related("collection").get(public_id=public_id)
    )


def passport_page(
    *, workspace: Workspace, status: str | None, cursor: str | None, limit: int,
    collections: frozenset[int] | None = None, collection: Collection | None = None,
) -> tuple[list[Passport], str | None]:
    """One page of the workspace's passports in creation order, optionally of one status and
    one collection, only those a credential restricted to `collections` reaches.
    The cursor is tied to the workspace, the filter and the restriction."""
    queryset = Passport.objects.for_workspace(workspace).within(collections).select_related(
        "collection"
    )
    if status is not None:
        queryset = queryset.filter(status=status)
    if collection is not None:
        queryset = queryset.filter(collection=collection)
    reach = _reach(collections)
    return keyset_page(
        queryset, cursor=cursor, limit=limit,
        scope=(
            f"passports:{workspace.pk}:{status or '*'}:"
            f"{collection.pk if collection else '*'}:{reach}"
        ),
    )


def collection_get(
    *, workspace: Workspace, public_id: str, collections: frozenset[int] | None = None
) -> Collection:
    """A collection of this workspace that `collections` reaches (None: any); DoesNotExist
    otherwise."""
    if not COLLECTION_ID.fullmatch(public_id):
        raise Collection.DoesNotExist
    queryset = Collection.objects.filter(workspace=workspace)
    if collections is not None:
        queryset = queryset.filter(pk__in=sorted(collections))
    return queryset.get(public_id=public_id)


def collection_page(
    *, workspace: Workspace, cursor: str | None, limit: int,
    collections: frozenset[int] | None = None,
) -> tuple[list[Collection], str | None]:
    """One page of the workspace's collections (only a restricted credential's own)."""
    queryset = Collection.objects.filter(workspace=workspace)
    if collections is not None:
        queryset = queryset.filter(pk__in=sorted(collections))
    reach = _reach(collections)
    return keyset_page(
        queryset, cursor=cursor, limit=limit, scope=f"collections:{workspace.pk}:{reach}"
    )


def collections_resolve(*, workspace: Workspace, public_ids: list[str]) -> dict[str, Collection]:
    """The workspace's collections among these public ids, by id (unknown ones left out)."""
    wanted = [value for value in public_ids if COLLECTION_ID.fullmatch(value)]
    return {
        c.public_id: c
        for c in Collection.objects.filter(workspace=workspace, public_id__in=wanted)
    }


def overage_summary(workspace: Workspace, *, days: int = 30) -> dict:
    """The workspace's overage (SPEC §12) as the Usage page and `GET /api/v1/me` show it:
    whether the plan allows it and it is on, today's units (UTC) and the last `days` days."""
    plan = workspace.plan
    today = timezone.now().astimezone(UTC).date()
    if not plan.overage_allowed or plan.passports_limit is None:
        # No overage on this plan: nothing was counted (no query on the `me` hot path).
        return {"allowed": False, "enabled": False, "price_cents": None, "units_today": 0,
                "units_last_30_days": 0, "days": []}
    rows = list(
        PassportOverageDay.objects.filter(
            workspace=workspace, day__gt=today - timedelta(days=days)
        )
        .order_by("-day").values_list("day", "units")
    )
    units = dict(rows)
    return {
        "allowed": plan.overage_allowed,
        "enabled": bool(plan.overage_allowed and workspace.overage_enabled),
        "price_cents": plan.overage_price_cents if plan.overage_allowed else None,
        "units_today": units.get(today, 0),
        "units_last_30_days": sum(units.values()),
        "days": [{"day": day.isoformat(), "units": n} for day, n in rows],
    }
