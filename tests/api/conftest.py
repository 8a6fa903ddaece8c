"""Fixtures for the JSON API: keys with real tokens, and clients that send them."""

from collections.abc import Callable

import pytest
from django.test import Client

from apikeys.models import ApiKey
from apikeys.services import apikey_create
from workspaces.models import Workspace

ALL_KEY_SCOPES = ["audit:read", "keys:read", "passports:read", "passports:write"]


@pytest.fixture
def make_key(workspace, members) -> Callable[..., tuple[ApiKey, str]]:
    """`make_key(scopes=[...], workspace=..., **apikey_create kwargs)` → (key, token).

    Keys are created through the service, as the dashboard does (development environment,
    like the test server, unless `environment=` says otherwise)."""

    def make(
        scopes: list[str] | None = None, *, workspace: Workspace | None = None, **kwargs
    ) -> tuple[ApiKey, str]:
        in_default = workspace is None
        kwargs.setdefault("environment", "development")
        kwargs.setdefault("name", "Integration")
        return apikey_create(
            workspace=workspace or _default,
            scopes=ALL_KEY_SCOPES if scopes is None else scopes,
            acting_user=members["admin"] if in_default else None,
            **kwargs,
        )

    _default = workspace
    return make


@pytest.fixture
def api(make_key) -> Callable[..., Client]:
    """`api(token)`: a test client sending `Authorization: Bearer <token>` on every request."""

    def make(token: str | None = None, **headers) -> Client:
        if token is None:
            _key, token = make_key()
        return Client(headers={"Authorization": f"Bearer {token}", **headers})

    return make


@pytest.fixture
def token(make_key) -> str:
    return make_key()[1]


@pytest.fixture
def client_api(api, token) -> Client:
    """A client with an all-scopes key of `workspace` (acme)."""
    return api(token)
