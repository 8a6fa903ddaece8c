"""The gateway tests reuse the OAuth flow's helpers (leaked OAuth tokens end their grant); the key
fixtures are tests/conftest.py's."""

from tests.oauth.conftest import authorize, exchange, make_app, oauth_app, tokens_for  # noqa: F401
