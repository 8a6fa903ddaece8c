"""The security suite reuses the API's key fixtures and the OAuth flow's helpers."""

from tests.api.conftest import api, client_api, make_key, token  # noqa: F401
from tests.oauth.conftest import (  # noqa: F401
    authorize,
    exchange,
    make_app,
    oauth_app,
    tokens_for,
)
