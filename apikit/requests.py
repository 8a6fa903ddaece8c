"""Strict parsing of the JSON API's parameters and bodies (400 naming the fields, 415 for
non-JSON bodies), and the list envelope."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, JsonResponse

from core.pagination import MAX_LIMIT, InvalidPageRequest, parse_limit

from .errors import ApiError, invalid_request

MAX_FIELD_NAME = 100
_TYPE_WORDS = {str: "a string", int: "an integer", bool: "true or false", list: "an array"}


def read_query(request: HttpRequest, *, allowed: Collection[str]) -> dict[str, str]:
    """The query parameters as a dict; 400 naming any unknown or repeated parameter (a typo in
    a filter must not silently return everything)."""
    errors: dict[str, str] = {}
    params: dict[str, str] = {}
    for name in request.GET:
        values = request.GET.getlist(name)
        if name not in allowed:
            errors[name[:MAX_FIELD_NAME]] = "Unknown parameter."
        elif len(values) > 1:
            errors[name] = "Give this parameter once."
        else:
            params[name] = values[0]
    if errors:
        raise invalid_request(errors)
    return params


def read_limit(query: Mapping[str, str]) -> int:
    """`?limit=` of a list: absent means the default; present it must be 1-100 (empty too is a
    400, not the default: `limit=` is a client bug worth reporting)."""
    raw = query.get("limit")
    if raw == "":
        raise InvalidPageRequest("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return parse_limit(raw)


def parse_timestamp(raw: str, field: str) -> datetime:
    """An ISO 8601 date-time (`2026-01-31T12:00:00Z`); naive times are read as UTC."""
    try:
        value = datetime.fromisoformat(raw.strip())
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise invalid_request(
            {field: "Use an ISO 8601 date-time such as 2026-01-31T12:00:00Z."}
        ) from None


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise invalid_request({name[:MAX_FIELD_NAME]: "This field appears twice."})
        result[name] = value
    return result


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def read_json_object(
    request: HttpRequest,
    *,
    fields: Mapping[str, type],
    required: Collection[str] = (),
) -> dict[str, Any]:
    """The request body as a JSON object whose members are all in `fields` with those exact
    types (a number is not a string, `true` is not an integer, `null` is no value).

    415 for a body that is not `application/json` (or `application/*+json`); 400
    `invalid_request` for an empty or malformed body, a non-object, and for unknown, duplicate,
    missing or wrongly typed fields — each named in `fields`.
    """
    data = read_json(request)
    if not isinstance(data, dict):
        raise invalid_request({"body": "The body must be a JSON object."})
    return check_json_object(data, fields=fields, required=required)


def read_json(request: HttpRequest) -> Any:
    """The request body as any JSON value, strictly parsed (see `read_json_object`)."""
    if not request.body:
        raise invalid_request({"body": "The body is empty; send a JSON object."})
    if not _is_json(request.content_type or ""):
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
        )
    charset = (request.content_params or {}).get("charset", "utf-8").lower()
    if charset not in {"utf-8", "utf8"}:
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the JSON body in UTF-8.",
        )
    try:
        data = json.loads(
            request.body.decode("utf-8"),
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
        )
    except UnicodeDecodeError:
        raise invalid_request({"body": "The body is not valid UTF-8."}) from None
    except json.JSONDecodeError as exc:
        raise invalid_request(
            {"body": f"The body is not valid JSON ({exc.msg} at line {exc.lineno} column "
                     f"{exc.colno})."}
        ) from None
    except (ValueError, RecursionError):
        raise invalid_request({"body": "The body is not valid JSON."}) from None
    return data


def check_json_object(
    data: dict[str, Any], *, fields: Mapping[str, type], required: Collection[str] = ()
) -> dict[str, Any]:
    """400 naming every unknown, missing or wrongly typed member of a parsed JSON object."""
    errors: dict[str, str] = {}
    for name in data:
        if name not in fields:
            errors[name[:MAX_FIELD_NAME]] = "Unknown field."
    for name in required:
        if name not in data:
            errors[name] = "This field is required."
    for name, expected in fields.items():
        if name not in data:
            continue
        if not _has_type(data[name], expected):
            errors[name] = f"Must be {_TYPE_WORDS[expected]}."
        elif expected is str and not is_unicode_text(data[name]):
            errors[name] = "Must be valid Unicode text (JSON allows lone surrogates; we do not)."
    if errors:
        raise invalid_request(dict(list(errors.items())[:50]))
    return data


def is_unicode_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # "\ud800" is valid JSON but cannot be stored as text
        return False
    return True


def _has_type(value: Any, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, microseconds kept (so `since`/`until` round-trip)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def list_response(data: list[dict[str, Any]], next_cursor: str | None) -> JsonResponse:
    return JsonResponse({"data": data, "next_cursor": next_cursor})
