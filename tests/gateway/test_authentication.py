"""The gateway's authentication: schemes, refusals with their SPEC §4 codes, the challenge."""

import re
from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from apikeys.services import apikey_pause, apikey_revoke, apikey_rotate
from apikeys.tokens import generate_token
from passports.models import Passport
from tests.factories import by

pytestmark = pytest.mark.django_db

RESOURCE_METADATA = 'resource_metadata="http://testserver/.well-known/oauth-protected-resource"'
PASSPORT = {"gtin": "4006381333931", "serial_number": "SN-1", "product_name": "Drill"}


def challenge(response) -> dict[str, str]:
    header = response["WWW-Authenticate"]
    assert header.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def assert_error(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == error
    assert body["message"].endswith(".")
    return body


def test_bearer_and_apikey_schemes_both_authenticate(token) -> None:
    for header in (f"Bearer {token}", f"ApiKey {token}", f"bearer {token}", f"APIKEY  {token} "):
        response = Client(headers={"Authorization": header}).get("/api/v1/me")
        assert response.status_code == HTTPStatus.OK, header
        assert response.json()["workspace"]["slug"] == "acme"


def test_me_describes_the_caller(make_key, api) -> None:
    key, token = make_key(["passports:read"], name="ERP sync")
    body = api(token).get("/api/v1/me").json()
    assert body == {
        "workspace": {"slug": "acme", "name": "Acme"},
        "principal": {"kind": "api_key", "id": key.public_id, "name": "ERP sync"},
        "scopes": ["passports:read"],
        "plan": {
            "code": "free", "name": "Free", "writes_per_day": 100,
            "passport_reads_per_day": 100, "passports_limit": 25, "active_keys_limit": 5,
        },
        "overage": {"allowed": False, "enabled": False, "price_cents": None, "units_today": 0,
                    "units_last_30_days": 0},
    }


def test_missing_credentials_get_a_challenge_without_error(client) -> None:
    response = client.get("/api/v1/me")
    assert_error(response, HTTPStatus.UNAUTHORIZED, "missing_credentials")
    params = challenge(response)
    assert params == {
        "realm": "gatehouse",
        "resource_metadata": "http://testserver/.well-known/oauth-protected-resource",
    }
    assert "Authorization" in response["Vary"]


def test_resource_metadata_follows_the_request_origin(client) -> None:
    response = client.get("/api/v1/me", secure=True, headers={"Host": "localhost"})
    assert challenge(response)["resource_metadata"] == (
        "https://localhost/.well-known/oauth-protected-resource"
    )


BAD_HEADERS = {
    "empty": ("", HTTPStatus.UNAUTHORIZED, "missing_credentials", None),
    "blank": ("   ", HTTPStatus.UNAUTHORIZED, "missing_credentials", None),
    "garbage": ("!!garbage!!", HTTPStatus.UNAUTHORIZED, "invalid_credentials", None),
    "basic scheme": ("Basic dXNlcjpwYXNz", HTTPStatus.UNAUTHORIZED, "invalid_credentials", None),
    "token scheme": ("Token abc", HTTPStatus.UNAUTHORIZED, "invalid_credentials", None),
    "no scheme": ("gk_dev_abc", HTTPStatus.UNAUTHORIZED, "invalid_credentials", None),
    "scheme only": ("Bearer", HTTPStatus.UNAUTHORIZED, "invalid_credentials", "invalid_token"),
    "bad checksum": (
        "Bearer gk_dev_" + "a" * 36, HTTPStatus.UNAUTHORIZED, "invalid_credentials",
        "invalid_token",
    ),
    "truncated key": (
        "Bearer gk_dev_abc", HTTPStatus.UNAUTHORIZED, "invalid_credentials", "invalid_token",
    ),
    "unknown prefix": (
        "Bearer sk_live_abcdef", HTTPStatus.UNAUTHORIZED, "invalid_credentials", "invalid_token",
    ),
    "8 KiB": (
        "Bearer " + "A" * 8192, HTTPStatus.UNAUTHORIZED, "invalid_credentials", "invalid_token",
    ),
    "non-ASCII": (
        "Bearer gk_dev_ñandú€" + "a" * 30, HTTPStatus.UNAUTHORIZED, "invalid_credentials",
        "invalid_token",
    ),
    "control characters": (
        "Bearer gk_dev_\x00\x1b[31m", HTTPStatus.UNAUTHORIZED, "invalid_credentials",
        "invalid_token",
    ),
    "two bearer credentials": (
        "Bearer gk_dev_a, Bearer gk_dev_b", HTTPStatus.BAD_REQUEST, "invalid_request",
        "invalid_request",
    ),
    "two tokens": (
        "Bearer gk_dev_a gk_dev_b", HTTPStatus.BAD_REQUEST, "invalid_request", "invalid_request",
    ),
    "basic and bearer": (
        "Basic dXNlcjpwYXNz, Bearer gk_dev_a", HTTPStatus.BAD_REQUEST, "invalid_request",
        "invalid_request",
    ),
}


@pytest.mark.parametrize("case", BAD_HEADERS, ids=list(BAD_HEADERS))
def test_bad_authorization_headers_get_json_errors_and_change_nothing(
    case, django_assert_num_queries
) -> None:
    header, status, error, bearer_error = BAD_HEADERS[case]
    client = Client(headers={"Authorization": header})
    # Refused from the header alone: not one query, not even the failed-auth counter.
    with django_assert_num_queries(0):
        response = client.post("/api/v1/passports", PASSPORT, content_type="application/json")
    body = assert_error(response, status, error)
    params = challenge(response)
    assert params.get("error") == bearer_error
    assert params["realm"] == "gatehouse"
    assert "resource_metadata" in params
    if status == HTTPStatus.BAD_REQUEST:
        assert body["fields"] == {"Authorization": "More than one credential."}
    assert not Passport.objects.exists()


def test_a_bad_checksum_is_refused_without_a_database_query(django_assert_num_queries) -> None:
    token = generate_token("development")
    mistyped = token[:-1] + ("A" if token[-1] != "A" else "B")
    client = Client(headers={"Authorization": f"Bearer {mistyped}"})
    with django_assert_num_queries(0):
        response = client.get("/api/v1/passports")
    assert_error(response, HTTPStatus.UNAUTHORIZED, "invalid_credentials")
    assert challenge(response)["error"] == "invalid_token"


def test_a_well_formed_unknown_key_is_invalid_credentials(client) -> None:
    client = Client(headers={"Authorization": f"Bearer {generate_token('development')}"})
    response = client.get("/api/v1/me")
    body = assert_error(response, HTTPStatus.UNAUTHORIZED, "invalid_credentials")
    assert body["message"] == "The API key is not valid."
    assert challenge(response)["error"] == "invalid_token"


def test_token_in_the_query_string_is_not_accepted(token) -> None:
    response = Client().get(f"/api/v1/me?access_token={token}")
    body = assert_error(response, HTTPStatus.UNAUTHORIZED, "missing_credentials")
    assert "Authorization header" in body["message"]


def test_token_in_the_query_string_next_to_a_header_is_two_credentials(token) -> None:
    response = Client(headers={"Authorization": f"Bearer {token}"}).get(
        f"/api/v1/me?access_token={token}"
    )
    assert_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert challenge(response)["error"] == "invalid_request"


def test_revoked_key_is_refused(make_key, api, members) -> None:
    key, token = make_key()
    client = api(token)
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    apikey_revoke(key=key, **by(members["admin"]))
    response = client.get("/api/v1/me")
    assert_error(response, HTTPStatus.UNAUTHORIZED, "key_revoked")
    assert challenge(response)["error"] == "invalid_token"


def test_expired_key_is_refused(make_key, api) -> None:
    _key, token = make_key(expires_at=timezone.now() + timedelta(days=1))
    client = api(token)
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    with time_machine.travel(timezone.now() + timedelta(days=1, seconds=1)):
        response = client.get("/api/v1/me")
    assert_error(response, HTTPStatus.UNAUTHORIZED, "key_expired")
    assert challenge(response)["error"] == "invalid_token"


def test_rotated_key_stops_after_its_overlap(make_key, api, members) -> None:
    key, old_token = make_key()
    _new, new_token = apikey_rotate(key=key, overlap="now", **by(members["admin"]))
    assert_error(api(old_token).get("/api/v1/me"), HTTPStatus.UNAUTHORIZED, "key_expired")
    assert api(new_token).get("/api/v1/me").status_code == HTTPStatus.OK


def test_paused_key_is_refused(make_key, api, members) -> None:
    key, token = make_key()
    apikey_pause(key=key, **by(members["admin"]))
    response = api(token).get("/api/v1/me")
    assert_error(response, HTTPStatus.UNAUTHORIZED, "key_paused")
    assert challenge(response)["error"] == "invalid_token"


def test_key_of_another_environment_is_refused(make_key, api, django_assert_num_queries) -> None:
    _key, token = make_key(environment="production")
    client = api(token)
    with django_assert_num_queries(0):
        response = client.get("/api/v1/me")
    body = assert_error(response, HTTPStatus.UNAUTHORIZED, "environment_mismatch")
    assert "gk_dev_" in body["message"]
    assert challenge(response)["error"] == "invalid_token"


def test_key_used_from_an_address_outside_its_allowed_ips(make_key, api) -> None:
    _key, token = make_key(allowed_ips=["10.0.0.0/8"])
    client = api(token)
    response = client.get("/api/v1/me", REMOTE_ADDR="192.0.2.7")
    assert_error(response, HTTPStatus.FORBIDDEN, "ip_not_allowed")
    assert "WWW-Authenticate" not in response
    assert client.get("/api/v1/me", REMOTE_ADDR="10.1.2.3").status_code == HTTPStatus.OK


def test_refused_key_changes_nothing(make_key, api, members) -> None:
    key, token = make_key()
    apikey_revoke(key=key, **by(members["admin"]))
    response = api(token).post("/api/v1/passports", PASSPORT, content_type="application/json")
    assert_error(response, HTTPStatus.UNAUTHORIZED, "key_revoked")
    assert not Passport.objects.exists()


def test_oauth_token_without_an_oauth_verifier_is_invalid_token(settings) -> None:
    settings.GATEHOUSE_TOKEN_VERIFIERS = {"gk_": "apikeys.verifier.verify_api_key"}
    response = Client(headers={"Authorization": "Bearer gat_" + "a" * 40}).get("/api/v1/me")
    assert_error(response, HTTPStatus.UNAUTHORIZED, "invalid_token")
    assert challenge(response)["error"] == "invalid_token"


def test_verifiers_are_routed_by_prefix(settings, make_key) -> None:
    settings.GATEHOUSE_TOKEN_VERIFIERS = {
        "gk_": "apikeys.verifier.verify_api_key",
        "zz_": "tests.gateway.verifiers.always_acme",
    }
    response = Client(headers={"Authorization": "Bearer zz_anything"}).get("/api/v1/me")
    assert response.status_code == HTTPStatus.OK
    assert response.json()["principal"] == {"kind": "oauth", "id": "zz", "name": "Test verifier"}


def test_an_unresolvable_verifier_fails_at_startup(settings) -> None:
    from django.core.exceptions import ImproperlyConfigured

    settings.GATEHOUSE_TOKEN_VERIFIERS = {"gk_": "apikeys.verifier.no_such_function"}
    with pytest.raises(ImproperlyConfigured, match="GATEHOUSE_TOKEN_VERIFIERS"):
        Client().get("/api/v1/me")


def test_every_response_varies_on_authorization_and_has_a_request_id(client_api, client) -> None:
    for response in (
        client_api.get("/api/v1/me"),
        client.get("/api/v1/me"),
        client.get("/api/v1/openapi.json"),
        client.get("/api/v1/nowhere"),
    ):
        assert "Authorization" in response["Vary"]
        assert re.fullmatch(r"req_[0-9a-f]{24}", response["X-Request-Id"])


def test_authentication_reads_the_key_with_one_query(client_api, django_assert_num_queries) -> None:
    # One raw lookup (key + workspace + plan), on every backend: a valid key asks nothing about
    # its address (no failed-auth block read, not even on the embedded DatabaseCache).
    with django_assert_num_queries(1):
        response = client_api.get("/api/v1/me")
    assert response.status_code == HTTPStatus.OK
