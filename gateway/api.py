"""The gateway's own endpoints: `GET /api/v1/me` (any credential), `POST
/api/v1/leaked-credentials` (public) and the JSON 404 of every unknown `/api/v1/` path."""

from __future__ import annotations

from http import HTTPStatus

from django.http import HttpRequest, JsonResponse
from django_ratelimit.core import is_ratelimited

from apikit.endpoints import ANY_METHOD, api_endpoint
from apikit.errors import ApiError, invalid_request, not_found
from apikit.principal import ApiRequest
from apikit.requests import (
    check_json_object,
    is_unicode_text,
    read_json,
    read_query,
)
from core.addresses import ip_bucket
from core.context import RequestContext

from .leaks import (
    MAX_CREDENTIAL_LENGTH,
    MAX_CREDENTIALS,
    REPORTS_PER_MINUTE,
    leaked_credentials_revoke,
)
from .leaks import MAX_URL_LENGTH as MAX_LEAK_URL_LENGTH


@api_endpoint()
def me(request: ApiRequest) -> JsonResponse:
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
    live API key, access or refresh token among them is revoked at once (`gateway.leaks`). The
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
