"""Fixtures of the notification tests; the OAuth flow fixtures are the oauth tests' own."""

from tests.oauth.conftest import (  # noqa: F401 — fixtures, found by name
    authorize,
    exchange,
    make_app,
    oauth_app,
    tokens_for,
)
