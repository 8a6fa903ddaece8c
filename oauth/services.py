"""Writes for OAuth apps and grants. Each changes access atomically and records its audit event in
the same transaction, whether called from the dashboard, the OAuth endpoints, Django admin or a
management command."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import (
    clear_expired,
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
)

from audit.services import audit_record
from core.context import Actor, ActorType, RequestContext
from workspaces.caps import budget_change
from workspaces.models import Membership, Workspace

from .codesweep import expired_codes_delete
from .models import Connection, UsedAuthorizationCode, WorkspaceApp
from .redirects import validate_redirect_uris
from .selectors import APP_ACCESS_REFUSED, AppAccess, app_access_for
from .tokencache import tokencache_invalidate

if TYPE_CHECKING:
    from datetime import datetime

    from django.contrib.auth.base_user import AbstractBaseUser

    from passports.models import Collection

Application = get_application_model()

MAX_APP_NAME_LENGTH = 100
# A dynamically registered client nobody has connected within this long is pruned.
UNUSED_DYNAMIC_CLIENT_AGE = timedelta(days=7)


def app_actor(application: Application) -> Actor:  # type: ignore[valid-type]
    return Actor(ActorType.OAUTH_APP, application.client_id, application.name or "OAuth app")


def app_label(application: Application) -> str:  # type: ignore[valid-type]
    return application.name or application.client_id


def _app_workspace(application: Application) -> Workspace | None:  # type: ignore[valid-type]
    try:
        return application.workspace_app.workspace
    except WorkspaceApp.DoesNotExist:
        return None


def _new_application(
    *,
    name: str,
    redirect_uris: list[str],
    confidential: bool,
    registration_source: str,
    user: AbstractBaseUser | None = None,
) -> tuple[Application, str]:  # type: ignore[valid-type]
    """An unsaved, validated authorization-code app and its raw client secret."""
    name = (name or "").strip()
    if len(name) > MAX_APP_NAME_LENGTH:
        raise ValidationError({"name": f"Use at most {MAX_APP_NAME_LENGTH} characters."})
    try:
        uris = validate_redirect_uris(redirect_uris)
    except ValidationError as exc:
        raise ValidationError({"redirect_uris": exc.messages}) from None
    raw_secret = generate_client_secret()
    application = Application(
        name=name,
        user=user,
        redirect_uris=" ".join(uris),
        client_type=Application.CLIENT_CONFIDENTIAL if confidential else Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        client_secret=raw_secret,
        hash_client_secret=True,
        skip_authorization=False,
        registration_source=registration_source,
    )
    application.full_clean()
    return application, raw_secret


def _audit_app(
    application: Application,  # type: ignore[valid-type]
    action: str,
    *,
    actor: Actor,
    workspace: Workspace | None,
    context: RequestContext,
    metadata: dict | None = None,
) -> None:
    audit_record(
        action=action, actor=actor, workspace=workspace, target_type="oauth_app",
        target_id=application.client_id, target_label=app_label(application), context=context,
        metadata=metadata,
    )


def _audit_app_created(
    application: Application,  # type: ignore[valid-type]
    *,
    actor: Actor,
    workspace: Workspace | None,
    registration: str,
    context: RequestContext,
) -> None:
    _audit_app(
        application, "oauth_app.created", actor=actor, workspace=workspace,
        context=context, metadata={
            "client_type": application.client_type,
            "redirect_uris": application.redirect_uris.split(),
            "registration": registration,
        },
    )


def oauth_app_create(
    *,
    workspace: Workspace,
    name: str,
    redirect_uris: list[str],
    confidential: bool,
    actor: Actor,
    context: RequestContext,
) -> tuple[Application, str | None]:  # type: ignore[valid-type]
    """Register an app from a workspace's dashboard. Returns the app and, for a confidential app,
    its client secret — the only time it exists in clear; only its hash is stored."""
    if not (name or "").strip():
        raise ValidationError({"name": "Give the app a name."})
    application, raw_secret = _new_application(
        name=name,
        redirect_uris=redirect_uris,
        confidential=confidential,
        registration_source=Application.RegistrationSource.MANUAL,
        user=actor.user,
    )
    with transaction.atomic():
        application.save()
        WorkspaceApp.objects.create(
            application=application, workspace=workspace, created_by=actor.user
        )
        _audit_app_created(
            application, actor=actor, workspace=workspace,
            registration="dashboard", context=context,
        )
    return application, (raw_secret if confidential else None)


def oauth_app_register_dynamic(
    *,
    name: str,
    redirect_uris: list[str],
    confidential: bool,
    context: RequestContext,
) -> tuple[Application, str | None]:  # type: ignore[valid-type]
    """RFC 7591 registration: an authorization-code client owned by no workspace, recorded in the
    global audit chain. Unused ones are removed by `oauth_prune`."""
    application, raw_secret = _new_application(
        name=name,
        redirect_uris=redirect_uris,
        confidential=confidential,
        registration_source=Application.RegistrationSource.DCR,
    )
    with transaction.atomic():
        application.save()
        _audit_app_created(
            application, actor=Actor.system("dynamic client registration"), workspace=None,
            registration="dynamic", context=context,
        )
    return application, (raw_secret if confidential else None)


def oauth_app_record_metadata_document(
    *, application: Application, context: RequestContext,  # type: ignore[valid-type]
) -> None:
    """A Client ID Metadata Document app that django-oauth-toolkit just stored on first sight
    of its URL (oauth.cimd): recorded as `oauth_app.created` on the global chain, as a dynamic
    registration is. DOT saved the row itself (its own transaction), so this only audits."""
    with transaction.atomic():
        _audit_app_created(
            application, actor=Actor.system("client metadata document"), workspace=None,
            registration="metadata_document", context=context,
        )


def oauth_app_rotate_secret(
    *,
    application: Application,  # type: ignore[valid-type]
    actor: Actor,
    context: RequestContext,
) -> str:
    """A new client secret, returned once; the old one stops working at once. Tokens already
    issued keep working (revoke them from Connected apps or by deleting the app)."""
    if application.client_type != Application.CLIENT_CONFIDENTIAL:
        raise ValidationError("A public app has no client secret to rotate.")
    raw_secret = generate_client_secret()
    with transaction.atomic():
        application = Application.objects.select_for_update().get(pk=application.pk)
        application.client_secret = raw_secret
        application.hash_client_secret = True
        application.save(update_fields=["client_secret", "hash_client_secret", "updated"])
        _audit_app(
            application, "oauth_app.secret_rotated", actor=actor,
            workspace=_app_workspace(application), context=context,
        )
    return raw_secret


def oauth_app_delete(
    *,
    application: Application,  # type: ignore[valid-type]
    actor: Actor,
    context: RequestContext,
) -> None:
    """Delete an app: every grant of it is revoked (and audited in its workspace), then the app
    and all its codes and tokens are deleted."""
    with transaction.atomic():
        workspace = _app_workspace(application)
        connections = list(
            Connection.objects.active()
            .filter(application=application)
            .select_related("workspace", "user", "application")
        )
        for connection in connections:
            connection_revoke(
                connection=connection, actor=actor, context=context, reason="app_deleted"
            )
        _audit_app(
            application, "oauth_app.deleted", actor=actor, workspace=workspace,
            context=context, metadata={"connections_revoked": len(connections)},
        )
        application.delete()


# What Django admin may change on an app (secrets and client ids never; the dashboard names it).
APP_EDITABLE_FIELDS = ("name", "redirect_uris", "allowed_origins")


def _shown(field: str, value: str) -> str | list[str]:
    # URIs and origins are stored space separated; the log lists them.
    return value if field == "name" else value.split()


def oauth_app_update(
    *,
    application: Application,  # type: ignore[valid-type]
    changes: dict[str, Any],
    actor: Actor,
    context: RequestContext,
) -> Application:  # type: ignore[valid-type]
    """Change an app's name, redirect URIs (validated as at registration) or allowed origins,
    recorded field by field as before → after (`oauth_app.updated`). Where its users may be
    sent is access: a new redirect URI is where the next authorization code goes."""
    unknown = set(changes) - set(APP_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"Not an editable app field: {', '.join(sorted(unknown))}.")
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if len(name) > MAX_APP_NAME_LENGTH:
            raise ValidationError({"name": f"Use at most {MAX_APP_NAME_LENGTH} characters."})
        changes = {**changes, "name": name}
    if "redirect_uris" in changes:
        try:
            uris = validate_redirect_uris(str(changes["redirect_uris"] or "").split())
        except ValidationError as exc:
            raise ValidationError({"redirect_uris": exc.messages}) from None
        changes = {**changes, "redirect_uris": " ".join(uris)}
    with transaction.atomic():
        application = Application.objects.select_for_update().get(pk=application.pk)
        before = {field: getattr(application, field) for field in APP_EDITABLE_FIELDS}
        for field, value in changes.items():
            setattr(application, field, value)
        application.full_clean()
        changed = {
            field: {"from": _shown(field, before[field]),
                    "to": _shown(field, getattr(application, field))}
            for field in APP_EDITABLE_FIELDS
            if getattr(application, field) != before[field]
        }
        if not changed:
            return application
        application.save(update_fields=[*changed, "updated"])
        _audit_app(
            application, "oauth_app.updated", actor=actor, workspace=_app_workspace(application),
            context=context, metadata={"changed": changed},
        )
    return application


class AppNotAllowed(ValidationError):
    """The workspace's app access policy does not let its members connect this app."""


def _tokens_invalidate(connection: Connection) -> None:
    """Every process reads the grant's live access tokens from the database on their next
    request (oauth.tokencache): for a change of the grant itself, not of its tokens."""
    for checksum in get_access_token_model().objects.filter(
        gatehouse_link__connection=connection
    ).values_list("token_checksum", flat=True):
        tokencache_invalidate(checksum)


def connection_grant(
    *,
    user: AbstractBaseUser,
    application: Application,  # type: ignore[valid-type]
    workspace: Workspace,
    scopes: list[str],
    context: RequestContext,
    collections: list[Collection] | None = None,
) -> Connection:
    """Record the user's consent (SPEC §7): the app may act in `workspace` with `scopes`, which
    the consent view has already narrowed to the user's role, on every passport or only on
    `collections` of that workspace (SPEC §11). A second consent for the same app and workspace
    widens the same connection's scopes, since tokens from both remain valid; its reach becomes
    the one just chosen.

    The workspace's app access policy (SPEC §12, `selectors.app_access_for`) decides the grant's
    state: approved, or pending an admin's approval (its tokens are refused until then); under
    "only apps registered by this workspace" another app raises `AppNotAllowed`. A grant that
    was approved stays approved when consented again."""
    access = app_access_for(workspace, application)
    if access == AppAccess.REFUSED:
        raise AppNotAllowed(APP_ACCESS_REFUSED.format(workspace=workspace.name))
    if collections is not None and any(c.workspace_id != workspace.pk for c in collections):
        raise ValidationError({"collections": "Choose collections of the chosen workspace."})
    reach = None if collections is None else sorted({c.pk for c in collections})
    now = timezone.now()
    with transaction.atomic():
        connection = (
            Connection.objects.select_for_update()
            .active()
            .filter(user=user, application=application, workspace=workspace)
            .first()
        )
        if connection is None:
            try:
                with transaction.atomic():
                    connection = Connection.objects.create(
                        user=user,
                        application=application,
                        workspace=workspace,
                        scope=" ".join(scopes),
                        created_at=now,
                        granted_at=now,
                        approval=(
                            Connection.Approval.PENDING if access == AppAccess.PENDING
                            else Connection.Approval.APPROVED
                        ),
                        collections=reach,
                    )
            except IntegrityError:  # a concurrent consent created it first
                connection = (
                    Connection.objects.select_for_update()
                    .active()
                    .get(user=user, application=application, workspace=workspace)
                )
        if connection.granted_at != now:
            merged = list(dict.fromkeys([*connection.scopes, *scopes]))
            connection.scope = " ".join(merged)
            connection.granted_at = now
            changed_reach = connection.collections != reach
            connection.collections = reach
            connection.save(update_fields=["scope", "granted_at", "collections"])
            if changed_reach:  # the grant's live tokens carry its collections when cached
                _tokens_invalidate(connection)
        audit_record(
            action="oauth.consent_granted",
            actor=Actor.for_user(user),
            workspace=workspace,
            target_type="oauth_app",
            target_id=application.client_id,
            target_label=app_label(application),
            context=context,
            metadata={
                "scopes": list(scopes),
                "connection": connection.public_id,
                "collections": (
                    None if collections is None else sorted(c.public_id for c in collections)
                ),
                "approval": connection.approval,
            },
        )
    return connection


def _decision_metadata(connection: Connection) -> dict[str, Any]:
    return {
        "connection": connection.public_id,
        "client_id": connection.application.client_id,
        "user_id": connection.user_id,
        "member": connection.user.get_username(),
    }


def _locked_pending(connection: Connection) -> Connection:
    """The grant, locked, if it still waits for a decision; else a ValidationError saying why
    nothing changes (it was revoked or decided meanwhile)."""
    connection = (
        Connection.objects.select_for_update(of=("self",))
        .select_related("application", "user", "workspace")
        .get(pk=connection.pk)
    )
    if connection.revoked_at is not None:
        raise ValidationError(
            "This request was revoked or withdrawn meanwhile; nothing changed."
        )
    if not connection.is_pending:
        raise ValidationError("This app was approved meanwhile; nothing changed.")
    return connection


def connection_approve(
    *, connection: Connection, actor: Actor, context: RequestContext
) -> Connection:
    """An admin approves a pending grant (SPEC §12): its tokens work from the next request on
    every process (the gateway reads the grant's state with the token, in the same query).
    Recorded as `oauth.connection_approved`. A grant revoked or decided meanwhile is refused
    with a ValidationError and nothing changes."""
    with transaction.atomic():
        connection = _locked_pending(connection)
        connection.approval = Connection.Approval.APPROVED
        connection.decided_at = timezone.now()
        connection.decided_by = actor.user
        connection.save(update_fields=["approval", "decided_at", "decided_by"])
        _audit_app(
            connection.application, "oauth.connection_approved", actor=actor,
            workspace=connection.workspace, context=context,
            metadata=_decision_metadata(connection),
        )
    return connection


def connection_deny(
    *, connection: Connection, actor: Actor, context: RequestContext
) -> Connection:
    """An admin denies a pending grant: it is revoked with every token issued under it
    (`connection_revoke`, recorded as `oauth.connection_denied`). The member may ask again."""
    with transaction.atomic():
        connection = _locked_pending(connection)
        connection.decided_at = timezone.now()
        connection.decided_by = actor.user
        connection.save(update_fields=["decided_at", "decided_by"])
        return connection_revoke(
            connection=connection, actor=actor, context=context, reason="denied",
            action="oauth.connection_denied", metadata={"member": connection.user.get_username()},
        )


def connection_revoke_by_admin(
    *, connection: Connection, actor: Actor, context: RequestContext
) -> Connection:
    """A workspace admin or owner revokes a member's grant from Settings → Connected apps:
    `connection_revoke`, recorded as `oauth.connection_revoked` naming whose grant it was. A grant
    revoked meanwhile is a ValidationError (nothing changes)."""
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        if locked.revoked_at is not None:
            raise ValidationError("This app was already revoked; nothing changed.")
        return connection_revoke(
            connection=connection, actor=actor, context=context, reason="revoked_by_admin",
            action="oauth.connection_revoked",
            metadata={"member": connection.user.get_username()},
        )


def _revoke_tokens(connection: Connection, *, now: datetime) -> None:
    """End every code and token of the connection. Refresh tokens are kept as revoked
    tombstones so that presenting one later is recognised (reuse detection needs them)."""
    RefreshToken = get_refresh_token_model()
    AccessToken = get_access_token_model()
    Grant = get_grant_model()
    RefreshToken.objects.filter(
        gatehouse_link__connection=connection, revoked__isnull=True
    ).update(revoked=now, updated=now)
    AccessToken.objects.filter(gatehouse_link__connection=connection).delete()
    Grant.objects.filter(gatehouse_link__connection=connection).delete()


def connection_revoke(
    *,
    connection: Connection,
    actor: Actor,
    context: RequestContext,
    reason: str = "revoked",
    action: str = "oauth.token_revoked",
    metadata: dict[str, Any] | None = None,
) -> Connection:
    """Revoke a grant and every token issued under it, on every process at once (each deleted
    token invalidates every process's cached copy before this returns: oauth.tokencache).
    `metadata` adds to the audit event's."""
    metadata = {
        **(metadata or {}),
        "connection": connection.public_id,
        "client_id": connection.application.client_id,
        "user_id": connection.user_id,
        "reason": reason,
    }
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection.pk)
        if connection.revoked_at is not None:
            return connection
        now = timezone.now()
        _revoke_tokens(connection, now=now)
        connection.revoked_at = now
        connection.save(update_fields=["revoked_at"])
        _audit_app(
            connection.application, action, actor=actor,
            workspace=connection.workspace, context=context,
            metadata=metadata,
        )
    return connection


def connection_revoke_for_reuse(
    *, connection: Connection, context: RequestContext
) -> Connection:
    """A rotated refresh token was presented again (RFC 9700 §4.14.2): either the app or an
    attacker holds a stolen copy, and which is unknowable, so the whole grant ends."""
    return connection_revoke(
        connection=connection,
        actor=app_actor(connection.application),
        context=context,
        reason="refresh_token_reused",
        action="oauth.refresh_token_reused",
    )


def connections_end_for_member(
    *, membership: Membership, actor: Actor, context: RequestContext
) -> int:
    """A member was removed from a workspace (`workspaces.hooks`): every grant they gave there
    ends, tokens and refresh tokens included, each audited (`oauth.token_revoked`, reason
    `member_removed`). Runs inside `membership_remove`'s transaction. Returns how many ended."""
    connections = list(
        Connection.objects.active()
        .filter(user_id=membership.user_id, workspace_id=membership.workspace_id)
        .select_related("application", "workspace")
    )
    for connection in connections:
        connection_revoke(
            connection=connection, actor=actor, context=context, reason="member_removed"
        )
    return len(connections)


def applications_disown(
    *, user: AbstractBaseUser, actor: Actor, context: RequestContext
) -> int:
    """A user account is about to be deleted (`workspaces.hooks`): the apps they registered stay,
    no longer naming them (DOT's `Application.user` cascades: the database would delete the apps
    and every grant with them). Nobody's access changes, so nothing is recorded; the workspace
    app's `created_by` is cleared by the database. Returns how many apps were detached."""
    return Application.objects.filter(user=user).update(user=None)


def connection_touch(*, connection: Connection, now: datetime | None = None) -> None:
    """Record use at most once a minute, so verifying a token does not cost a write each time."""
    now = now or timezone.now()
    if connection.last_used_at is not None and now - connection.last_used_at < timedelta(
        minutes=1
    ):
        return
    Connection.objects.filter(pk=connection.pk).update(last_used_at=now)
    connection.last_used_at = now


def oauth_prune(
    *, now: datetime | None = None, unused_after: timedelta = UNUSED_DYNAMIC_CLIENT_AGE,
) -> int:
    """Housekeeping for `manage.py prune`: delete dynamically registered clients that nobody has
    an active grant with and that are older than `unused_after`, then DOT's expired codes and
    tokens (`clear_expired`). Returns how many clients were deleted."""
    now = now or timezone.now()
    unused = list(
        Application.objects.filter(
            registration_source=Application.RegistrationSource.DCR,
            created__lt=now - unused_after,
        )
        .exclude(pk__in=Connection.objects.active().values("application_id"))
        .values_list("pk", flat=True)
    )
    if unused:
        Application.objects.filter(pk__in=unused).delete()
    clear_expired()
    expired_codes_delete(now=now)  # and used-code records and issued tokens past their retention
    return len(unused)


def authorization_code_replay(
    *, used: UsedAuthorizationCode, context: RequestContext
) -> int:
    """An exchanged authorization code was presented again (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3):
    the exchange is refused by the caller, and here every token issued from the code ends — its
    access token and the whole refresh-token family descending from it — recorded as
    `oauth.authorization_code_reused`. Other codes' tokens under the same grant are untouched.
    Returns how many live tokens were revoked."""
    AccessToken = get_access_token_model()
    RefreshToken = get_refresh_token_model()
    now = timezone.now()
    with transaction.atomic():
        access_ids = {used.access_token_id} - {None}
        live_refresh = 0
        if used.refresh_token_family is not None:
            family = RefreshToken.objects.filter(token_family=used.refresh_token_family)
            live_refresh = family.filter(revoked__isnull=True).count()
            access_ids |= set(
                family.exclude(access_token=None).values_list("access_token_id", flat=True)
            )
        revoked = live_refresh + AccessToken.objects.filter(pk__in=access_ids).count()
        AccessToken.objects.filter(pk__in=access_ids).delete()
        if used.refresh_token_family is not None:
            RefreshToken.revoke_family(used.refresh_token_family)
        UsedAuthorizationCode.objects.filter(pk=used.pk).update(replayed_at=now)
        connection = used.connection
        _audit_app(
            connection.application, "oauth.authorization_code_reused",
            actor=app_actor(connection.application),
            workspace=connection.workspace, context=context,
            metadata={
                "connection": connection.public_id,
                "client_id": connection.application.client_id,
                "user_id": connection.user_id,
                "first_used_at": used.used_at.isoformat(),
                "tokens_revoked": revoked,
            },
        )
    return revoked


def connection_set_budget(
    *,
    connection: Connection,
    daily_cap: int | None,
    credits: int | None,
    credits_refill: str = "",
    actor: Actor,
    context: RequestContext,
) -> Connection:
    """Set an OAuth grant's own budget (SPEC §3: grants carry the same caps as keys): a daily
    request cap and/or a credit balance with an optional refill. Changing the credits or their
    refill sets the balance anew. Audited as `oauth.grant_updated`. The grant's tokens are
    invalidated in every process's token cache (oauth.tokencache), so the new budget applies
    to the next request everywhere."""
    with transaction.atomic():
        connection = (
            Connection.objects.select_for_update()
            .select_related("application", "workspace").get(pk=connection.pk)
        )
        if connection.revoked_at is not None:
            raise ValidationError("This grant has been revoked; it cannot be changed.")
        changed = budget_change(
            connection, daily_cap=daily_cap, credits=credits, refill=credits_refill
        )
        if not changed:
            return connection
        connection.save(update_fields=[*changed, "credits_epoch"])
        _tokens_invalidate(connection)
        _audit_app(
            connection.application, "oauth.grant_updated", actor=actor,
            workspace=connection.workspace, context=context,
            metadata={
                "connection": connection.public_id, "user_id": connection.user_id,
                "changed": list(changed), **changed,
            },
        )
    return connection
