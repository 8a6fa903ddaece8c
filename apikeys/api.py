"""`GET /api/v1/me`, `GET /api/v1/keys` (SPEC §4) and `POST /api/v1/leaked-credentials`."""

from __future__ import annotations

from http import HTTPStatus

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django_ratelimit.core import is_ratelimited

from audit.services import RequestContext
from workspaces.pagination import keyset_page

from .errors import ApiError, invalid_request, not_found
from .failed_auth import ip_bucket
from .gateway import (
    ANY_METHOD,
    api_endpoint,
    check_json_object,
    is_unicode_text,
    iso,
    list_response,
    read_json,
    read_limit,
    read_query,
)
from .leaks import (
    MAX_CREDENTIAL_LENGTH,
    MAX_CREDENTIALS,
    REPORTS_PER_MINUTE,
    leaked_credentials_revoke,
)
from .leaks import MAX_URL_LENGTH as MAX_LEAK_URL_LENGTH
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


# --- Leaked credentials ------------------------------------------------------------------------

LEAK_REPORT_RATE = f"{REPORTS_PER_MINUTE}/m"
LEAK_REPORT_GROUP = "gatehouse.api.leaked_credentials"
LEAK_ACCEPTED = {
    "status": "accepted",
    "message": "Thank you. Any of these that is a live Gatehouse credential is now revoked and "
               "its owners are told.",
}


def _leak_report(request: HttpRequest) -> tuple[list[str], str]:
    """A JSON array of strings, or `{"credentials": [...], "url": "..."}`."""
    data = read_json(request)
    url = ""
    if isinstance(data, dict):
        data = check_json_object(data, fields={"credentials": list, "url": str},
                                 required=["credentials"])
        url = data.get("url", "")
        if len(url) > MAX_LEAK_URL_LENGTH:
            raise invalid_request({"url": f"At most {MAX_LEAK_URL_LENGTH} characters."})
        data = data["credentials"]
    if not isinstance(data, list):
        raise invalid_request(
            {"body": "Send a JSON array of strings, or an object with `credentials`."}
        )
    if not 1 <= len(data) <= MAX_CREDENTIALS:
        raise invalid_request({"credentials": f"Send 1 to {MAX_CREDENTIALS} strings."})
    if not all(isinstance(item, str) and 0 < len(item) <= MAX_CREDENTIAL_LENGTH
               and is_unicode_text(item) for item in data):
        raise invalid_request(
            {"credentials": f"Each item must be a string of 1 to {MAX_CREDENTIAL_LENGTH} "
                            "characters."}
        )
    return data, url


@api_endpoint(public=True, methods=("POST",))
def leaked_credentials(request: HttpRequest) -> JsonResponse:
    """Report strings found in the wild (public, like GitHub's credential-revocation API): any
    live API key, access or refresh token among them is revoked at once (`apikeys.leaks`). The
    answer is always the same 202, so it tells nothing about what was sent."""
    if is_ratelimited(request, group=LEAK_REPORT_GROUP, key=ip_bucket, rate=LEAK_REPORT_RATE,
                      increment=True):
        raise ApiError(
            HTTPStatus.TOO_MANY_REQUESTS, "rate_limited",
            "Too many reports from your IP address; retry in a minute.",
            headers={"Retry-After": "60"},
        )
    credentials, url = _leak_report(request)
    leaked_credentials_revoke(
        credentials=credentials, url=url, context=RequestContext.from_request(request)
    )
    return JsonResponse(LEAK_ACCEPTED, status=HTTPStatus.ACCEPTED)
