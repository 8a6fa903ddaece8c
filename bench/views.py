"""The two comparison points of the benchmark.

- `baseline_passport`: the passport read of `GET /api/v1/passports/<id>` — the same selector
  (`passport_get`: the id check and the one workspace-scoped query), the same serialisation
  (`passport_json`) and the same middleware stack — without authentication, scopes, budgets or
  metering: the cost floor of the request. The workspace comes from the URL instead of a
  credential.
- `floor_passport`: the baseline plus the API gateway's one Redis call (`gate_take`, with the same
  script, keys and arguments as an `apikey` request: rate limit, budget, two cached key
  markers) and nothing else: no token, no Python of the gateway. It measures how fast any
  gateway that keeps SPEC's exact budgets and next-request revocation with one Redis round trip
  could be on this machine.
- `baseline_patch`: the `write` scenario's `PATCH` (lock the passport's row, change its name,
  answer its JSON) without authentication, metering, idempotency or audit: what a write costs
  before the gateway adds its two commits and the audit chain.
- `PeerPassportView`: what a DRF user would write — a `RetrieveAPIView` protected by
  djangorestframework-api-key's `HasAPIKey`, on the same model and database.
"""

import json
from datetime import timedelta

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers
from rest_framework.generics import RetrieveAPIView
from rest_framework_api_key.permissions import HasAPIKey

from apikeys.keycache import keycache_versions
from gateway.gate import Limit, Outcome, gate_take
from passports.api import passport_json
from passports.models import Passport
from passports.selectors import passport_get
from workspaces.models import Workspace
from workspaces.quotas import Budget, budget_counter_key, next_utc_midnight, rate_limit_window


def baseline_passport(request: HttpRequest, workspace_id: int, public_id: str) -> JsonResponse:
    try:
        passport = passport_get(workspace=Workspace(pk=workspace_id), public_id=public_id)
    except Passport.DoesNotExist:
        return JsonResponse({"error": "not_found", "message": "No such passport."}, status=404)
    return JsonResponse(passport_json(passport))


@csrf_exempt
def baseline_patch(request: HttpRequest, workspace_id: int, public_id: str) -> JsonResponse:
    name = str(json.loads(request.body)["product_name"]).strip()
    with transaction.atomic():
        passport = (
            Passport.objects.for_workspace(Workspace(pk=workspace_id)).select_for_update()
            .filter(public_id=public_id).first()
        )
        if passport is None:
            return JsonResponse({"error": "not_found", "message": "No such passport."}, status=404)
        passport.product_name = name
        passport.updated_at = timezone.now()
        passport.save(update_fields=["product_name", "updated_at"])
    return JsonResponse(passport_json(passport))


def baseline_route(request: HttpRequest, workspace_id: int, public_id: str) -> JsonResponse:
    if request.method == "PATCH":
        return baseline_patch(request, workspace_id, public_id)
    return baseline_passport(request, workspace_id, public_id)


_FLOOR_MARKERS: dict[str, str] = {}


def floor_passport(request: HttpRequest, workspace_id: int, public_id: str) -> JsonResponse:
    now = timezone.now()
    if not _FLOOR_MARKERS:  # a marker pair of its own, created once per process
        _FLOOR_MARKERS.update(keycache_versions("bench-floor-" + "0" * 32) or {})
    rate_key, rate_reset = rate_limit_window(0, now)
    gate = gate_take(
        rate=Limit(rate_key, 10**6, rate_reset + timedelta(minutes=1)),
        budget=Limit(
            budget_counter_key(0, Budget.PASSPORT_READS, now), 10**9,
            next_utc_midnight(now) + timedelta(hours=1),
        ),
        now=now, versions=_FLOOR_MARKERS,
    )
    if gate.outcome is not Outcome.ADMITTED:
        return JsonResponse({"error": "floor_refused", "outcome": gate.outcome.value}, status=500)
    return baseline_passport(request, workspace_id, public_id)


class PassportSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id")

    class Meta:
        model = Passport
        fields = ["id", "gtin", "serial_number", "product_name", "status", "created_at",
                  "updated_at"]


class PeerPassportView(RetrieveAPIView):
    permission_classes = [HasAPIKey]
    serializer_class = PassportSerializer
    queryset = Passport.objects.all()
    lookup_field = "public_id"
