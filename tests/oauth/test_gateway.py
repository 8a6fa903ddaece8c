"""`oauth.verifier.verify_access_token`, and `gat_` tokens at the JSON API through the gateway:
effective scopes = granted ∩ the user's current role, checked on every request."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken

import oauth.verifier
from apikit.principal import AuthFailure, Principal
from oauth.models import Connection
from oauth.selectors import token_checksum
from oauth.services import connection_revoke
from oauth.tokens import generate_access_token
from oauth.verifier import verify_access_token
from tests.factories import by
from workspaces.models import Membership
from workspaces.services import membership_change_role

from .conftest import API_RESOURCE

PASSPORT = {"gtin": "4006381333931", "serial_number": "SN-1", "product_name": "Kettle"}


def test_valid_token_yields_an_oauth_principal(oauth_app, tokens_for, members, workspace):
    body = tokens_for(oauth_app, "editor")

    principal = verify_access_token(body["access_token"], ip="203.0.113.9", resource=API_RESOURCE)

    assert isinstance(principal, Principal)
    assert principal.kind == "oauth"
    assert principal.id == oauth_app.client_id
    assert principal.name == "Acme CRM"
    assert principal.workspace == workspace
    assert principal.user_id == members["editor"].pk
    assert principal.scopes == frozenset({"passports:read", "passports:write", "offline_access"})
    assert Connection.objects.get().last_used_at is not None


@pytest.mark.parametrize(
    "token",
    ["", "gat_", "gat_" + "A" * 46, "gk_dev_abc", "grt_" + "A" * 46, "gat_ünïcode" + "a" * 40],
)
def test_malformed_tokens_are_refused_without_a_lookup(db, token, django_assert_num_queries):
    with django_assert_num_queries(0):
        failure = verify_access_token(token, ip=None, resource=API_RESOURCE)
    assert isinstance(failure, AuthFailure)
    assert failure.error == "invalid_token" and failure.status == 401
    assert failure.looked_up is False


def test_tampered_token_is_invalid(oauth_app, tokens_for) -> None:
    token = tokens_for(oauth_app)["access_token"]
    flipped = token[:10] + ("B" if token[10] != "B" else "C") + token[11:]

    assert verify_access_token(flipped, ip=None, resource=API_RESOURCE).error == "invalid_token"


def test_unknown_well_formed_token_is_invalid(db) -> None:
    failure = verify_access_token(generate_access_token(), ip=None, resource=API_RESOURCE)

    assert failure.error == "invalid_token" and failure.looked_up is True


def test_expired_token_is_invalid(oauth_app, tokens_for) -> None:
    token = tokens_for(oauth_app)["access_token"]

    with time_machine.travel(timezone.now() + timedelta(minutes=15, seconds=1), tick=False):
        failure = verify_access_token(token, ip=None, resource=API_RESOURCE)

    assert failure.error == "invalid_token"
    assert "expired" in failure.message


def test_demoted_editor_loses_write_at_once(oauth_app, tokens_for, members, workspace):
    token = tokens_for(oauth_app, "editor")["access_token"]
    membership = Membership.objects.get(user=members["editor"], workspace=workspace)

    membership_change_role(membership=membership, role="viewer", **by(members["owner"]))

    assert verify_access_token(token, ip=None, resource=API_RESOURCE).scopes == frozenset(
        {"passports:read", "offline_access"}
    )


def test_a_viewer_token_with_write_granted_still_cannot_write(oauth_app, tokens_for, members):
    token = tokens_for(oauth_app, "viewer", scope="passports:read")["access_token"]
    AccessToken.objects.update(scope="passports:read passports:write")  # however it got there

    principal = verify_access_token(token, ip=None, resource=API_RESOURCE)
    assert "passports:write" not in principal.scopes


def test_removed_member_token_stops_working(oauth_app, tokens_for, members, workspace):
    token = tokens_for(oauth_app, "editor")["access_token"]

    Membership.objects.filter(user=members["editor"], workspace=workspace).delete()

    failure = verify_access_token(token, ip=None, resource=API_RESOURCE)
    assert failure.error == "invalid_token"
    assert "no longer a member" in failure.message


def test_deactivated_user_token_stops_working(oauth_app, tokens_for, members) -> None:
    token = tokens_for(oauth_app, "editor")["access_token"]
    members["editor"].is_active = False
    members["editor"].save()

    assert verify_access_token(token, ip=None, resource=API_RESOURCE).error == "invalid_token"


def test_revoked_grant_token_stops_working(oauth_app, tokens_for, members) -> None:
    token = tokens_for(oauth_app, "editor")["access_token"]

    connection_revoke(connection=Connection.objects.get(), **by(members["editor"]))

    assert verify_access_token(token, ip=None, resource=API_RESOURCE).error == "invalid_token"


def test_verification_costs_one_query(oauth_app, tokens_for, django_assert_num_queries):
    token = tokens_for(oauth_app)["access_token"]
    verify_access_token(token, ip=None, resource=API_RESOURCE)  # records last use (once a minute)

    # The token, its app, grant, workspace and plan and the user's role: one statement (read
    # past the per-process cache, which with Redis needs none: tests/oauth/test_token_cache.py).
    with django_assert_num_queries(1):
        principal = verify_access_token(token, ip=None, resource=API_RESOURCE, fresh=True)
        assert principal.workspace.plan.code  # loaded with it, not a query of its own


# --- Through the gateway -----------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_me_with_an_oauth_token(oauth_app, tokens_for) -> None:
    token = tokens_for(oauth_app, "editor")["access_token"]

    response = Client().get("/api/v1/me", **bearer(token))

    assert response.status_code == HTTPStatus.OK, response.content
    data = response.json()
    assert data["workspace"]["slug"] == "acme"
    assert data["principal"] == {"kind": "oauth", "id": oauth_app.client_id, "name": "Acme CRM"}
    assert "passports:write" in data["scopes"]


def test_viewer_token_cannot_write_through_the_api(oauth_app, tokens_for) -> None:
    token = tokens_for(oauth_app, "viewer", scope="passports:read passports:write")["access_token"]
    AccessToken.objects.update(scope="passports:read passports:write")

    response = Client().post(
        "/api/v1/passports", PASSPORT, content_type="application/json", **bearer(token)
    )

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["error"] == "insufficient_scope"
    assert response.json()["required_scope"] == "passports:write"


def test_editor_token_writes_until_demoted(oauth_app, tokens_for, members, workspace) -> None:
    token = tokens_for(oauth_app, "editor")["access_token"]
    created = Client().post(
        "/api/v1/passports", PASSPORT, content_type="application/json", **bearer(token)
    )
    membership = Membership.objects.get(user=members["editor"], workspace=workspace)
    membership_change_role(membership=membership, role="viewer", **by(members["owner"]))

    refused = Client().post(
        "/api/v1/passports",
        {**PASSPORT, "serial_number": "SN-2"},
        content_type="application/json",
        **bearer(token),
    )

    assert created.status_code == HTTPStatus.CREATED, created.content
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert refused.json()["error"] == "insufficient_scope"


def test_revoked_token_at_the_api_is_invalid_token_with_challenge(oauth_app, tokens_for):
    token = tokens_for(oauth_app, "editor")["access_token"]
    connection_revoke(connection=Connection.objects.get(), **by())

    response = Client().get("/api/v1/me", **bearer(token))

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["error"] == "invalid_token"
    assert "resource_metadata=" in response["WWW-Authenticate"]


def test_the_gateway_hashes_an_access_token_once(oauth_app, tokens_for, monkeypatch):
    """The credential filter's screen computes DOT's checksum; the verifier looks the token up
    by that same checksum (`digest=`) instead of checking and hashing it again."""
    token = tokens_for(oauth_app, "editor")["access_token"]
    client = Client(headers={"Authorization": f"Bearer {token}"})
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    calls: list[str] = []
    real = oauth.verifier.token_checksum

    def counted(value: str) -> str:
        calls.append(value)
        return real(value)

    monkeypatch.setattr(oauth.verifier, "token_checksum", counted)
    for _ in range(2):
        assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    assert calls == [token, token]


def test_the_verifier_uses_the_checksum_it_is_given(oauth_app, tokens_for):
    token = tokens_for(oauth_app, "editor")["access_token"]
    principal = verify_access_token(
        "gat_never_examined", ip=None, resource=API_RESOURCE, digest=token_checksum(token)
    )
    assert principal.kind == "oauth"
    failure = verify_access_token("gat_never_examined", ip=None, resource=API_RESOURCE)
    assert failure.error == "invalid_token" and not failure.looked_up
