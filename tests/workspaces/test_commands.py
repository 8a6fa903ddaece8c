import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from tests.audit.helpers import manage
from tests.factories import PASSWORD
from workspaces.models import Membership, Workspace

pytestmark = pytest.mark.django_db


def test_create_workspace_creates_owner_and_audits(capsys) -> None:
    call_command("create_workspace", "initech", "--owner", "boss@initech.test",
                 "--password", "s3cret-pass-word", "--plan", "basic")
    ws = Workspace.objects.get(slug="initech")
    assert ws.plan.code == "basic"
    user = get_user_model().objects.get(email="boss@initech.test")
    assert user.check_password("s3cret-pass-word")
    assert Membership.objects.get(workspace=ws, user=user).role == "owner"
    event = AuditEvent.objects.get(workspace=ws, action="workspace.created")
    assert event.user_agent == "manage.py create_workspace"
    assert "initech" in capsys.readouterr().out


def test_create_workspace_with_taken_slug_fails(workspace) -> None:
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_workspace", "acme", "--owner", "x@y.test")
    assert Workspace.objects.filter(slug="acme").count() == 1


def test_create_workspace_with_unknown_plan_fails() -> None:
    with pytest.raises(CommandError, match="Unknown plan"):
        call_command("create_workspace", "new", "--owner", "x@y.test", "--plan", "platinum")
    assert not Workspace.objects.filter(slug="new").exists()
    assert not get_user_model().objects.filter(email="x@y.test").exists()


def test_create_workspace_with_bad_slug_fails_and_writes_nothing() -> None:
    with pytest.raises(CommandError):
        call_command("create_workspace", "Bad Slug!", "--owner", "x@y.test")
    assert not get_user_model().objects.filter(email="x@y.test").exists()


def test_seed_demo_is_idempotent_and_prints_login(capsys) -> None:
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "owner@demo.gatehouse.test" in out
    assert Workspace.objects.filter(slug="demo").count() == 1
    roles = set(Membership.objects.filter(workspace__slug="demo").values_list("role", flat=True))
    assert roles == {"owner", "admin", "editor", "viewer"}


def test_plans_are_seeded_with_spec_numbers() -> None:
    from workspaces.models import Plan

    free = Plan.objects.get(code="free")
    assert (free.writes_per_day, free.passport_reads_per_day, free.active_keys_limit,
            free.passports_limit, free.overage_allowed) == (100, 100, 5, 25, False)
    basic = Plan.objects.get(code="basic")
    assert (basic.writes_per_day, basic.active_keys_limit, basic.passports_limit,
            basic.overage_allowed) == (200, 10, 100, True)
    for code in ["starter", "growth", "scale", "pro", "enterprise"]:
        p = Plan.objects.get(code=code)
        assert p.writes_per_day is None and p.passports_limit is None
        assert p.active_keys_limit == 50


# --- --password ---------------------------------------------------------------------------------

def test_create_workspace_runs_the_password_validators() -> None:
    code, out, err = manage("create_workspace", "initech", "--owner", "boss@initech.test",
                            "--password", "123")
    assert code != 0
    assert "This password is too short" in err
    assert "This password is entirely numeric" in err
    assert not get_user_model().objects.filter(email="boss@initech.test").exists()
    assert not Workspace.objects.filter(slug="initech").exists()


def test_create_workspace_refuses_a_password_like_the_email() -> None:
    code, _out, err = manage("create_workspace", "initech", "--owner", "bossman@initech.test",
                             "--password", "bossman@initech.test")
    assert code != 0
    assert "too similar" in err
    assert not Workspace.objects.filter(slug="initech").exists()


def test_create_workspace_refuses_a_password_for_an_existing_user(members) -> None:
    owner = members["owner"]
    code, _out, err = manage("create_workspace", "initech", "--owner", "OWNER@acme.test",
                             "--password", "a-brand-new-long-passphrase")
    assert code != 0
    assert "already has an account" in err and "changepassword" in err
    assert "a-brand-new-long-passphrase" not in err
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)  # untouched
    assert not Workspace.objects.filter(slug="initech").exists()


def test_create_workspace_for_an_existing_user_without_password(members) -> None:
    code, _out, _err = manage("create_workspace", "initech", "--owner", "owner@acme.test")
    assert code == 0
    workspace = Workspace.objects.get(slug="initech")
    assert Membership.objects.get(workspace=workspace).user == members["owner"]
    event = AuditEvent.objects.get(workspace=workspace, action="workspace.created")
    assert event.metadata == {"plan": "free", "door": "command"}
