"""The two comparison points of the benchmark.

- `baseline_passport`: the passport read with the same query and serialisation as the product's
  `GET /api/v1/passports/<id>`, without authentication, scopes, budgets or metering — the cost
  floor of the request.
- `PeerPassportView`: what a DRF user would write — a `RetrieveAPIView` protected by
  djangorestframework-api-key's `HasAPIKey`, on the same model and database.
"""

from django.http import HttpRequest, JsonResponse
from rest_framework import serializers
from rest_framework.generics import RetrieveAPIView
from rest_framework_api_key.permissions import HasAPIKey

from passports.api import passport_json
from passports.models import Passport


def baseline_passport(request: HttpRequest, public_id: str) -> JsonResponse:
    passport = Passport.objects.filter(public_id=public_id).first()
    if passport is None:
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
