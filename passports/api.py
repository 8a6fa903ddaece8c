"""`/api/v1/passports`: the JSON API of passports (SPEC §4). Thin: parse, call a service or a
selector, serialise. Authentication and scopes are the gateway's (`gateway.middleware`)."""

from __future__ import annotations

from http import HTTPStatus

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse

from apikit.endpoints import api_endpoint, api_methods
from apikit.errors import ApiError, invalid_request, not_found
from apikit.principal import ApiRequest, actor_for_principal
from apikit.requests import iso, list_response, read_json_object, read_limit, read_query
from core.context import RequestContext

from . import services
from .models import Passport, PassportStatus
from .selectors import passport_get, passport_page

FIELDS = {"gtin": str, "serial_number": str, "product_name": str, "status": str}
REQUIRED = ("gtin", "serial_number", "product_name")
NOT_FOUND = "There is no passport with this id in this workspace."


def passport_json(passport: Passport) -> dict:
    return {
        "id": passport.public_id,
        "gtin": passport.gtin,
        "serial_number": passport.serial_number,
        "product_name": passport.product_name,
        "status": passport.status,
        "created_at": iso(passport.created_at),
        "updated_at": iso(passport.updated_at),
    }


def _write_errors(exc: Exception) -> ApiError:
    if isinstance(exc, ValidationError):
        return invalid_request({name: errors[0] for name, errors in exc.message_dict.items()})
    if isinstance(exc, services.PassportConflict):
        return ApiError(HTTPStatus.CONFLICT, "conflict", exc.message)
    if isinstance(exc, services.PassportLimitReached):
        if exc.overage:
            return ApiError(HTTPStatus.PAYMENT_REQUIRED, "overage_required", exc.message)
        return ApiError(HTTPStatus.FORBIDDEN, "plan_limit_reached", exc.message)
    raise exc


_WRITE_ERRORS = (ValidationError, services.PassportConflict, services.PassportLimitReached)


def _get(request: HttpRequest, passport_id: str) -> Passport:
    try:
        return passport_get(workspace=request.workspace, public_id=passport_id)
    except Passport.DoesNotExist:
        raise not_found(NOT_FOUND) from None


@api_endpoint(scope="passports:read", methods=["GET"], budget="passport_reads")
def list_passports(request: ApiRequest) -> JsonResponse:
    query = read_query(request, allowed={"limit", "cursor", "status"})
    status = query.get("status")
    if status is not None and status not in PassportStatus.values:
        raise invalid_request({"status": "Use draft or published."})
    rows, next_cursor = passport_page(
        workspace=request.workspace, status=status, cursor=query.get("cursor"),
        limit=read_limit(query),
    )
    return list_response([passport_json(p) for p in rows], next_cursor)


@api_endpoint(scope="passports:write", methods=["POST"], budget="writes")
def create_passport(request: ApiRequest) -> JsonResponse:
    read_query(request, allowed=())
    body = read_json_object(request, fields=FIELDS, required=REQUIRED)
    try:
        passport = services.passport_create(
            workspace=request.workspace, **body,
            actor=actor_for_principal(request.principal),
            context=RequestContext.from_request(request),
        )
    except _WRITE_ERRORS as exc:
        raise _write_errors(exc) from None
    response = JsonResponse(passport_json(passport), status=HTTPStatus.CREATED)
    response["Location"] = f"/api/v1/passports/{passport.public_id}"
    return response


@api_endpoint(scope="passports:read", methods=["GET"], budget="passport_reads")
def get_passport(request: ApiRequest, passport_id: str) -> JsonResponse:
    read_query(request, allowed=())
    return JsonResponse(passport_json(_get(request, passport_id)))


@api_endpoint(scope="passports:write", methods=["PATCH"], budget="writes")
def update_passport(request: ApiRequest, passport_id: str) -> JsonResponse:
    read_query(request, allowed=())
    passport = _get(request, passport_id)
    body = read_json_object(request, fields=FIELDS)
    try:
        passport = services.passport_update(
            passport=passport, **body,
            actor=actor_for_principal(request.principal),
            context=RequestContext.from_request(request),
        )
    except _WRITE_ERRORS as exc:
        raise _write_errors(exc) from None
    return JsonResponse(passport_json(passport))


@api_endpoint(scope="passports:write", methods=["DELETE"], budget="writes")
def delete_passport(request: ApiRequest, passport_id: str) -> HttpResponse:
    read_query(request, allowed=())
    passport = _get(request, passport_id)
    try:
        services.passport_delete(
            passport=passport, actor=actor_for_principal(request.principal),
            context=RequestContext.from_request(request),
        )
    except Passport.DoesNotExist:
        raise not_found(NOT_FOUND) from None
    return HttpResponse(status=HTTPStatus.NO_CONTENT)


passports = api_methods(list_passports, create_passport)
passport = api_methods(get_passport, update_passport, delete_passport)
