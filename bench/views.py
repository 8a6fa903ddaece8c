"""The two comparison points of the benchmark.

- `baseline_passport`: the passport read of `GET /api/v1/passports/<id>` — the same selector
  (`passport_get`: the id check and the one workspace-scoped query), the same serialisation
  (`passport_json`) and the same middleware stack — without authentication, scopes, budgets or
  metering: the cost floor of the request. The workspace comes from the URL instead of a
  credential.
- `PeerPassportView`: what a DRF user would write — a `RetrieveAPIView` protected by
  djangorestframework-api-key's `HasAPIKey`, on the same model and database.
"""

from django.http import HttpRequest, JsonResponse
from rest_framework import serializers
from rest_framework.generics import RetrieveAPIView
from rest_framework_api_key.permissions import HasAPIKey

from passports.api import passport_json
from passports.models import Passport
from passports.selectors import passport_get
from workspaces.models import Workspace


def baseline_passport(request: HttpRequest, workspace_id: int, public_id: str) -> JsonResponse:
    try:
        passport = passport_get(workspace=Workspace(pk=workspace_id), public_id=public_id)
    except Passport.DoesNotExist:
        return JsonResponse({"error": "not_found", "message": "No such passport."}, status=404)
    return JsonResponse(passport_json(passport))


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
