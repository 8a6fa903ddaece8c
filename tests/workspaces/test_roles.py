import pytest

from workspaces.roles import Action, role_allowed_actions, role_can
from workspaces.scopes import scopes_for_role

EXPECTED = {
    "viewer": {Action.VIEW_DASHBOARD},
    "editor": {Action.VIEW_DASHBOARD, Action.WRITE_RESOURCES},
    "admin": {
        Action.VIEW_DASHBOARD, Action.WRITE_RESOURCES, Action.MANAGE_KEYS,
        Action.MANAGE_OAUTH_APPS, Action.READ_AUDIT_LOG,
    },
    "owner": set(Action),
}


@pytest.mark.parametrize("role", EXPECTED)
def test_role_allowed_actions_match_spec(role) -> None:
    assert role_allowed_actions(role) == EXPECTED[role]


def test_non_member_can_do_nothing() -> None:
    assert not any(role_can(None, action) for action in Action)


def test_scopes_for_role() -> None:
    assert "passports:write" not in scopes_for_role("viewer")
    assert "passports:read" in scopes_for_role("viewer")
    assert "passports:write" in scopes_for_role("editor")
    assert "audit:read" not in scopes_for_role("editor")
    assert "audit:read" in scopes_for_role("admin")
