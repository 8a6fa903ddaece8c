from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apikeys.selectors import apikey_check
from apikeys.services import apikey_create, apikey_revoke, apikey_rotate
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_create_check_rotate_revoke(workspace, members) -> None:
    key, token = apikey_create(
        workspace=workspace, name="CI", scopes=["passports:read"], environment="development",
        acting_user=members["admin"],
    )
    assert apikey_check(token, ip="10.0.0.1").key == key
    new, new_token = apikey_rotate(key=key, overlap="1h", acting_user=members["admin"])
    assert apikey_check(token, ip="10.0.0.1").ok
    assert apikey_check(new_token, ip="10.0.0.1").key == new
    assert apikey_check(token, ip=None, now=timezone.now() + timedelta(hours=2)).error == (
        "key_expired"
    )
    apikey_revoke(key=new, acting_user=members["admin"])
    assert apikey_check(new_token, ip=None).error == "key_revoked"
    with pytest.raises(ValidationError, match="already revoked"):
        apikey_revoke(key=new, acting_user=members["admin"])
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["key.created", "key.rotated", "key.revoked"]
