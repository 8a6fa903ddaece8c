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
from .models import Collection, Passport, PassportStatus
from .selectors import (
    collection_get,
    collection_page,
    collections_resolve,
    passport_get,
    passport_page,
)

# `collection` is a collection id or null; checked by `_collection_field`.
FIELDS = {
    "gtin": str, "serial_number": str, "product_name": str, "status": str, "collection": object,
}
REQUIRED = ("gtin", "serial_number", "product_name")
NOT_FOUND = "There is no passport with this id in this workspace."
COLLECTION_NOT_FOUND = "There is no collection with this id in this workspace."
COLLECTION_FIELDS = {"name": str}


def passport_json(passport: Passport) -> dict:
    return {
        "id": passport.public_id,
        "gtin": passport.gtin,
        "serial_number": passport.serial_number,
        "product_name": passport.product_name,
        "status": passport.status,
        "collection": passport.collection.public_id if passport.collection_id else None,
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


def _reach(request: HttpRequest) -> frozenset[int] | None:
    """The collections the calling credential is restricted to (None: all), SPEC §11."""
    principal = getattr(request, "principal", None)
    return principal.collections if principal is not None else None


def _get(request: HttpRequest, passport_id: str) -> Passport:
    try:
        return passport_get(
            workspace=request.workspace, public_id=passport_id, collections=_reach(request)
        )
    except Passport.DoesNotExist:
        raise not_found(NOT_FOUND) from None


def _collection_field(request: HttpRequest, value: object, *, field: str) -> Collection | None:
    """A `collection` member: null or the id of a collection of this workspace that the
    credential reaches; 400 naming it otherwise. A restricted credential must name one of its
    collections (it cannot create or move a passport outside them)."""
    reach = _reach(request)
    if value is None:
        if reach is not None:
            raise invalid_request(
                {field: "This credential is restricted to selected collections; name one of them."}
            )
        return None
    if not isinstance(value, str):
        raise invalid_request({field: "Must be a collection id (col_…) or null."})
    found = collections_resolve(workspace=request.workspace, public_ids=[value]).get(value)
    if found is None or (reach is not None and found.pk not in reach):
        raise invalid_request({field: "There is no collection with this id in this workspace."})
    return found


@api_endpoint(scope="passports:read", methods=["GET"], budget="passport_reads")
def list_passports(request: ApiRequest) -> JsonResponse:
    query = read_query(request, allowed={"limit", "cursor", "status", "collection"})
    status = query.get("status")
    if status is not None and status not in PassportStatus.values:
        raise invalid_request({"status": "Use draft or published."})
    collection = None
    if (wanted := query.get("collection")) is not None:
        try:
            collection = collection_get(
                workspace=request.workspace, public_id=wanted, collections=_reach(request)
            )
        except Collection.DoesNotExist:
            raise invalid_request(
                {"collection": "There is no collection with this id in this workspace."}
            ) from None
    rows, next_cursor = passport_page(
        workspace=request.workspace, status=status, cursor=query.get("cursor"),
        limit=read_limit(query), collections=_reach(request), collection=collection,
    )
    return list_response([passport_json(p) for p in rows], next_cursor)


@api_endpoint(scope="passports:write", methods=["POST"], budget="writes")
def create_passport(request: ApiRequest) -> JsonResponse:
    read_query(request, allowed=())
    body = read_json_object(request, fields=FIELDS, required=REQUIRED)
    body["collection"] = _collection_field(
        request, body.get("collection"), field="collection"
    )
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
    if "collection" in body:
        body["collection"] = _collection_field(request, body["collection"], field="collection")
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


def collection_json(collection: Collection) -> dict:
    return {
        "id": collection.public_id,
        "name": collection.name,
        "created_at": iso(collection.created_at),
    }


def _get_collection(request: HttpRequest, collection_id: str) -> Collection:
    try:
        return collection_get(
            workspace=request.workspace, public_id=collection_id, collections=_reach(request)
        )
    except Collection.DoesNotExist:
        raise not_found(COLLECTION_NOT_FOUND) from None


def _collection_write_errors(exc: Exception) -> ApiError:
    if isinstance(exc, ValidationError):
        return invalid_request({name: errors[0] for name, errors in exc.message_dict.items()})
    if isinstance(exc, services.CollectionConflict):
        return ApiError(HTTPStatus.CONFLICT, "conflict", exc.message)
    raise exc


def _refuse_restricted_create(request: HttpRequest) -> None:
    if _reach(request) is not None:
        raise ApiError(
            HTTPStatus.FORBIDDEN, "insufficient_scope",
            "This credential is restricted to selected collections and cannot create "
            "collections; use an unrestricted credential.",
        )


@api_endpoint(scope="collections:read", methods=["GET"])
def list_collections(request: HttpRequest) -> JsonResponse:
    query = read_query(request, allowed={"limit", "cursor"})
    rows, next_cursor = collection_page(
        workspace=request.workspace, cursor=query.get("cursor"), limit=read_limit(query),
        collections=_reach(request),
    )
    return list_response([collection_json(c) for c in rows], next_cursor)


@api_endpoint(scope="collections:write", methods=["POST"], budget="writes")
def create_collection(request: HttpRequest) -> JsonResponse:
    read_query(request, allowed=())
    body = read_json_object(request, fields=COLLECTION_FIELDS, required=("name",))
    _refuse_restricted_create(request)
    try:
        collection = services.collection_create(
            workspace=request.workspace, name=body["name"],
            actor=actor_for_principal(request.principal),
            context=RequestContext.from_request(request),
        )
    except (ValidationError, services.CollectionConflict) as exc:
        raise _collection_write_errors(exc) from None
    response = JsonResponse(collection_json(collection), status=HTTPStatus.CREATED)
    response["Location"] = f"/api/v1/collections/{collection.public_id}"
    return response


@api_endpoint(scope="collections:read", methods=["GET"])
def get_collection(request: HttpRequest, collection_id: str) -> JsonResponse:
    read_query(request, allowed=())
    return JsonResponse(collection_json(_get_collection(request, collection_id)))


@api_endpoint(scope="collections:write", methods=["PATCH"], budget="writes")
def update_collection(request: HttpRequest, collection_id: str) -> JsonResponse:
    read_query(request, allowed=())
    collection = _get_collection(request, collection_id)
    body = read_json_object(request, fields=COLLECTION_FIELDS)
    if "name" not in body:
        return JsonResponse(collection_json(collection))
    try:
        collection = services.collection_update(
            collection=collection, name=body["name"],
            actor=actor_for_principal(request.principal),
            context=RequestContext.from_request(request),
        )
    except (ValidationError, services.CollectionConflict) as exc:
        raise _collection_write_errors(exc) from None
    except Collection.DoesNotExist:
        raise not_found(COLLECTION_NOT_FOUND) from None
    return JsonResponse(collection_json(collection))


@api_endpoint(scope="collections:write", methods=["DELETE"], budget="writes")
def delete_collection(request: HttpRequest, collection_id: str) -> HttpResponse:
    read_query(request, allowed=())
    collection = _get_collection(request, collection_id)
    try:
        services.collection_delete(
            collection=collection, actor=actor_for_principal(request.principal),
            context=RequestContext.from_request(request),
        )
    except Collection.DoesNotExist:
        raise not_found(COLLECTION_NOT_FOUND) from None
    return HttpResponse(status=HTTPStatus.NO_CONTENT)


passports = api_methods(list_passports, create_passport)
passport = api_methods(get_passport, update_passport, delete_passport)
collections = api_methods(list_collections, create_collection)
collection = api_methods(get_collection, update_collection, delete_collection)
