from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from apikeys.models import ApiKey, KeyStatus
from apikeys.selectors import apikey_check_digest, apikeys_for_dashboard
from apikeys.services import (
    apikey_create,
    apikey_pause,
    apikey_resume,
    apikey_revoke,
    apikey_rotate,
    apikey_set_rate_limit,
)
from apikeys.tokens import token_digest
from apikeys.verifier import verify_api_key
from audit.models import AuditEvent
from core.context import Actor, RequestContext
from tests.factories import WorkspaceFactory, by

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
CONTEXT = RequestContext(ip="203.0.113.7", user_agent="pytest-agent/1.0")


def make_key(workspace, user=None, **overrides):
    fields = {
        "name": "CI", "scopes": ["passports:read"], "environment": "development",
        "actor": Actor.for_user(user), "context": CONTEXT,
    }
    return apikey_create(workspace=workspace, **{**fields, **overrides})


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_create_stores_digest_and_hint_and_audits_with_actor_ip_and_agent(
    workspace, members
) -> None:
    admin = members["admin"]
    key, token = make_key(
        workspace, admin, name="  Billing sync  ", note="owned by ops",
        scopes=["passports:write", "passports:read", "passports:read"],
        rate_limit_per_minute=60, allowed_ips=["10.0.0.0/8", " 192.0.2.4 ", ""],
    )
    key.refresh_from_db()
    assert key.name == "Billing sync"
    assert key.scopes == ["passports:read", "passports:write"]
    assert key.digest == token_digest(token)
    assert key.hint == token[-4:]
    assert key.display_hint == f"gk_dev_…{token[-4:]}"
    assert key.created_by == admin
    assert key.status == KeyStatus.ACTIVE
    assert key.allowed_ips == ["10.0.0.0/8", "192.0.2.4/32"]
    assert key.public_id.startswith("key_")
    event = AuditEvent.objects.get()
    assert event.action == "key.created"
    assert (event.actor_type, event.actor_id) == ("user", str(admin.pk))
    assert (event.ip, event.user_agent) == ("203.0.113.7", "pytest-agent/1.0")
    assert event.target_id == key.public_id
    assert event.metadata["scopes"] == ["passports:read", "passports:write"]


BAD_INPUT = [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"scopes": ["passports:read", "nope:write"]}, "scopes"),
    ({"scopes": []}, "scopes"),
    ({"environment": "prod"}, "environment"),
    ({"expires_at": T0 - timedelta(seconds=1)}, "expires_at"),
    ({"expires_at": T0}, "expires_at"),
    ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
    ({"rate_limit_per_minute": -5}, "rate_limit_per_minute"),
    ({"allowed_ips": ["10.0.0.0/33"]}, "allowed_ips"),
    ({"allowed_ips": ["not-an-ip"]}, "allowed_ips"),
    ({"allowed_ips": [f"10.0.{i}.0/24" for i in range(51)]}, "allowed_ips"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_INPUT)
def test_create_refuses_bad_input_and_writes_nothing(workspace, members, overrides, field) -> None:
    with time_machine.travel(T0, tick=False), pytest.raises(ValidationError) as exc:
        make_key(workspace, members["admin"], **overrides)
    assert field in exc.value.message_dict
    assert ApiKey.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_create_accepts_100_character_name(workspace) -> None:
    key, _ = make_key(workspace, name="x" * 100)
    assert len(key.name) == 100


def test_plan_limit_counts_active_and_paused_not_revoked_or_expired(workspace, members) -> None:
    assert workspace.plan.code == "free" and workspace.plan.active_keys_limit == 5
    with time_machine.travel(T0, tick=False) as clock:
        keys = [make_key(workspace, name=f"k{i}")[0] for i in range(4)]
        apikey_pause(key=keys[0], **by())
        expiring, _ = make_key(workspace, name="soon", expires_at=T0 + timedelta(hours=1))
        with pytest.raises(ValidationError) as exc:
            make_key(workspace, name="sixth")
        message = exc.value.messages[0]
        assert "Free plan allows 5 active keys" in message
        assert not hasattr(exc.value, "error_dict")  # a non-field error: the form shows it on top
        assert ApiKey.objects.count() == 5
        assert actions().count("key.created") == 5

        apikey_revoke(key=keys[1], **by())  # revoked keys do not count
        make_key(workspace, name="sixth")
        with pytest.raises(ValidationError):
            make_key(workspace, name="seventh")

        clock.shift(timedelta(hours=1))  # expired keys do not count either
        assert expiring.is_expired()
        make_key(workspace, name="seventh")


def test_plan_limit_is_per_workspace(workspace) -> None:
    other = WorkspaceFactory()
    for i in range(5):
        make_key(workspace, name=f"k{i}")
    make_key(other, name="theirs")
    with pytest.raises(ValidationError):
        make_key(workspace, name="one too many")


@pytest.mark.parametrize(
    ("overlap", "length"),
    [("now", timedelta(0)), ("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)),
     ("7d", timedelta(days=7))],
)
def test_rotate_keeps_old_key_working_until_the_end_of_the_overlap(
    workspace, members, overlap, length
) -> None:
    with time_machine.travel(T0, tick=False):
        old, old_token = make_key(
            workspace, members["admin"], note="n", scopes=["passports:read", "passports:write"],
            rate_limit_per_minute=30, allowed_ips=["10.0.0.0/8"],
        )
        new, new_token = apikey_rotate(
            key=old, overlap=overlap, actor=Actor.for_user(members["owner"]), context=CONTEXT
        )
    old.refresh_from_db()
    assert old.expires_at == T0 + length
    assert new_token != old_token
    assert new.rotated_from == old
    assert list(old.successors.all()) == [new]
    for field in ("name", "note", "scopes", "environment", "rate_limit_per_minute",
                  "allowed_ips", "expires_at", "workspace_id"):
        if field != "expires_at":
            assert getattr(new, field) == getattr(old, field), field
    assert new.expires_at is None
    assert new.created_by == members["owner"]

    ip = "10.1.2.3"
    just_before = T0 + length - timedelta(microseconds=1)
    old_digest, new_digest = token_digest(old_token), token_digest(new_token)
    if length:
        assert apikey_check_digest(old_digest, ip=ip, now=just_before).ok
    assert apikey_check_digest(old_digest, ip=ip, now=T0 + length).error == "key_expired"
    later = T0 + length + timedelta(days=30)
    assert apikey_check_digest(new_digest, ip=ip, now=later).key == new

    event = AuditEvent.objects.get(action="key.rotated")
    assert event.target_id == old.public_id
    assert event.metadata == {
        "successor": new.public_id, "overlap": overlap,
        "stops_at": (T0 + length).isoformat(),
    }
    assert event.actor_id == str(members["owner"].pk)


def test_rotate_never_extends_an_earlier_expiry(workspace) -> None:
    with time_machine.travel(T0, tick=False):
        old, _ = make_key(workspace, expires_at=T0 + timedelta(minutes=30))
        new, _ = apikey_rotate(key=old, overlap="24h", **by())
    old.refresh_from_db()
    assert old.expires_at == T0 + timedelta(minutes=30)
    assert new.expires_at == T0 + timedelta(minutes=30)  # the successor inherits the expiry


def test_rotated_old_key_moves_to_the_inactive_list_when_the_overlap_ends(workspace) -> None:
    with time_machine.travel(T0, tick=False):
        old, _ = make_key(workspace)
        new, _ = apikey_rotate(key=old, overlap="1h", **by())
        live, inactive, _next = apikeys_for_dashboard(workspace)
        assert {k.pk for k in live} == {old.pk, new.pk}
        assert next(k for k in live if k.pk == old.pk).has_successor
        assert not next(k for k in live if k.pk == new.pk).has_successor
    live, inactive, _next = apikeys_for_dashboard(workspace, now=T0 + timedelta(hours=1))
    assert [k.pk for k in live] == [new.pk]
    assert [k.pk for k in inactive] == [old.pk]


def test_rotate_refuses_revoked_expired_rotated_keys_and_bad_overlap(workspace) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        revoked, _ = make_key(workspace, name="revoked")
        apikey_revoke(key=revoked, **by())
        expiring, _ = make_key(workspace, name="expiring", expires_at=T0 + timedelta(minutes=1))
        rotated, _ = make_key(workspace, name="rotated")
        apikey_rotate(key=rotated, overlap="7d", **by())
        fine, _ = make_key(workspace, name="fine")
        clock.shift(timedelta(minutes=1))
        before = (ApiKey.objects.count(), AuditEvent.objects.count())
        with pytest.raises(ValidationError, match="revoked"):
            apikey_rotate(key=revoked, overlap="1h", **by())
        with pytest.raises(ValidationError, match="expired"):
            apikey_rotate(key=expiring, overlap="1h", **by())
        with pytest.raises(ValidationError, match="already rotated"):
            apikey_rotate(key=rotated, overlap="1h", **by())
        with pytest.raises(ValidationError) as exc:
            apikey_rotate(key=fine, overlap="2h", **by())
        assert "overlap" in exc.value.message_dict
        assert (ApiKey.objects.count(), AuditEvent.objects.count()) == before


def test_rotate_is_allowed_at_the_plan_limit(workspace) -> None:
    keys = [make_key(workspace, name=f"k{i}")[0] for i in range(5)]
    new, _ = apikey_rotate(key=keys[0], overlap="1h", **by())  # the old key stops; nothing is added
    assert new.pk


def test_expiry_with_a_frozen_clock(workspace) -> None:
    expires = T0 + timedelta(days=3)
    with time_machine.travel(T0, tick=False) as clock:
        key, token = make_key(workspace, expires_at=expires)
        assert key.expires_within(7) and not key.expires_within(2)
        clock.move_to(expires - timedelta(seconds=1))
        assert apikey_check_digest(token_digest(token), ip=None).ok
        assert key.effective_status() == "active"
        assert ApiKey.objects.live().filter(pk=key.pk).exists()
        clock.move_to(expires)
        assert apikey_check_digest(token_digest(token), ip=None).error == "key_expired"
        assert key.effective_status() == "expired"
        assert not ApiKey.objects.live().filter(pk=key.pk).exists()
        assert ApiKey.objects.inactive().filter(pk=key.pk).exists()
        with pytest.raises(ValidationError, match="expired and cannot be paused"):
            apikey_pause(key=key, **by())


def test_pause_and_resume(workspace, members) -> None:
    key, token = make_key(workspace)
    admin = members["admin"]
    apikey_pause(key=key, actor=Actor.for_user(admin), context=CONTEXT)
    assert apikey_check_digest(token_digest(token), ip=None).error == "key_paused"
    with pytest.raises(ValidationError, match="already paused"):
        apikey_pause(key=key, **by(admin))
    apikey_resume(key=key, actor=Actor.for_user(admin), context=CONTEXT)
    assert apikey_check_digest(token_digest(token), ip=None).ok
    with pytest.raises(ValidationError, match="already active"):
        apikey_resume(key=key, **by(admin))
    assert actions() == ["key.created", "key.paused", "key.resumed"]
    assert AuditEvent.objects.get(action="key.paused").ip == "203.0.113.7"


def test_revoke_is_permanent_and_a_second_revoke_is_refused_once_audited(
    workspace, members
) -> None:
    key, token = make_key(workspace)
    apikey_pause(key=key, **by())
    with time_machine.travel(T0, tick=False):
        apikey_revoke(
            key=key, actor=Actor.for_user(members["owner"]), context=CONTEXT, reason="leaked"
        )
    key.refresh_from_db()
    assert (key.status, key.revoked_at, key.revoked_by) == ("revoked", T0, members["owner"])
    assert key.revoked_reason == "leaked"
    assert apikey_check_digest(token_digest(token), ip=None).error == "key_revoked"
    for service in (apikey_revoke, apikey_pause, apikey_resume):
        with pytest.raises(ValidationError) as exc:
            service(key=key, actor=Actor.for_user(members["owner"]), context=CONTEXT)
        assert "revoked" in exc.value.messages[0]
    assert actions().count("key.revoked") == 1
    assert key.revoked_at == T0  # unchanged by the refused second revoke


def test_check_environment_ip_and_unknown_tokens(workspace, settings, django_assert_num_queries):
    key, token = make_key(workspace, allowed_ips=["10.0.0.0/8", "2001:db8::/32"])
    assert apikey_check_digest(token_digest(token), ip="10.9.8.7").ok
    assert apikey_check_digest(token_digest(token), ip="2001:db8::1").ok
    assert apikey_check_digest(token_digest(token), ip="192.0.2.1").error == "ip_not_allowed"
    assert apikey_check_digest(token_digest(token), ip=None).error == "ip_not_allowed"
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    # Shape, checksum and environment are the verifier's, before any lookup.
    with django_assert_num_queries(0):  # a bad checksum is refused without the database
        assert verify_api_key(forged, ip="10.0.0.1").error == "invalid_credentials"
    settings.GATEHOUSE_ENVIRONMENT = "production"
    with django_assert_num_queries(0):
        assert verify_api_key(token, ip="10.0.0.1").error == "environment_mismatch"
    prod_key, prod_token = make_key(workspace, environment="production")
    key.delete()
    assert verify_api_key(prod_token, ip=None).api_key == prod_key
    assert verify_api_key(token, ip="10.0.0.1").error == "environment_mismatch"


def test_set_rate_limit_is_audited_and_validated(workspace) -> None:
    key, _ = make_key(workspace)
    apikey_set_rate_limit(key=key, rate_limit_per_minute=120, **by())
    apikey_set_rate_limit(key=key, rate_limit_per_minute=120, **by())  # no change, no event
    with pytest.raises(ValidationError):
        apikey_set_rate_limit(key=key, rate_limit_per_minute=0, **by())
    key.refresh_from_db()
    assert key.rate_limit_per_minute == 120
    assert actions() == ["key.created", "key.rate_limit_changed"]
