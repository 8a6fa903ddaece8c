"""The scope registry (SPEC §4).

Each app declares the scopes of the endpoints it owns in its `AppConfig.ready()` via `register()`;
the dashboard's scope checkboxes, the OAuth server and the OpenAPI document all read `all_scopes()`.
A scope also names the least workspace role that may use it, so an OAuth grant can be narrowed to
what the granting user's role allows.
"""

from dataclasses import dataclass

from .roles import Role, role_at_least


@dataclass(frozen=True, slots=True)
class Scope:
    name: str
    description: str
    min_role: str = Role.VIEWER
    read_only: bool = True
    oauth_only: bool = False


_REGISTRY: dict[str, Scope] = {}


def register(*scopes: Scope) -> None:
    for scope in scopes:
        existing = _REGISTRY.get(scope.name)
        if existing is not None and existing != scope:
            raise ValueError(f"Scope {scope.name!r} is registered twice with different meanings.")
        _REGISTRY[scope.name] = scope


def all_scopes() -> list[Scope]:
    return sorted(_REGISTRY.values(), key=lambda s: s.name)


def get_scope(name: str) -> Scope | None:
    return _REGISTRY.get(name)


def api_key_scopes() -> list[Scope]:
    """Scopes an API key may hold (`offline_access` and other OAuth-only scopes excluded)."""
    return [s for s in all_scopes() if not s.oauth_only]


def default_key_scope_names() -> list[str]:
    return [s.name for s in api_key_scopes() if s.read_only]


def scopes_for_role(role: str | None) -> set[str]:
    """Every scope a member with `role` may exercise."""
    return {s.name for s in all_scopes() if role_at_least(role, s.min_role)}
