from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apikeys.models import ApiKey, KeyStatus
from apikeys.selectors import apikey_check_digest
from apikeys.services import apikey_create
from apikeys.tokens import token_digest
from audit.models import AuditEvent
from passports.services import collection_create
from tests.factories import by

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_api_key_prints_only_the_token(workspace, settings) -> None:
    settings.GATEHOUSE_ENVIRONMENT = "staging"
    out, err = run("create_api_key", "acme", "--name", "Deploy bot")
    token = out.strip()
    assert out == token + "\n" and err == ""
    assert token.startswith("gk_stg_")
    key = apikey_check_digest(token_digest(token), ip=None).key
    assert key.name == "Deploy bot" and key.workspace == workspace
    assert key.environment == "staging"
    # every read scope
    assert key.scopes == ["audit:read", "collections:read", "keys:read", "passports:read"]
    assert key.created_by is None
    event = AuditEvent.objects.get(action="key.created")
    assert (event.actor_type, event.actor_label) == ("system", "manage.py create_api_key")
    assert event.user_agent == "manage.py create_api_key"


def test_create_api_key_with_scopes_env_and_expiry(workspace) -> None:
    out, _ = run(
        "create_api_key", "acme", "--name", "CI", "--scopes", "passports:read,passports:write",
        "--env", "production", "--expires", "2099-06-30T08:00:00+02:00",
    )
    key = ApiKey.objects.get()
    assert out.startswith("gk_prod_")
    assert key.scopes == ["passports:read", "passports:write"]
    assert key.expires_at == datetime(2099, 6, 30, 6, 0, tzinfo=UTC)
    run("create_api_key", "acme", "--name", "CI 2", "--expires", "2099-01-31")
    assert ApiKey.objects.get(name="CI 2").expires_at == datetime(2099, 1, 31, tzinfo=UTC)


def test_create_api_key_with_a_rate_limit(workspace) -> None:
    run("create_api_key", "acme", "--name", "Limited", "--rate-limit", "120")
    key = ApiKey.objects.get(name="Limited")
    assert key.rate_limit_per_minute == 120
    event = AuditEvent.objects.get(action="key.created", target_id=key.public_id)
    assert event.metadata["rate_limit_per_minute"] == 120


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--name", "x"], "No workspace with slug 'nope'."),
        (["acme", "--name", ""], "Give the key a name."),
        (["acme", "--name", "x" * 101], "Use at most 100 characters."),
        (["acme", "--name", "x", "--scopes", "passports:read,root"], "Unknown scope: root."),
        (["acme", "--name", "x", "--scopes", ","], "Choose at least one scope."),
        (["acme", "--name", "x", "--expires", "2001-01-01"], "The expiry must be in the future."),
        (["acme", "--name", "x", "--expires", "next week"], "not an ISO 8601 date"),
        (["acme", "--name", "x", "--rate-limit", "0"], "must be a positive number"),
    ],
)
def test_create_api_key_refuses_bad_input_and_writes_nothing(workspace, args, message) -> None:
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert ApiKey.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="key.").exists()


def test_create_api_key_refuses_bad_environment(workspace) -> None:
    with pytest.raises(CommandError, match="invalid choice: 'prod'"):
        run("create_api_key", "acme", "--name", "x", "--env", "prod")
    assert ApiKey.objects.count() == 0


def test_create_api_key_respects_the_plan_limit(workspace) -> None:
    for i in range(5):
        run("create_api_key", "acme", "--name", f"k{i}")
    with pytest.raises(CommandError, match="The Free plan allows 5 active keys"):
        run("create_api_key", "acme", "--name", "sixth")
    assert ApiKey.objects.count() == 5


def test_revoke_api_key(workspace) -> None:
    key, token = apikey_create(
        workspace=workspace, name="CI", scopes=["passports:read"], environment="development",
        **by(),
    )
    out, _ = run("revoke_api_key", key.public_id)
    assert out == f"Revoked {key.public_id} “CI” ({key.display_hint}) in acme.\n"
    key.refresh_from_db()
    assert key.status == KeyStatus.REVOKED and key.revoked_by is None
    assert apikey_check_digest(token_digest(token), ip=None).error == "key_revoked"
    event = AuditEvent.objects.get(action="key.revoked")
    assert event.actor_label == "manage.py revoke_api_key"

    with pytest.raises(CommandError, match="This key is already revoked."):
        run("revoke_api_key", key.public_id)
    assert AuditEvent.objects.filter(action="key.revoked").count() == 1


def test_revoke_api_key_unknown_id(db) -> None:
    with pytest.raises(CommandError, match="No API key with id 'key_nope'."):
        run("revoke_api_key", "key_nope")


def test_create_api_key_with_collections(workspace, other_workspace) -> None:
    tools = collection_create(workspace=workspace, name="Tools", **by())
    out, _err = run("create_api_key", "acme", "--name", "Shelf bot",
                    "--collections", f"{tools.public_id}")
    key = apikey_check_digest(token_digest(out.strip()), ip=None).key
    assert key.collections == [tools.pk]
    event = AuditEvent.objects.get(action="key.created", target_id=key.public_id)
    assert event.metadata["collections"] == [tools.public_id]
    theirs = collection_create(workspace=other_workspace, name="Theirs", **by())
    with pytest.raises(CommandError, match=theirs.public_id):
        run("create_api_key", "acme", "--name", "Bad", "--collections", theirs.public_id)
    assert not ApiKey.objects.filter(name="Bad").exists()


def test_create_api_key_with_allowed_ips(workspace) -> None:
    out, _err = run("create_api_key", "acme", "--name", "Pinned",
                    "--allowed-ips", "10.0.0.0/8, 192.0.2.7")
    key = ApiKey.objects.get(name="Pinned")
    assert key.allowed_ips == ["10.0.0.0/8", "192.0.2.7/32"]
    assert apikey_check_digest(token_digest(out.strip()), ip="8.8.8.8").error == "ip_not_allowed"
    assert apikey_check_digest(token_digest(out.strip()), ip="10.1.2.3").ok


def test_create_api_key_refuses_a_bad_cidr_and_writes_nothing(workspace) -> None:
    with pytest.raises(CommandError, match="Not an IP address or CIDR range: 10.0.0.0/33"):
        run("create_api_key", "acme", "--name", "Bad", "--allowed-ips", "10.0.0.0/33")
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("command", ["create_api_key", "update_api_key"])
def test_help_lists_the_valid_scopes(command, capsys) -> None:
    with pytest.raises(SystemExit):
        call_command(command, "--help")
    text = capsys.readouterr().out
    assert "--allowed-ips" in text and "Valid scopes:" in text
    for scope in ("passports:read", "passports:write", "collections:read", "audit:read",
                  "keys:read"):
        assert scope in text
    assert "offline_access" not in text  # OAuth only


def test_update_api_key_changes_only_what_is_given(workspace) -> None:
    key, _token = apikey_create(
        workspace=workspace, name="Cron", note="keep", scopes=["passports:read"],
        environment="development", **by(),
    )
    out, _err = run("update_api_key", key.public_id, "--name", "Nightly cron",
                    "--scopes", "passports:read,keys:read", "--allowed-ips", "192.0.2.0/24",
                    "--rate-limit", "30", "--expires", "2040-01-01")
    assert "Saved" in out and "Nightly cron" in out
    key.refresh_from_db()
    assert (key.name, key.note, key.scopes) == ("Nightly cron", "keep",
                                                ["keys:read", "passports:read"])
    assert key.allowed_ips == ["192.0.2.0/24"] and key.rate_limit_per_minute == 30
    assert key.expires_at == datetime(2040, 1, 1, tzinfo=UTC)
    event = AuditEvent.objects.get(action="key.updated")
    assert event.metadata["door"] == "command"
    assert event.actor_label == "manage.py update_api_key"
    assert event.metadata["name"] == ["Cron", "Nightly cron"]
    run("update_api_key", key.public_id, "--no-expiry", "--rate-limit", "none",
        "--allowed-ips", "")
    key.refresh_from_db()
    assert key.expires_at is None and key.rate_limit_per_minute is None
    assert key.allowed_ips == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scopes", "passports:read,root"], "Unknown scope: root."),
        (["--allowed-ips", "300.1.1.1"], "Not an IP address or CIDR"),
        (["--rate-limit", "-1"], "whole number"),
        (["--rate-limit", "0"], "positive number"),
        (["--name", ""], "Give the key a name."),
        (["--collections", "col_missing"], "No collection of this workspace"),
        ([], "Nothing to change"),
    ],
)
def test_update_api_key_refuses_bad_input_and_changes_nothing(workspace, args, message) -> None:
    key, _token = apikey_create(
        workspace=workspace, name="Cron", scopes=["passports:read"], environment="development",
        **by(),
    )
    with pytest.raises(CommandError, match=message):
        run("update_api_key", key.public_id, *args)
    key.refresh_from_db()
    assert key.name == "Cron" and key.scopes == ["passports:read"]
    assert not AuditEvent.objects.filter(action="key.updated").exists()


def test_update_api_key_unknown_id(db) -> None:
    with pytest.raises(CommandError, match="No API key with id"):
        run("update_api_key", "key_doesnotexist", "--name", "x")
