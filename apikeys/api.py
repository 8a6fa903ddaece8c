"""`GET /api/v1/me` and `GET /api/v1/keys` (SPEC §4)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from workspaces.pagination import keyset_page

from .errors import not_found
from .gateway import ANY_METHOD, api_endpoint, iso, list_response, read_limit, read_query
from .models import ApiKey


@api_endpoint()
def me(request: HttpRequest) -> JsonResponse:
    """Who is calling: the workspace, the credential, its effective scopes and the plan."""
    read_query(request, allowed=())
    principal = request.principal
    workspace = request.workspace
    plan = workspace.plan
    return JsonResponse(
        {
            "workspace": {"slug": workspace.slug, "name": workspace.name},
            "principal": {"kind": principal.kind, "id": principal.id, "name": principal.name},
            "scopes": sorted(request.scopes),
            "plan": {
                "code": plan.code,
                "name": plan.name,
                "writes_per_day": plan.writes_per_day,
                "passport_reads_per_day": plan.passport_reads_per_day,
                "passports_limit": plan.passports_limit,
                "active_keys_limit": plan.active_keys_limit,
            },
        }
    )


def key_json(key: ApiKey, now) -> dict:  # noqa: ANN001
    """Metadata only: the token is never stored, and its digest never leaves the database."""
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
    }


@api_endpoint(scope="keys:read")
def list_keys(request: HttpRequest) -> JsonResponse:
    """The workspace's keys, newest first, revoked and expired ones included (with `status`)."""
    query = read_query(request, allowed={"limit", "cursor"})
    keys = ApiKey.objects.for_workspace(request.workspace).select_related("rotated_from")
    rows, next_cursor = keyset_page(
        keys, cursor=query.get("cursor"), limit=read_limit(query),
        scope=f"keys:{request.workspace.pk}", descending=True,
    )
    now = timezone.now()
    return list_response([key_json(key, now) for key in rows], next_cursor)


@api_endpoint(methods=[ANY_METHOD], public=True)
def not_found_fallback(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
    """Every unknown path under /api/v1/ (any method, no credential needed): JSON 404, also
    with DEBUG on, where Django's own 404 page would be HTML."""
    return not_found("There is no API endpoint at this path.").response(request)
