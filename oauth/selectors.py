"""Reads for OAuth: tokens with their grant, the grant holder's current role, dashboard lists."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet
from django.urls import reverse
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_refresh_token_model,
)

from passports.models import Collection
from workspaces.models import AppAccessPolicy, Membership, Plan, Workspace
from workspaces.roles import Action, role_can
from workspaces.scopes import scopes_for_role

from .models import AccessTokenLink, Connection, WorkspaceApp

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model
    from oauth2_provider.models import AccessToken, Application, RefreshToken


def token_checksum(token: str) -> str:
    """How DOT stores a token (COMPLIANT_BCP_RFC9700_TOKEN_STORAGE): SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def access_token_with_grant(
    token: str, *, application: Application | None = None
) -> AccessToken | None:
    """The stored access token for a raw token, with its connection, workspace and app loaded in
    the same query; None when unknown (or revoked, since revoking deletes it)."""
    queryset = get_access_token_model().objects.select_related(
        "application", "gatehouse_link__connection__workspace__plan"
    )
    if application is not None:
        queryset = queryset.filter(application=application)
    return queryset.filter(token_checksum=token_checksum(token)).first()


@dataclass(frozen=True, slots=True)
class GatewayGrant:
    """What the gateway needs to know about a presented access token, read in one statement:
    the token with its app; its connection with workspace and plan when the connection is live
    (else None); the granting user's current role there (None: no longer an active member)."""

    access_token: object
    connection: Connection | None
    role: str | None


_grant_statements: WeakKeyDictionary = WeakKeyDictionary()


@cache
def _grant_models() -> tuple:
    """The models of `gateway_grant`'s row, in column order (DOT's are swappable)."""
    return (get_access_token_model(), get_application_model(), Connection, Workspace, Plan)


def _grant_statement(conn: BaseDatabaseWrapper) -> tuple[str, list]:
    """The statement and each column's converters (those the ORM would apply), once per
    connection. Identifiers come from the models' metadata, quoted; the checksum is a parameter."""
    cached = _grant_statements.get(conn)
    if cached is not None:
        return cached
    qn = conn.ops.quote_name
    token, app, connection, workspace, plan = _grant_models()
    aliases = ("t", "a", "c", "w", "p")
    columns, converters = [], []
    for model, alias in zip(_grant_models(), aliases, strict=True):
        for field in model._meta.concrete_fields:
            columns.append(f"{alias}.{qn(field.column)}")
            col = field.get_col(model._meta.db_table)
            converters.append((conn.ops.get_db_converters(col) + col.get_db_converters(conn), col))
    table = {model: qn(model._meta.db_table) for model in (*_grant_models(), AccessTokenLink,
                                                            Membership, get_user_model())}
    user = get_user_model()
    sql = (
        f"SELECT {', '.join(columns)}, m.{qn('role')} "  # noqa: S608
        f"FROM {table[token]} t "
        f"JOIN {table[app]} a ON a.{qn('id')} = t.{qn('application_id')} "
        f"LEFT JOIN {table[AccessTokenLink]} l ON l.{qn('access_token_id')} = t.{qn('id')} "
        f"LEFT JOIN {table[connection]} c ON c.{qn('id')} = l.{qn('connection_id')} "
        f"AND c.{qn('revoked_at')} IS NULL "
        f"LEFT JOIN {table[workspace]} w ON w.{qn('id')} = c.{qn('workspace_id')} "
        f"LEFT JOIN {table[plan]} p ON p.{qn('id')} = w.{qn('plan_id')} "
        f"LEFT JOIN {table[Membership]} m ON m.{qn('user_id')} = c.{qn('user_id')} "
        f"AND m.{qn('workspace_id')} = c.{qn('workspace_id')} "
        f"AND EXISTS (SELECT 1 FROM {table[user]} u WHERE u.{qn(user._meta.pk.column)} = "
        f"c.{qn('user_id')} AND u.{qn('is_active')}) "
        f"WHERE t.{qn('token_checksum')} = %s"
    )
    cached = _grant_statements[conn] = (sql, converters)
    return cached


def gateway_grant(checksum: str) -> GatewayGrant | None:
    """`access_token_with_grant` + `connection_of` + `current_role` in one raw SQL statement, by
    the token's `token_checksum`, for the gateway's verifier (the hot path of every OAuth
    request): None for an unknown (or revoked, hence deleted) token or one without an app.

    Like `apikeys.selectors.apikey_by_digest`: the ORM's query building for the five-table join
    and the second query for the role cost more than the database's work, so the statement is
    built once per connection and rows become model instances through the ORM's converters."""
    conn = connections[DEFAULT_DB_ALIAS]
    sql, converters = _grant_statement(conn)
    with conn.cursor() as cursor:
        cursor.execute(sql, [checksum])
        row = cursor.fetchone()
    if row is None:
        return None
    values, role = list(row[:-1]), row[-1]
    for index, (convs, col) in enumerate(converters):
        for convert in convs:
            values[index] = convert(values[index], col, conn)
    instances, start = [], 0
    for model in _grant_models():
        end = start + len(model._meta.concrete_fields)
        chunk = values[start:end]
        instances.append(None if chunk[0] is None else model.from_db(conn.alias, None, chunk))
        start = end
    access_token, application, connection, workspace, plan = instances
    type(access_token).application.field.set_cached_value(access_token, application)
    if connection is None:
        return GatewayGrant(access_token, None, None)
    Workspace.plan.field.set_cached_value(workspace, plan)
    Connection.workspace.field.set_cached_value(connection, workspace)
    return GatewayGrant(access_token, connection, role)


def live_refresh_token_with_grant(
    token: str, *, application: Application
) -> RefreshToken | None:
    return (
        get_refresh_token_model()
        .objects.select_related("access_token", "gatehouse_link__connection__workspace")
        .filter(token_checksum=token_checksum(token), application=application, revoked__isnull=True)
        .first()
    )


def connection_of(token_row: Model) -> Connection | None:
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


def connections_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Connection]:
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


class Registration:
    """How an OAuth app came to exist, as the dashboard's Connected apps pages name it."""

    WORKSPACE = "workspace"  # registered from a workspace's dashboard (or by staff in admin)
    DYNAMIC = "dynamic"  # RFC 7591 dynamic client registration, by anyone
    METADATA_DOCUMENT = "metadata_document"  # a Client ID Metadata Document URL, by anyone

    LABELS = {
        WORKSPACE: "Registered by a workspace",
        DYNAMIC: "Registered itself (dynamic client registration)",
        METADATA_DOCUMENT: "Identified by a client metadata document",
    }


def registration_kind(application: Application) -> str:
    """`Registration.WORKSPACE`, `DYNAMIC` or `METADATA_DOCUMENT`, from DOT's own
    `registration_source` (manual / dcr / cimd): no query, no extra column."""
    source = application.registration_source
    if source == application.RegistrationSource.CIMD:
        return Registration.METADATA_DOCUMENT
    if source == application.RegistrationSource.DCR:
        return Registration.DYNAMIC
    return Registration.WORKSPACE


# --- App access policy (SPEC §12) ----------------------------------------------------------


class AppAccess:
    """What a member's consent for an app becomes in a workspace, under its app access policy."""

    APPROVED = "approved"  # the grant works at once
    PENDING = "pending"  # the grant waits for an admin's approval
    REFUSED = "refused"  # no grant: the workspace allows only its own apps


def host_on_trusted_domains(host: str, domains: list[str]) -> bool:
    """A host is on a trusted domain when it is that domain or a subdomain of it."""
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def app_on_trusted_domains(application: Application, domains: list[str]) -> bool:
    """Every redirect URI of the app is on one of the workspace's trusted domains (a single
    URI elsewhere could receive the codes, so one is not enough)."""
    uris = application.redirect_uris.split()
    if not domains or not uris:
        return False
    return all(host_on_trusted_domains(urlsplit(uri).hostname or "", domains) for uri in uris)


def registered_by_workspace(application: Application, workspace: Workspace) -> bool:
    return WorkspaceApp.objects.filter(application=application, workspace=workspace).exists()


def app_access_for(workspace: Workspace, application: Application) -> str:
    """`AppAccess.APPROVED`, `PENDING` or `REFUSED` for a new consent: apps the workspace
    registered itself are always approved; under "apps need admin approval" so are apps whose
    redirect URIs are all on a trusted domain; under "only apps registered by this workspace"
    every other app is refused."""
    policy = workspace.app_access_policy
    if policy == AppAccessPolicy.ANY or registered_by_workspace(application, workspace):
        return AppAccess.APPROVED
    if policy == AppAccessPolicy.REGISTERED:
        return AppAccess.REFUSED
    if app_on_trusted_domains(application, list(workspace.trusted_app_domains or [])):
        return AppAccess.APPROVED
    return AppAccess.PENDING


APP_ACCESS_REFUSED = (
    "{workspace} only allows apps registered by the workspace itself. Ask an admin to register "
    "this app under Settings → OAuth apps, or choose another workspace."
)


# --- Connected apps of a workspace (admins, SPEC §7 and §12) -----------------------------------


def workspace_connections(
    workspace: Workspace, *, status: str = "", app: str = "", member: str = ""
) -> QuerySet[Connection]:
    """The workspace's live grants, every member's, newest first, for its admins: filtered by
    `status` ("pending" or "approved"), app client id and member email (exact, case-insensitive).
    """
    queryset = (
        Connection.objects.for_workspace(workspace)
        .active()
        .select_related("application", "user", "decided_by")
        .order_by("-granted_at", "-pk")
    )
    if status in (Connection.Approval.PENDING, Connection.Approval.APPROVED):
        queryset = queryset.filter(approval=status)
    if app:
        queryset = queryset.filter(application__client_id=app)
    if member:
        queryset = queryset.filter(user__email__iexact=member)
    return queryset


def workspace_connection(workspace: Workspace, connection_id: str) -> Connection:
    """One of the workspace's grants (live or ended) by public id; DoesNotExist for any other
    workspace's."""
    return (
        Connection.objects.for_workspace(workspace)
        .select_related("application", "user", "workspace")
        .get(public_id=connection_id)
    )


def pending_connection_count(workspace: Workspace) -> int:
    return Connection.objects.for_workspace(workspace).pending().count()


def pending_approval_notices(*, membership: Membership) -> list[dict[str, str]]:
    """The Overview's notice for admins and owners: how many grants await their decision."""
    if not role_can(membership.role, Action.MANAGE_OAUTH_APPS):
        return []
    count = pending_connection_count(membership.workspace)
    if not count:
        return []
    url = reverse("oauth:workspace_connections", kwargs={"slug": membership.workspace.slug})
    return [{"text": f"{count} app{'s' if count != 1 else ''} awaiting your approval",
             "url": f"{url}?status=pending"}]


def collection_names(connections: list[Connection]) -> dict[int, str]:
    """Row id → name of every collection these grants are restricted to, in one query."""
    wanted = {pk for c in connections for pk in (c.collections or ())}
    if not wanted:
        return {}
    return dict(Collection.objects.filter(pk__in=wanted).values_list("pk", "name"))
