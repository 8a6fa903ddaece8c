"""The security suite reuses the OAuth flow's helpers (the key fixtures are tests/conftest.py's)."""

from tests.oauth.conftest import (  # noqa: F401
    authorize,
    exchange,
    make_app,
    oauth_app,
    tokens_for,
)
