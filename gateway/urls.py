"""`/api/v1/`: the JSON API (SPEC §4). Each app's `api.py` owns its endpoints; the gateway
middleware (`gateway.middleware`) authenticates and scope-checks every route here except the
public ones (declared with `@api_endpoint(public=True)`). The OpenAPI document lists the
paths in this order (`gateway/openapi.py`)."""

from django.urls import path, re_path

from apikeys import api as apikeys_api
from audit import api as audit_api
from passports import api as passports_api

from . import api as gateway_api
from .openapi import openapi_json

app_name = "api"

urlpatterns = [
    path("me", gateway_api.me, name="me"),
    path("usage", gateway_api.usage, name="usage"),
    path("passports", passports_api.passports, name="passports"),
    path("passports/<str:passport_id>", passports_api.passport, name="passport"),
    path("collections", passports_api.collections, name="collections"),
    path("collections/<str:collection_id>", passports_api.collection, name="collection"),
    path("keys", apikeys_api.list_keys, name="keys"),
    path("audit-events", audit_api.list_audit_events, name="audit-events"),
    path("leaked-credentials", gateway_api.leaked_credentials, name="leaked-credentials"),
    path("openapi.json", openapi_json, name="openapi"),
    # Last: any other path under /api/v1/ is a JSON 404, whatever the method and DEBUG.
    re_path(r"^", gateway_api.not_found_fallback, name="not-found"),
]
