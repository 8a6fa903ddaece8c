from collections.abc import Callable

import pytest

from apikeys.models import ApiKey
from apikeys.services import apikey_create


@pytest.fixture
def make_key(workspace, members) -> Callable[..., tuple[ApiKey, str]]:
    """Create a key through the service (in `workspace`, by its admin unless told otherwise)."""

    def make(**overrides) -> tuple[ApiKey, str]:
        fields = {
            "workspace": workspace, "name": "CI deploys", "scopes": ["passports:read"],
            "environment": "development", "acting_user": members["admin"],
        }
        return apikey_create(**{**fields, **overrides})

    return make


@pytest.fixture
def htmx() -> dict[str, str]:
    """Headers of a request made by htmx."""
    return {"HX-Request": "true"}
