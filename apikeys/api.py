"""`GET /api/v1/keys` (SPEC §4): the workspace's API keys, metadata only, never tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import JsonResponse
from django.utils import timezone

from apikit.endpoints import api_endpoint
from apikit.principal import ApiRequest
from apikit.requests import (
    iso,
    list_response,
    read_limit,
    read_query,
)
from core.pagination import keyset_page
from passports.models import Collection
from workspaces.caps import UNCAPPED, BudgetState, budget_states

from .models import ApiKey

if TYPE_CHECKING:
    from datetime import datetime


def key_json(
    key: ApiKey, now: datetime, collection_ids: dict[int, str] | None = None,
    budget: BudgetState = UNCAPPED,
) -> dict:
    """Metadata only: the token is never stored, and its digest never leaves the database.
    `collection_ids` maps collection row ids to public ids (deleted ones are left out); `budget`
    is where the key's own caps stand."""
    return {
        "id": key.public_id,
        "name": key.name,
        "note": key.note,
        "hint": key.display_hint,
        "environment": key.environment,
        "scopes": list(key.scopes),
        "status": key.effective_status(now),
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "last_used_at": iso(key.last_used_at),
        "rate_limit_per_minute": key.rate_limit_per_minute,
        "allowed_ips": list(key.allowed_ips),
        "rotated_from": key.rotated_from.public_id if key.rotated_from_id else None,
        "collections": (
            None if key.collections is None
            else [collection_ids[pk] for pk in key.collections if pk in (collection_ids or {})]
        ),
        "budget": {**budget.as_json(), "credits_refill_at": iso(budget.refills_at)},
        "new_network": (
            {"network": key.new_network, "seen_at": iso(key.new_network_at)}
            if key.new_network else None
        ),
    }


@api_endpoint(scope="keys:read")
def list_keys(request: ApiRequest) -> JsonResponse:
    """The workspace's keys, newest first, revoked and expired ones included (with `status`)."""
    query = read_query(request, allowed={"limit", "cursor"})
    keys = ApiKey.objects.for_workspace(request.workspace).select_related("rotated_from")
    rows, next_cursor = keyset_page(
        keys, cursor=query.get("cursor"), limit=read_limit(query),
        scope=f"keys:{request.workspace.pk}", descending=True,
    )
    now = timezone.now()
    wanted = {pk for key in rows for pk in (key.collections or ())}
    collection_ids = dict(
        Collection.objects.filter(workspace=request.workspace, pk__in=sorted(wanted))
        .values_list("pk", "public_id")
    ) if wanted else {}
    budgets = budget_states([key.caps() for key in rows], now)  # one counter read for the page
    return list_response(
        [key_json(key, now, collection_ids, budget)
         for key, budget in zip(rows, budgets, strict=True)],
        next_cursor,
    )
