"""The config tests reuse the API's key fixtures (CORS on /api/v1 with a real key)."""

from tests.api.conftest import api, make_key  # noqa: F401
