"""The gateway's own endpoints: `GET /api/v1/me` and `GET /api/v1/usage` (any credential), `POST
/api/v1/leaked-credentials` (public) and the JSON 404 of every unknown `/api/v1/` path."""

from __future__ import annotations

from http import HTTPStatus

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django_ratelimit.core import is_ratelimited

from apikit.endpoints import ANY_METHOD, api_endpoint
from apikit.errors import ApiError, invalid_request, not_found
from apikit.principal import ApiRequest
from apikit.requests import (
    check_json_object,
    is_unicode_text,
    iso,
    read_json,
    read_query,
)
from core.addresses import ip_bucket
from core.context import Actor, RequestContext
from passports.selectors import overage_summary
from workspaces.quotas import quota_usage_today

from .leaks import (
    MAX_CREDENTIAL_LENGTH,
    MAX_CREDENTIALS,
    REPORTER,
    REPORTS_PER_MINUTE,
    leaked_credentials_known,
    leaked_credentials_revoke,
)
from .leaks import MAX_URL_LENGTH as MAX_LEAK_URL_LENGTH
from .secret_scanning import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    Match,
    feedback,
    is_github_report,
    signature_verified,
)
from .secret_scanning import MAX_FIELD_LENGTH as MAX_GITHUB_FIELD_LENGTH


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
            "overage": {
                name: value for name, value in overage_summary(workspace).items()
                if name != "days"
            },
        }
    )


@api_endpoint()
def usage(request: ApiRequest) -> JsonResponse:
    """The workspace's daily budgets (SPEC §5) and today's use of them, one counter read for
    both (the MCP tool `get_usage`)."""
    read_query(request, allowed=())
    workspace = request.workspace
    rows = quota_usage_today(workspace_id=workspace.pk, plan=workspace.plan, now=timezone.now())
    return JsonResponse({
        "plan": {"code": workspace.plan.code, "name": workspace.plan.name},
        "budgets": [
            {
                "budget": str(row["budget"]),
                "limit": row["limit"],
                "used": row["used"],
                "remaining": None if row["limit"] is None else max(row["limit"] - row["used"], 0),
                "resets_at": iso(row["reset_at"]),
            }
            for row in rows
        ],
    })


@api_endpoint(methods=[ANY_METHOD], public=True)
def not_found_fallback(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
    """Every unknown path under /api/v1/ (any method, no credential needed): JSON 404, also
    with DEBUG on, where Django's own 404 page would be HTML."""
    return not_found("There is no API endpoint at this path.").response(request)


def api_root_without_slash(request: HttpRequest) -> JsonResponse:
    """`/api/v1` (no slash), any method: JSON 404 pointing at the API's paths, also with DEBUG
    on (outside `/api/v1/`, Django would answer its HTML page)."""
    return not_found(
        "There is no API endpoint at /api/v1; the endpoints are under /api/v1/ "
        "(e.g. GET /api/v1/me), described by GET /api/v1/openapi.json."
    ).response(request)


# --- Leaked credentials ------------------------------------------------------------------------

GITHUB_REPORTER = Actor.system("GitHub secret scanning")
LEAK_REPORT_RATE = f"{REPORTS_PER_MINUTE}/m"
LEAK_REPORT_GROUP = "gatehouse.api.leaked_credentials"
LEAK_ACCEPTED = {
    "status": "accepted",
    "message": "Thank you. Any of these that is a live Gatehouse credential is now revoked and "
               "its owners are told.",
}


def _github_matches(data: list[dict]) -> list[Match]:
    """GitHub's secret-scanning body: `[{"token", "type", "url", "source"}, …]`."""
    if len(data) > MAX_CREDENTIALS:
        raise invalid_request({"body": f"Send 1 to {MAX_CREDENTIALS} matches."})
    matches = []
    for item in data:
        fields = {"token": str, "type": str, "url": str, "source": str}
        item = check_json_object(  # members GitHub may add later are ignored
            {name: value for name, value in item.items() if name in fields},
            fields=fields, required=["token"],
        )
        token = item["token"]
        if not 0 < len(token) <= MAX_CREDENTIAL_LENGTH or not is_unicode_text(token):
            raise invalid_request(
                {"token": f"Each token must be a string of 1 to {MAX_CREDENTIAL_LENGTH} "
                          "characters."}
            )
        extra = {name: item.get(name, "") for name in ("type", "url", "source")}
        if any(len(value) > MAX_GITHUB_FIELD_LENGTH or not is_unicode_text(value)
               for value in extra.values()):
            raise invalid_request(
                {"body": f"type, url and source must be at most {MAX_GITHUB_FIELD_LENGTH} "
                         "characters of text."}
            )
        matches.append(Match(token=token, **extra))
    return matches


def _plain_report(data: object) -> tuple[list[str], str]:
    """A JSON array of strings, or `{"credentials": [...], "url": "..."}`."""
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
    data = read_json(request)
    context = RequestContext.from_request(request)
    if not is_github_report(data):
        credentials, url = _plain_report(data)
        leaked_credentials_revoke(credentials=credentials, url=url, context=context)
        return JsonResponse(LEAK_ACCEPTED, status=HTTPStatus.ACCEPTED)
    matches = _github_matches(data)
    verified = signature_verified(
        request.body, request.headers.get(KEY_ID_HEADER), request.headers.get(SIGNATURE_HEADER)
    )
    # One revocation per `url`, as the reporter's text of each audit event and banner.
    by_url: dict[tuple[str, str], list[str]] = {}
    for match in matches:
        by_url.setdefault((match.url, match.source), []).append(match.token)
    for (url, source), tokens in by_url.items():
        leaked_credentials_revoke(
            credentials=tokens, url=url, context=context,
            reporter=GITHUB_REPORTER if verified else REPORTER,
            report={"report": "github_secret_scanning", "source": source,
                    "signature": "verified" if verified else "unverified"},
        )
    if not verified:  # never trusted more than an anonymous report
        return JsonResponse(LEAK_ACCEPTED, status=HTTPStatus.ACCEPTED)
    known = leaked_credentials_known([match.token for match in matches])
    return JsonResponse(feedback(matches, known), safe=False, status=HTTPStatus.OK)
