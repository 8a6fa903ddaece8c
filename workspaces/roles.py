"""Roles and what each may do (SPEC §2). The one permission helper every view and selector uses."""

from enum import StrEnum

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"


_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Action(StrEnum):
    VIEW_DASHBOARD = "view_dashboard"
    WRITE_RESOURCES = "write_resources"
    MANAGE_KEYS = "manage_keys"
    MANAGE_OAUTH_APPS = "manage_oauth_apps"
    READ_AUDIT_LOG = "read_audit_log"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_PLAN = "manage_plan"
    MANAGE_POLICIES = "manage_policies"


# The least role that may perform each action.
_MIN_ROLE: dict[Action, Role] = {
    Action.VIEW_DASHBOARD: Role.VIEWER,
    Action.WRITE_RESOURCES: Role.EDITOR,
    Action.MANAGE_KEYS: Role.ADMIN,
    Action.MANAGE_OAUTH_APPS: Role.ADMIN,
    Action.READ_AUDIT_LOG: Role.ADMIN,
    Action.MANAGE_MEMBERS: Role.OWNER,
    Action.MANAGE_PLAN: Role.OWNER,
    Action.MANAGE_POLICIES: Role.OWNER,
}


def role_at_least(role: str | None, minimum: str) -> bool:
    if role is None:
        return False
    return _RANK[Role(role)] >= _RANK[Role(minimum)]


def role_can(role: str | None, action: Action) -> bool:
    """True when a member with `role` may perform `action`; None (not a member) may do nothing."""
    return role_at_least(role, _MIN_ROLE[action])


def role_allowed_actions(role: str | None) -> set[Action]:
    return {action for action in Action if role_can(role, action)}
