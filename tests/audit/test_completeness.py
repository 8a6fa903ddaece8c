"""Completeness: every service that changes access records its event — action, actor, target, IP
and user agent — in its own transaction, whichever door (dashboard, API, admin, command) calls it.

`test_every_access_service_has_a_case` walks the service modules, so a new service without a case
here fails the suite: add its case to CASES (OAuth's are in their own section).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from oauth2_provider.models import Application

from apikeys import services as apikey_services
from apikeys.models import KeyNetwork
from audit.actions import ACTIONS
from audit.models import AuditEvent
from core.context import Actor, ActorType, RequestContext
from notifications import services as notification_services
from oauth import services as oauth_services
from oauth.models import UsedAuthorizationCode
from tests.audit.helpers import CONTEXT
from tests.factories import UserFactory, by, plan_named
from workspaces import services as workspace_services
from workspaces.models import Membership
from workspaces.scopes import default_key_scope_names

pytestmark = pytest.mark.django_db

SERVICE_MODULES = ["workspaces.services", "apikeys.services", "oauth.services",
                   "notifications.services"]
# Public functions of those modules that change no one's access.
NOT_ACCESS_CHANGES = {
    "apikeys.services.normalize_allowed_ips",  # validation
    "apikeys.services.validate_key_settings",  # validation
    "apikeys.services.rate_limit_error",  # validation
    "oauth.services.app_actor",  # builds an Actor
    "oauth.services.app_label",  # formats a name
    "oauth.services.connection_touch",  # last-used bookkeeping
    # Called by user_delete (workspaces.hooks): the apps a deleted user registered stay, no
    # longer naming them; nobody's access changes (the deletion itself is user.deleted).
    "oauth.services.applications_disown",
    "workspaces.services.security_alerts_acknowledge",  # dismisses a banner
    "workspaces.services.last_owner_refusal",  # formats a message
    "workspaces.services.invitation_digest",  # hashes a token
    "workspaces.services.invitation_for_token",  # a read
    "workspaces.services.membership_touch",  # last-used bookkeeping
    # Housekeeping: deletes dynamically registered clients nobody holds a grant with, and
    # expired codes and tokens. (Not audited today; see docs/audit-log.md.)
    "oauth.services.oauth_prune",
    "apikeys.services.resolve_collections",  # validation
    "apikeys.services.collection_labels",  # formats ids
    "workspaces.services.trusted_domains_normalize",  # validation
    "apikeys.services.apikey_dismiss_new_network",  # dismisses a warning (like an alert banner)
    # Outbound notifications: an event and its deliveries (called inside an audited change or
    # by the sweep), a member's own email opt-outs, a test event, a resend. Nobody's access.
    "notifications.services.event_emit",
    "notifications.services.email_preferences_update",
    "notifications.services.webhook_test_send",
    "notifications.services.webhook_delivery_resend",
    "notifications.services.url_for_display",  # formats a URL
}


@dataclass
class Expected:
    action: str
    actor: Actor
    target_type: str
    target_id: str
    workspace: object


def _create_key(workspace, user):
    key, _token = apikey_services.apikey_create(
        workspace=workspace, name="CI deploy", scopes=default_key_scope_names(),
        environment="development", **by(user),
    )
    return key


def case_workspace_create(workspace, members) -> Expected:
    owner = UserFactory(email="founder@newco.test")
    created = workspace_services.workspace_create(
        slug="newco", name="NewCo", owner=owner, plan=plan_named("free"), context=CONTEXT,
        actor=Actor.for_user(owner),
    )
    return Expected("workspace.created", Actor.for_user(owner), "workspace", "newco", created)


def case_workspace_update(workspace, members) -> Expected:
    actor = Actor.for_user(members["owner"])
    workspace_services.workspace_update(
        workspace=workspace, changes={"name": "Acme Renamed"}, actor=actor, context=CONTEXT
    )
    workspace.refresh_from_db()
    assert workspace.name == "Acme Renamed"
    return Expected("workspace.updated", actor, "workspace", workspace.slug, workspace)


def case_workspace_policies_update(workspace, members) -> Expected:
    actor = Actor.for_user(members["owner"])
    workspace_services.workspace_policies_update(
        workspace=workspace, changes={"app_access_policy": "approval"}, actor=actor,
        context=CONTEXT,
    )
    workspace.refresh_from_db()
    assert workspace.app_access_policy == "approval"
    return Expected("policy.changed", actor, "workspace", workspace.slug, workspace)


def case_membership_add(workspace, members) -> Expected:
    newcomer = UserFactory(email="new@acme.test")
    workspace_services.membership_add(
        workspace=workspace, user=newcomer, role="viewer", actor=Actor.for_user(members["owner"]),
        context=CONTEXT,
    )
    return Expected("member.added", Actor.for_user(members["owner"]), "user", str(newcomer.pk),
                    workspace)


def case_membership_change_role(workspace, members) -> Expected:
    membership = Membership.objects.get(workspace=workspace, user=members["viewer"])
    workspace_services.membership_change_role(
        membership=membership, role="editor", actor=Actor.for_user(members["owner"]),
        context=CONTEXT,
    )
    return Expected("member.role_changed", Actor.for_user(members["owner"]), "user",
                    str(members["viewer"].pk), workspace)


def case_membership_remove(workspace, members) -> Expected:
    membership = Membership.objects.get(workspace=workspace, user=members["editor"])
    workspace_services.membership_remove(
        membership=membership, actor=Actor.for_user(members["owner"]), context=CONTEXT
    )
    return Expected("member.removed", Actor.for_user(members["owner"]), "user",
                    str(members["editor"].pk), workspace)


def case_plan_create(workspace, members) -> Expected:
    actor = Actor.for_user(members["owner"])
    workspace_services.plan_create(
        values={"code": "team", "name": "Team", "active_keys_limit": 20}, actor=actor,
        context=CONTEXT,
    )
    return Expected("plan.created", actor, "plan", "team", None)


def case_plan_update(workspace, members) -> Expected:
    actor = Actor.for_user(members["owner"])
    workspace_services.plan_update(
        plan=plan_named("free"), changes={"active_keys_limit": 500}, actor=actor,
        context=CONTEXT,
    )
    return Expected("plan.updated", actor, "plan", "free", None)


def case_plan_delete(workspace, members) -> Expected:
    actor = Actor.for_user(members["owner"])
    plan = workspace_services.plan_create(
        values={"code": "team", "name": "Team", "active_keys_limit": 20}, actor=actor,
        context=RequestContext(),
    )
    workspace_services.plan_delete(plan=plan, actor=actor, context=CONTEXT)
    return Expected("plan.deleted", actor, "plan", "team", None)


def case_workspace_change_plan(workspace, members) -> Expected:
    actor = Actor.for_user(members["owner"])
    workspace_services.workspace_change_plan(
        workspace=workspace, plan=plan_named("basic"), actor=actor, context=CONTEXT
    )
    return Expected("plan.changed", actor, "workspace", workspace.slug, workspace)


def case_user_delete(workspace, members) -> Expected:
    staff = UserFactory(email="ops@gatehouse.test", is_staff=True)
    editor = members["editor"]
    workspace_services.user_delete(user=editor, actor=Actor.for_user(staff), context=CONTEXT)
    # Its memberships go first, each member.removed on its workspace's chain (tests/workspaces).
    return Expected("user.deleted", Actor.for_user(staff), "user", str(editor.pk), None)


def case_user_change_access(workspace, members) -> Expected:
    staff = UserFactory(email="ops@gatehouse.test", is_staff=True)
    viewer = members["viewer"]
    workspace_services.user_change_access(
        user=viewer, changes={"is_staff": True}, actor=Actor.for_user(staff), context=CONTEXT
    )
    return Expected("user.staff_changed", Actor.for_user(staff), "user", str(viewer.pk), None)


def case_user_deactivate(workspace, members) -> Expected:
    staff = UserFactory(email="ops@gatehouse.test", is_staff=True)
    viewer = members["viewer"]
    workspace_services.user_change_access(
        user=viewer, changes={"is_active": False}, actor=Actor.for_user(staff), context=CONTEXT
    )
    return Expected("user.deactivated", Actor.for_user(staff), "user", str(viewer.pk), None)


def case_apikey_create(workspace, members) -> Expected:
    key, _token = apikey_services.apikey_create(
        workspace=workspace, name="CI deploy", scopes=default_key_scope_names(),
        environment="development", actor=Actor.for_user(members["admin"]), context=CONTEXT,
    )
    return Expected("key.created", Actor.for_user(members["admin"]), "api_key", key.public_id,
                    workspace)


def case_apikey_rotate(workspace, members) -> Expected:
    key = _create_key(workspace, members["admin"])
    apikey_services.apikey_rotate(
        key=key, overlap="1h", actor=Actor.for_user(members["admin"]), context=CONTEXT
    )
    return Expected("key.rotated", Actor.for_user(members["admin"]), "api_key", key.public_id,
                    workspace)


def case_apikey_pause(workspace, members) -> Expected:
    key = _create_key(workspace, members["admin"])
    apikey_services.apikey_pause(key=key, actor=Actor.for_user(members["owner"]), context=CONTEXT)
    return Expected("key.paused", Actor.for_user(members["owner"]), "api_key", key.public_id,
                    workspace)


def case_apikey_resume(workspace, members) -> Expected:
    key = _create_key(workspace, members["admin"])
    apikey_services.apikey_pause(key=key, **by(members["admin"]))
    apikey_services.apikey_resume(key=key, actor=Actor.for_user(members["admin"]), context=CONTEXT)
    return Expected("key.resumed", Actor.for_user(members["admin"]), "api_key", key.public_id,
                    workspace)


def case_apikey_revoke(workspace, members) -> Expected:
    # Revoked through the API by another key: the actor is that key, not a user.
    key = _create_key(workspace, members["admin"])
    caller = Actor(ActorType.API_KEY, "key_caller", "Ops automation")
    apikey_services.apikey_revoke(key=key, actor=caller, context=CONTEXT, reason="leaked")
    return Expected("key.revoked", caller, "api_key", key.public_id, workspace)


def case_apikey_set_rate_limit(workspace, members) -> Expected:
    key = _create_key(workspace, members["admin"])
    apikey_services.apikey_set_rate_limit(
        key=key, rate_limit_per_minute=60, actor=Actor.for_user(members["admin"]), context=CONTEXT
    )
    return Expected("key.rate_limit_changed", Actor.for_user(members["admin"]), "api_key",
                    key.public_id, workspace)


def case_apikey_set_budget(workspace, members) -> Expected:
    key = _create_key(workspace, members["admin"])
    apikey_services.apikey_set_budget(
        key=key, daily_cap=500, credits=10_000, credits_refill="monthly",
        actor=Actor.for_user(members["admin"]), context=CONTEXT,
    )
    return Expected("key.updated", Actor.for_user(members["admin"]), "api_key",
                    key.public_id, workspace)


def case_apikey_set_restriction(workspace, members) -> Expected:
    key = _create_key(workspace, members["admin"])
    apikey_services.apikey_set_restriction(
        key=key, collections=[], actor=Actor.for_user(members["admin"]), context=CONTEXT
    )
    return Expected("key.updated", Actor.for_user(members["admin"]), "api_key",
                    key.public_id, workspace)


def case_apikey_update(workspace, members) -> Expected:
    key = _create_key(workspace, members["admin"])
    apikey_services.apikey_update(
        key=key, changes={"name": "Renamed", "scopes": ["passports:read"]},
        actor=Actor.for_user(members["admin"]), context=CONTEXT,
    )
    return Expected("key.updated", Actor.for_user(members["admin"]), "api_key",
                    key.public_id, workspace)


def case_apikey_flag_new_network(workspace, members) -> Expected:
    key = _create_key(workspace, members["admin"])
    assert apikey_services.apikey_flag_new_network(
        key_id=key.pk, network="203.0.113.0/24", at=timezone.now(), context=CONTEXT
    )
    return Expected("key.new_network", Actor.system("usage monitor"), "api_key", key.public_id,
                    workspace)


def case_apikey_restrict_to_networks(workspace, members) -> Expected:
    key = _create_key(workspace, members["admin"])
    now = timezone.now()
    KeyNetwork.objects.create(api_key=key, network="203.0.113.0/24", request_count=3,
                              first_seen_at=now, last_seen_at=now)
    apikey_services.apikey_restrict_to_networks(
        key=key, actor=Actor.for_user(members["owner"]), context=CONTEXT
    )
    return Expected("key.updated", Actor.for_user(members["owner"]), "api_key", key.public_id,
                    workspace)


# --- OAuth (oauth/services.py) ------------------------------------------------------------------

REDIRECT = ["https://app.example.test/callback"]


def _app(workspace, user):
    application, _secret = oauth_services.oauth_app_create(
        workspace=workspace, name="Example app", redirect_uris=REDIRECT, confidential=True,
        **by(user),
    )
    return application


def case_oauth_app_create(workspace, members) -> Expected:
    application, _secret = oauth_services.oauth_app_create(
        workspace=workspace, name="Example app", redirect_uris=REDIRECT, confidential=True,
        actor=Actor.for_user(members["admin"]), context=CONTEXT,
    )
    return Expected("oauth_app.created", Actor.for_user(members["admin"]), "oauth_app",
                    application.client_id, workspace)


def case_oauth_app_register_dynamic(workspace, members) -> Expected:
    application, _secret = oauth_services.oauth_app_register_dynamic(
        name="MCP client", redirect_uris=["http://127.0.0.1:8765/callback"], confidential=False,
        context=CONTEXT,
    )
    # No workspace yet: recorded on the workspace-less chain.
    return Expected("oauth_app.created", Actor.system("dynamic client registration"),
                    "oauth_app", application.client_id, None)


def case_oauth_app_record_metadata_document(workspace, members) -> Expected:
    # django-oauth-toolkit stores the app itself on first sight of its metadata URL; the
    # service only records it, on the workspace-less chain like a dynamic registration.
    application = Application.objects.create(
        client_id="https://tool.example.test/oauth/client.json", name="Metadata tool",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://tool.example.test/callback", skip_authorization=False,
    )
    oauth_services.oauth_app_record_metadata_document(application=application, context=CONTEXT)
    return Expected("oauth_app.created", Actor.system("client metadata document"),
                    "oauth_app", application.client_id, None)


def case_oauth_app_rotate_secret(workspace, members) -> Expected:
    application = _app(workspace, members["admin"])
    oauth_services.oauth_app_rotate_secret(
        application=application, actor=Actor.for_user(members["owner"]), context=CONTEXT
    )
    return Expected("oauth_app.secret_rotated", Actor.for_user(members["owner"]), "oauth_app",
                    application.client_id, workspace)


def case_oauth_app_delete(workspace, members) -> Expected:
    application = _app(workspace, members["admin"])
    client_id = application.client_id
    actor = Actor.for_user(members["admin"])
    oauth_services.oauth_app_delete(application=application, actor=actor, context=CONTEXT)
    return Expected("oauth_app.deleted", actor, "oauth_app", client_id, workspace)


def case_oauth_app_update(workspace, members) -> Expected:
    application = _app(workspace, members["admin"])
    actor = Actor.for_user(members["owner"])
    oauth_services.oauth_app_update(
        application=application, changes={"redirect_uris": "https://app.example.test/v2"},
        actor=actor, context=CONTEXT,
    )
    return Expected("oauth_app.updated", actor, "oauth_app", application.client_id, workspace)


def case_connections_end_for_member(workspace, members) -> Expected:
    # Called by membership_remove (workspaces.hooks); the actor is whoever removed the member.
    application = _app(workspace, members["admin"])
    oauth_services.connection_grant(
        user=members["editor"], application=application, workspace=workspace,
        scopes=["passports:read"],
        context=RequestContext(),
    )
    actor = Actor.for_user(members["owner"])
    membership = Membership.objects.get(workspace=workspace, user=members["editor"])
    oauth_services.connections_end_for_member(membership=membership, actor=actor,
                                              context=CONTEXT)
    return Expected("oauth.token_revoked", actor, "oauth_app", application.client_id, workspace)


def case_connection_grant(workspace, members) -> Expected:
    application = _app(workspace, members["admin"])
    oauth_services.connection_grant(
        user=members["editor"], application=application, workspace=workspace,
        scopes=["passports:read"], context=CONTEXT,
    )
    return Expected("oauth.consent_granted", Actor.for_user(members["editor"]), "oauth_app",
                    application.client_id, workspace)


def case_connection_revoke(workspace, members) -> Expected:
    application = _app(workspace, members["admin"])
    connection = oauth_services.connection_grant(
        user=members["editor"], application=application, workspace=workspace,
        scopes=["passports:read"],
        context=RequestContext(),
    )
    actor = Actor.for_user(members["editor"])
    oauth_services.connection_revoke(connection=connection, actor=actor, context=CONTEXT)
    return Expected("oauth.token_revoked", actor, "oauth_app", application.client_id, workspace)


def case_connection_set_budget(workspace, members) -> Expected:
    application = _app(workspace, members["admin"])
    connection = oauth_services.connection_grant(
        user=members["editor"], application=application, workspace=workspace,
        scopes=["passports:read"], context=RequestContext(),
    )
    actor = Actor.for_user(members["admin"])
    oauth_services.connection_set_budget(
        connection=connection, daily_cap=100, credits=None, actor=actor, context=CONTEXT
    )
    return Expected("oauth.grant_updated", actor, "oauth_app", application.client_id, workspace)


def case_connection_revoke_for_reuse(workspace, members) -> Expected:
    # A rotated refresh token presented again: the grant ends, and the actor is the app.
    application = _app(workspace, members["admin"])
    connection = oauth_services.connection_grant(
        user=members["editor"], application=application, workspace=workspace,
        scopes=["passports:read"],
        context=RequestContext(),
    )
    oauth_services.connection_revoke_for_reuse(connection=connection, context=CONTEXT)
    return Expected("oauth.refresh_token_reused", oauth_services.app_actor(application),
                    "oauth_app", application.client_id, workspace)


def case_authorization_code_replay(workspace, members) -> Expected:
    # An exchanged code presented again: what it issued ends, and the actor is the app.
    application = _app(workspace, members["admin"])
    connection = oauth_services.connection_grant(
        user=members["editor"], application=application, workspace=workspace,
        scopes=["passports:read"],
        context=RequestContext(),
    )
    used = UsedAuthorizationCode.objects.create(
        code_digest="0" * 64, application=application, connection=connection
    )
    oauth_services.authorization_code_replay(used=used, context=CONTEXT)
    return Expected("oauth.authorization_code_reused", oauth_services.app_actor(application),
                    "oauth_app", application.client_id, workspace)


def _pending_grant(workspace, members):
    """A member's consent for a self-registered app where apps need admin approval."""
    workspace.app_access_policy = "approval"
    workspace.save(update_fields=["app_access_policy"])
    application, _secret = oauth_services.oauth_app_register_dynamic(
        name="Unvetted tool", redirect_uris=REDIRECT, confidential=False, context=RequestContext()
    )
    connection = oauth_services.connection_grant(
        user=members["editor"], application=application, workspace=workspace,
        scopes=["passports:read"], context=RequestContext(),
    )
    assert connection.is_pending
    return application, connection


def case_connection_approve(workspace, members) -> Expected:
    application, connection = _pending_grant(workspace, members)
    actor = Actor.for_user(members["admin"])
    oauth_services.connection_approve(connection=connection, actor=actor, context=CONTEXT)
    connection.refresh_from_db()
    assert connection.approval == "approved" and connection.decided_by == members["admin"]
    return Expected("oauth.connection_approved", actor, "oauth_app", application.client_id,
                    workspace)


def case_connection_deny(workspace, members) -> Expected:
    application, connection = _pending_grant(workspace, members)
    actor = Actor.for_user(members["owner"])
    oauth_services.connection_deny(connection=connection, actor=actor, context=CONTEXT)
    connection.refresh_from_db()
    assert connection.revoked_at is not None
    return Expected("oauth.connection_denied", actor, "oauth_app", application.client_id,
                    workspace)


def case_connection_revoke_by_admin(workspace, members) -> Expected:
    application = _app(workspace, members["admin"])
    connection = oauth_services.connection_grant(
        user=members["editor"], application=application, workspace=workspace,
        scopes=["passports:read"], context=RequestContext(),
    )
    actor = Actor.for_user(members["admin"])
    oauth_services.connection_revoke_by_admin(connection=connection, actor=actor,
                                              context=CONTEXT)
    return Expected("oauth.connection_revoked", actor, "oauth_app", application.client_id,
                    workspace)


def _invite(workspace, members, email="invitee@acme.test"):
    return workspace_services.invitation_create(
        workspace=workspace, email=email, role="editor", origin="https://gatehouse.test",
        actor=Actor.for_user(members["owner"]), context=RequestContext(),
    )


def case_invitation_create(workspace, members) -> Expected:
    actor = Actor.for_user(members["owner"])
    invitation, _token = workspace_services.invitation_create(
        workspace=workspace, email="invitee@acme.test", role="editor",
        origin="https://gatehouse.test", actor=actor, context=CONTEXT,
    )
    return Expected("member.invited", actor, "invitation", str(invitation.pk), workspace)


def case_invitation_resend(workspace, members) -> Expected:
    invitation, _token = _invite(workspace, members)
    actor = Actor.for_user(members["owner"])
    workspace_services.invitation_resend(
        invitation=invitation, origin="https://gatehouse.test", actor=actor, context=CONTEXT
    )
    return Expected("member.invitation_resent", actor, "invitation", str(invitation.pk),
                    workspace)


def case_invitation_cancel(workspace, members) -> Expected:
    invitation, _token = _invite(workspace, members)
    actor = Actor.for_user(members["owner"])
    workspace_services.invitation_cancel(invitation=invitation, actor=actor, context=CONTEXT)
    return Expected("member.invitation_cancelled", actor, "invitation", str(invitation.pk),
                    workspace)


def case_invitation_accept(workspace, members) -> Expected:
    invitee = UserFactory(email="invitee@acme.test")
    invitation, token = _invite(workspace, members)
    workspace_services.invitation_accept(token=token, user=invitee, context=CONTEXT)
    assert Membership.objects.get(workspace=workspace, user=invitee).role == "editor"
    return Expected("member.invitation_accepted", Actor.for_user(invitee), "invitation",
                    str(invitation.pk), workspace)


def case_invitation_accept_as_new_user(workspace, members) -> Expected:
    invitation, token = _invite(workspace, members)
    user, _membership = workspace_services.invitation_accept_as_new_user(
        token=token, password="a-long-new-pass-1", context=CONTEXT
    )
    return Expected("member.added", Actor.for_user(user), "user", str(user.pk), workspace)


def case_workspace_set_overage(workspace, members) -> Expected:
    workspace.plan = plan_named("basic")
    workspace.save()
    actor = Actor.for_user(members["owner"])
    workspace_services.workspace_set_overage(
        workspace=workspace, enabled=True, actor=actor, context=CONTEXT
    )
    workspace.refresh_from_db()
    assert workspace.overage_enabled
    return Expected("plan.overage_enabled", actor, "workspace", workspace.slug, workspace)


def case_workspace_set_overage_off(workspace, members) -> Expected:
    workspace.plan = plan_named("basic")
    workspace.overage_enabled = True
    workspace.save()
    actor = Actor.for_user(members["owner"])
    workspace_services.workspace_set_overage(
        workspace=workspace, enabled=False, actor=actor, context=CONTEXT
    )
    return Expected("plan.overage_disabled", actor, "workspace", workspace.slug, workspace)
# --- notifications (webhook endpoints: who receives the workspace's events) --------------------

WEBHOOK_URL = "https://127.0.0.1/hooks"  # loopback is allowed in development (the test setting)


def _endpoint(workspace, members):
    return notification_services.webhook_endpoint_create(workspace=workspace, url=WEBHOOK_URL,
                                   event_types=["key.created"], actor=Actor.for_user(
                                       members["admin"]), context=CONTEXT)[0]


def case_webhook_endpoint_create(workspace, members) -> Expected:
    endpoint = _endpoint(workspace, members)
    return Expected("webhook.created", Actor.for_user(members["admin"]), "webhook",
                    endpoint.public_id, workspace)


def case_webhook_endpoint_update(workspace, members) -> Expected:
    endpoint = _endpoint(workspace, members)
    actor = Actor.for_user(members["owner"])
    notification_services.webhook_endpoint_update(
        endpoint=endpoint, url=WEBHOOK_URL, event_types=["key.revoked"], description="",
        enabled=True, actor=actor, context=CONTEXT,
    )
    return Expected("webhook.updated", actor, "webhook", endpoint.public_id, workspace)


def case_webhook_secret_rotate(workspace, members) -> Expected:
    endpoint = _endpoint(workspace, members)
    actor = Actor.for_user(members["owner"])
    notification_services.webhook_secret_rotate(endpoint=endpoint, actor=actor, context=CONTEXT)
    return Expected("webhook.secret_rotated", actor, "webhook", endpoint.public_id, workspace)


def case_webhook_endpoint_delete(workspace, members) -> Expected:
    endpoint = _endpoint(workspace, members)
    actor = Actor.for_user(members["owner"])
    notification_services.webhook_endpoint_delete(endpoint=endpoint, actor=actor, context=CONTEXT)
    return Expected("webhook.deleted", actor, "webhook", endpoint.public_id, workspace)


def case_webhook_endpoint_disable(workspace, members) -> Expected:
    endpoint = _endpoint(workspace, members)
    actor = Actor.system("webhook delivery")
    notification_services.webhook_endpoint_disable(endpoint=endpoint, reason="failing",
                                                   actor=actor, context=CONTEXT)
    return Expected("webhook.disabled", actor, "webhook", endpoint.public_id, workspace)


# More cases for a service that records more than one action.
EXTRA_CASES: dict[str, Callable[..., Expected]] = {
    "workspaces.services.workspace_set_overage (off)": case_workspace_set_overage_off,
    "workspaces.services.user_change_access (deactivate)": case_user_deactivate,
}

CASES: dict[str, Callable[..., Expected]] = {
    "workspaces.services.workspace_create": case_workspace_create,
    "workspaces.services.membership_add": case_membership_add,
    "workspaces.services.membership_change_role": case_membership_change_role,
    "workspaces.services.membership_remove": case_membership_remove,
    "workspaces.services.workspace_update": case_workspace_update,
    "workspaces.services.workspace_policies_update": case_workspace_policies_update,
    "workspaces.services.workspace_change_plan": case_workspace_change_plan,
    "workspaces.services.plan_create": case_plan_create,
    "workspaces.services.plan_update": case_plan_update,
    "workspaces.services.plan_delete": case_plan_delete,
    "workspaces.services.user_delete": case_user_delete,
    "workspaces.services.user_change_access": case_user_change_access,
    "workspaces.services.invitation_create": case_invitation_create,
    "workspaces.services.invitation_resend": case_invitation_resend,
    "workspaces.services.invitation_cancel": case_invitation_cancel,
    "workspaces.services.invitation_accept": case_invitation_accept,
    "workspaces.services.invitation_accept_as_new_user": case_invitation_accept_as_new_user,
    "workspaces.services.workspace_set_overage": case_workspace_set_overage,
    "apikeys.services.apikey_create": case_apikey_create,
    "apikeys.services.apikey_rotate": case_apikey_rotate,
    "apikeys.services.apikey_pause": case_apikey_pause,
    "apikeys.services.apikey_resume": case_apikey_resume,
    "apikeys.services.apikey_revoke": case_apikey_revoke,
    "apikeys.services.apikey_set_rate_limit": case_apikey_set_rate_limit,
    "apikeys.services.apikey_set_restriction": case_apikey_set_restriction,
    "apikeys.services.apikey_set_budget": case_apikey_set_budget,
    "apikeys.services.apikey_update": case_apikey_update,
    "apikeys.services.apikey_flag_new_network": case_apikey_flag_new_network,
    "apikeys.services.apikey_restrict_to_networks": case_apikey_restrict_to_networks,
    "oauth.services.oauth_app_create": case_oauth_app_create,
    "oauth.services.oauth_app_register_dynamic": case_oauth_app_register_dynamic,
    "oauth.services.oauth_app_record_metadata_document": case_oauth_app_record_metadata_document,
    "oauth.services.oauth_app_rotate_secret": case_oauth_app_rotate_secret,
    "oauth.services.oauth_app_delete": case_oauth_app_delete,
    "oauth.services.oauth_app_update": case_oauth_app_update,
    "oauth.services.connections_end_for_member": case_connections_end_for_member,
    "oauth.services.connection_grant": case_connection_grant,
    "oauth.services.connection_revoke": case_connection_revoke,
    "oauth.services.connection_revoke_for_reuse": case_connection_revoke_for_reuse,
    "oauth.services.connection_set_budget": case_connection_set_budget,
    "oauth.services.authorization_code_replay": case_authorization_code_replay,
    "oauth.services.connection_approve": case_connection_approve,
    "oauth.services.connection_deny": case_connection_deny,
    "oauth.services.connection_revoke_by_admin": case_connection_revoke_by_admin,
    "notifications.services.webhook_endpoint_create": case_webhook_endpoint_create,
    "notifications.services.webhook_endpoint_update": case_webhook_endpoint_update,
    "notifications.services.webhook_secret_rotate": case_webhook_secret_rotate,
    "notifications.services.webhook_endpoint_delete": case_webhook_endpoint_delete,
    "notifications.services.webhook_endpoint_disable": case_webhook_endpoint_disable,
}


def _public_functions(module_name: str) -> set[str]:
    module = importlib.import_module(module_name)
    return {
        f"{module_name}.{name}"
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module_name and not name.startswith("_")
    }


def test_every_access_service_has_a_case() -> None:
    services = set().union(*(_public_functions(m) for m in SERVICE_MODULES))
    assert services - NOT_ACCESS_CHANGES == set(CASES)


@pytest.mark.parametrize("service", sorted({**CASES, **EXTRA_CASES}))
def test_service_records_its_event(service, workspace, members) -> None:
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    expected = {**CASES, **EXTRA_CASES}[service](workspace, members)
    event = AuditEvent.objects.filter(id__gt=before, action=expected.action).get()
    assert event.workspace_id == (expected.workspace.pk if expected.workspace else None)
    assert (event.actor_type, event.actor_id, event.actor_label) == (
        expected.actor.type, expected.actor.id, expected.actor.label
    )
    assert (event.target_type, event.target_id) == (expected.target_type, expected.target_id)
    assert event.target_label
    assert event.ip == CONTEXT.ip
    assert event.user_agent == CONTEXT.user_agent
    assert event.action in ACTIONS  # so the dashboard's filter offers it


def test_refused_change_records_nothing(workspace, members) -> None:
    key = _create_key(workspace, members["admin"])
    apikey_services.apikey_revoke(key=key, **by(members["admin"]))
    count = AuditEvent.objects.count()
    with pytest.raises(ValidationError):
        apikey_services.apikey_revoke(
            key=key, actor=Actor.for_user(members["admin"]), context=CONTEXT
        )
    with pytest.raises(ValidationError):
        apikey_services.apikey_create(
            workspace=workspace, name="", scopes=default_key_scope_names(),
            environment="development", **by(members["admin"]),
            expires_at=timezone.now() - timedelta(days=1),
        )
    assert AuditEvent.objects.count() == count


def test_metadata_never_carries_a_credential(workspace, members) -> None:
    _key, token = apikey_services.apikey_create(
        workspace=workspace, name="CI deploy", scopes=default_key_scope_names(),
        environment="development", **by(members["admin"]),
    )
    new_key, new_token = apikey_services.apikey_rotate(
        key=_key, overlap="now", **by(members["admin"])
    )
    dumped = str(list(AuditEvent.objects.values()))
    assert token not in dumped
    assert new_token not in dumped
    assert token[-10:] not in dumped
