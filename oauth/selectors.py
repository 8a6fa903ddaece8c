"""Reads for OAuth: tokens with their grant, the grant holder's current role, dashboard lists."""

from __future__ import annotations

import hashlib

from django.db.models import QuerySet
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from workspaces.models import Membership, Workspace
from workspaces.scopes import scopes_for_role

from .models import Connection, WorkspaceApp


def token_checksum(token: str) -> str:
    """How DOT stores a token (COMPLIANT_BCP_RFC9700_TOKEN_STORAGE): SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def access_token_with_grant(token: str, *, application=None):  # noqa: ANN001, ANN201
    """The stored access token for a raw token, with its connection, workspace and app loaded in
    the same query; None when unknown (or revoked, since revoking deletes it)."""
    queryset = get_access_token_model().objects.select_related(
        "application", "gatehouse_link__connection__workspace__plan"
    )
    if application is not None:
        queryset = queryset.filter(application=application)
    return queryset.filter(token_checksum=token_checksum(token)).first()


def live_refresh_token_with_grant(token: str, *, application):  # noqa: ANN001, ANN201
    return (
        get_refresh_token_model()
        .objects.select_related("access_token", "gatehouse_link__connection__workspace")
        .filter(token_checksum=token_checksum(token), application=application, revoked__isnull=True)
        .first()
    )


def connection_of(token_row) -> Connection | None:  # noqa: ANN001
    """The live connection a DOT token or code belongs to, else None."""
    link = getattr(token_row, "gatehouse_link", None)  # reverse one-to-one: None when missing
    connection = link.connection if link is not None else None
    if connection is None or connection.revoked_at is not None:
        return None
    return connection


def current_role(connection: Connection) -> str | None:
    """The granting user's role in the connection's workspace now; None if no longer a member
    (or deactivated)."""
    return (
        Membership.objects.filter(
            user_id=connection.user_id,
            workspace_id=connection.workspace_id,
            user__is_active=True,
        )
        .values_list("role", flat=True)
        .first()
    )


def effective_scopes(granted: str | list[str], role: str) -> frozenset[str]:
    names = granted.split() if isinstance(granted, str) else granted
    return frozenset(names) & frozenset(scopes_for_role(role))


def connections_for_user(user) -> QuerySet[Connection]:  # noqa: ANN001
    return (
        Connection.objects.for_user(user)
        .active()
        .select_related("application", "workspace")
        .order_by("-granted_at")
    )


def workspace_apps(workspace: Workspace) -> QuerySet[WorkspaceApp]:
    return (
        WorkspaceApp.objects.for_workspace(workspace)
        .select_related("application", "created_by")
        .order_by("-created_at")
    )


def workspace_app(workspace: Workspace, client_id: str) -> WorkspaceApp:
    """The workspace's app with `client_id`; DoesNotExist for any other workspace's app."""
    return workspace_apps(workspace).get(application__client_id=client_id)
