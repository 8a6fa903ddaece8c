"""DOT's scopes backend (OAUTH2_PROVIDER["SCOPES_BACKEND_CLASS"]) over the scope registry.

Metadata (`scopes_supported`), `validate_scopes` and the consent screen all read
`workspaces.scopes.all_scopes()`, so a scope an app registers is an OAuth scope at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oauth2_provider.scopes import BaseScopes

from workspaces.scopes import all_scopes

if TYPE_CHECKING:
    from oauth2_provider.models import Application
    from oauthlib.common import Request as OAuthlibRequest

OFFLINE_ACCESS = "offline_access"


def default_scope_names() -> list[str]:
    """What an authorization request without `scope` asks for: every read scope."""
    return [s.name for s in all_scopes() if s.read_only and not s.oauth_only]


class RegistryScopes(BaseScopes):
    def get_all_scopes(self) -> dict[str, str]:
        return {s.name: s.description for s in all_scopes()}

    def get_available_scopes(
        self, application: Application | None = None, request: OAuthlibRequest | None = None,
        *args: Any, **kwargs: Any,
    ) -> list[str]:
        return [s.name for s in all_scopes()]

    def get_default_scopes(
        self, application: Application | None = None, request: OAuthlibRequest | None = None,
        *args: Any, **kwargs: Any,
    ) -> list[str]:
        return default_scope_names()
