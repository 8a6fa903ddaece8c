"""The gateway screens and hashes a token once: the credential filter's digest is the one the
verifier looks the credential up by (`digest=`), so neither verifier parses or hashes again."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

import pytest

import apikeys.verifier
from apikeys.services import apikey_revoke
from apikeys.tokens import token_digest
from apikeys.verifier import verify_api_key
from tests.factories import by

pytestmark = pytest.mark.django_db


def counting(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[str]:
    """Count the calls of `module.name` (still calling it): how often a token is hashed."""
    calls: list[str] = []
    real: Callable[[str], str] = getattr(module, name)

    def counted(token: str) -> str:
        calls.append(token)
        return real(token)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_an_api_key_is_hashed_once_per_request(api, make_key, monkeypatch) -> None:
    _key, token = make_key(["passports:read"])
    client = api(token)
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK  # the filter is read once
    hashed = counting(monkeypatch, apikeys.verifier, "token_digest")
    parsed = counting(monkeypatch, apikeys.verifier, "parse_token")
    for _ in range(3):
        assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    assert hashed == [token] * 3
    assert parsed == [token] * 3  # by the screen; the verifier trusts its digest


def test_the_verifier_looks_up_by_the_digest_it_is_given(make_key) -> None:
    key, token = make_key(["passports:read"])
    # Given the screen's digest, the token itself is not examined again.
    principal = verify_api_key("gk_never_parsed", ip=None, digest=token_digest(token))
    assert principal.api_key == key
    # Without it, the verifier makes every check itself, as before.
    assert verify_api_key("gk_never_parsed", ip=None).error == "invalid_credentials"
    assert verify_api_key(token, ip=None).api_key == key


def test_a_revoked_key_is_still_refused_through_the_digest(api, make_key, members) -> None:
    key, token = make_key(["passports:read"])
    client = api(token)
    assert client.get("/api/v1/me").status_code == HTTPStatus.OK
    apikey_revoke(key=key, **by(members["admin"]))
    response = client.get("/api/v1/me")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["error"] == "key_revoked"
