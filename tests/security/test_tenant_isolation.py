"""Tenant isolation matrix (SPEC §2, §4 "404 also for another workspace's objects").

Every route of the URL resolver is classified below; a route nobody classified fails
`test_every_route_is_classified`, so a new page or endpoint cannot ship without its row. Then:
- a member of workspace A in each role gets 404 for every dashboard route of workspace B (B's
  slug), and 404 — or 403 where the role lacks the action anyway — for B's objects under A's slug,
  and nothing of B changes;
- on A's own objects each role gets exactly the actions SPEC §2 gives it: 403 where it lacks the
  action, and never 403/404 where it has it;
- an API key and an OAuth token of A get 404 for B's objects on every API route, see none of B in
  lists, and each role's OAuth token carries exactly the scopes SPEC §2 allows;
- a user cannot revoke another user's connected app, an app cannot introspect or revoke another
  workspace's tokens, and Django admin is staff only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from apikeys.models import ApiKey
from apikeys.services import apikey_create
from audit.models import AuditEvent
from core.context import RequestContext
from notifications.models import WebhookEndpoint
from notifications.services import webhook_endpoint_create, webhook_test_send
from oauth.models import Connection, WorkspaceApp
from oauth.services import connection_grant, oauth_app_create
from passports.models import Collection, Passport
from passports.services import collection_create, passport_create
from tests.factories import MembershipFactory, UserFactory, by
from tests.oauth.conftest import RegisteredApp
from workspaces.models import Invitation, Membership, SecurityAlert, Workspace
from workspaces.roles import Action, Role, role_can
from workspaces.services import invitation_create

pytestmark = pytest.mark.django_db

ROLES = [Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER]
ALL_KEY_SCOPES = ["audit:read", "keys:read", "passports:read", "passports:write"]


@dataclass(frozen=True)
class Page:
    """A workspace dashboard route: the action it needs, its methods, the object it names."""

    action: Action
    methods: tuple[str, ...] = ("GET",)
    obj: str | None = None  # the kind of object in the URL (key, app, membership)


WORKSPACE_PAGES: dict[str, Page] = {
    "workspaces:overview": Page(Action.VIEW_DASHBOARD),
    "workspaces:members": Page(Action.VIEW_DASHBOARD),
    "workspaces:member_change_role": Page(Action.MANAGE_MEMBERS, ("POST",), "membership"),
    "workspaces:member_remove": Page(Action.MANAGE_MEMBERS, ("GET", "POST"), "membership"),
    "workspaces:invite": Page(Action.MANAGE_MEMBERS, ("POST",)),
    "workspaces:invitation_resend": Page(Action.MANAGE_MEMBERS, ("POST",), "invitation"),
    "workspaces:invitation_cancel": Page(Action.MANAGE_MEMBERS, ("GET", "POST"), "invitation"),
    "workspaces:plan": Page(Action.VIEW_DASHBOARD),
    "workspaces:plan_change": Page(Action.MANAGE_PLAN, ("POST",)),
    "workspaces:plan_overage": Page(Action.MANAGE_PLAN, ("POST",)),
    "workspaces:settings": Page(Action.VIEW_DASHBOARD),
    "api_reference": Page(Action.VIEW_DASHBOARD),
    "workspaces:security_alerts_dismiss": Page(Action.MANAGE_KEYS, ("POST",)),
    "workspaces:policies": Page(Action.MANAGE_POLICIES, ("GET", "POST")),
    "audit:list": Page(Action.READ_AUDIT_LOG),
    "audit:export": Page(Action.READ_AUDIT_LOG),
    "apikeys:list": Page(Action.VIEW_DASHBOARD),
    "apikeys:usage": Page(Action.VIEW_DASHBOARD),
    "apikeys:detail": Page(Action.VIEW_DASHBOARD, ("GET",), "key"),
    "apikeys:create": Page(Action.MANAGE_KEYS, ("GET", "POST")),
    "apikeys:rotate": Page(Action.MANAGE_KEYS, ("GET", "POST"), "key"),
    "apikeys:revoke": Page(Action.MANAGE_KEYS, ("GET", "POST"), "key"),
    "apikeys:pause": Page(Action.MANAGE_KEYS, ("POST",), "key"),
    "apikeys:resume": Page(Action.MANAGE_KEYS, ("POST",), "key"),
    "apikeys:rate_limit": Page(Action.MANAGE_KEYS, ("POST",), "key"),
    "apikeys:budget": Page(Action.MANAGE_KEYS, ("POST",), "key"),
    "apikeys:edit": Page(Action.MANAGE_KEYS, ("GET", "POST"), "key"),
    "apikeys:networks_restrict": Page(Action.MANAGE_KEYS, ("GET", "POST"), "key"),
    "apikeys:network_dismiss": Page(Action.MANAGE_KEYS, ("POST",), "key"),
    "oauth:app_list": Page(Action.MANAGE_OAUTH_APPS),
    "oauth:app_create": Page(Action.MANAGE_OAUTH_APPS, ("GET", "POST")),
    "oauth:app_rotate_secret": Page(Action.MANAGE_OAUTH_APPS, ("GET", "POST"), "app"),
    "oauth:app_delete": Page(Action.MANAGE_OAUTH_APPS, ("GET", "POST"), "app"),
    "oauth:app_edit": Page(Action.MANAGE_OAUTH_APPS, ("GET", "POST"), "app"),
    "oauth:workspace_connections": Page(Action.MANAGE_OAUTH_APPS),
    "oauth:workspace_connection_revoke": Page(
        Action.MANAGE_OAUTH_APPS, ("GET", "POST"), "connection"),
    "oauth:workspace_connection_approve": Page(Action.MANAGE_OAUTH_APPS, ("POST",), "connection"),
    "oauth:workspace_connection_deny": Page(
        Action.MANAGE_OAUTH_APPS, ("GET", "POST"), "connection"),
    "notifications:settings": Page(Action.VIEW_DASHBOARD, ("GET", "POST")),
    "notifications:webhooks": Page(Action.MANAGE_KEYS, ("GET", "POST")),
    "notifications:webhook_detail": Page(Action.MANAGE_KEYS, ("GET", "POST"), "webhook"),
    "notifications:webhook_rotate": Page(Action.MANAGE_KEYS, ("POST",), "webhook"),
    "notifications:webhook_test": Page(Action.MANAGE_KEYS, ("POST",), "webhook"),
    "notifications:webhook_resend": Page(Action.MANAGE_KEYS, ("POST",), "delivery"),
    "notifications:webhook_delete": Page(Action.MANAGE_KEYS, ("POST",), "webhook"),
}
# API routes: the object they name (None: a list or the caller itself).
API_ROUTES: dict[str, str | None] = {
    "api:me": None, "api:passports": None, "api:passport": "passport", "api:keys": None,
    "api:audit-events": None, "api:collections": None, "api:collection": "collection",
    "api:usage": None,
}
# Everything else, and why it needs no workspace matrix.
OTHER_ROUTES: dict[str, str] = {
    "login": "public sign-in form",
    "logout": "ends the caller's own session",
    "audit:login_verify": "the code step of the caller's own pending sign-in (test_two_factor)",
    "audit:two_factor": "the caller's own two-factor settings",
    "audit:two_factor_enrol": "the caller's own two-factor settings",
    "audit:recovery_codes_new": "the caller's own two-factor settings",
    "audit:two_factor_remove": "the caller's own two-factor settings",
    "workspaces:home": "redirects to the caller's own last-used workspace",
    "workspaces:invitation": "an invitation link: its token is the credential, for the invited "
                             "email only (tests/workspaces/test_members.py)",
    "api_root_without_slash": "JSON 404 for /api/v1 without its slash",
    "oauth:connected_apps": "the caller's own grants (test_connected_apps_are_per_user)",
    "oauth:connection_revoke": "the caller's own grants (test_connected_apps_are_per_user)",
    "oauth:connection_budget": "the caller's own grants (test_connected_apps_are_per_user)",
    "oauth2_provider:oauth-server-metadata": "public metadata (RFC 8414)",
    "oauth2_provider:oauth-resource-metadata": "public metadata (RFC 9728)",
    "oauth2_provider:oauth-resource-metadata-api": "public metadata, path-inserted (RFC 9728 §3.1)",
    "oauth2_provider:authorize": "consent for the caller's own workspaces (tests/oauth)",
    "oauth2_provider:token": "client-authenticated (tests/oauth)",
    "oauth2_provider:revoke-token": "client-authenticated (test_apps_cannot_reach_…)",
    "oauth2_provider:introspect": "client-authenticated (test_apps_cannot_reach_…)",
    "oauth2_provider:dcr-register": "public registration, rate-limited (tests/oauth)",
    "api:openapi": "public document",
    "api:leaked-credentials": "public leak reports (test_leaked_credentials.py)",
    "api:not-found": "JSON 404 for unknown API paths",
    "mcp:server": "each tool call runs an API route above, through the gateway (tests/mcp)",
    "mcp:readonly": "each tool call runs an API route above, through the gateway (tests/mcp)",
    "mcp:resource-metadata": "public metadata of the MCP server, path-inserted (RFC 9728 §3.1)",
}


def _routes(patterns, prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = namespace
            if pattern.namespace:
                ns = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern), ns)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace else (pattern.name or "")
            yield prefix + str(pattern.pattern), name


def test_every_route_is_classified() -> None:
    routes = dict(_routes(get_resolver().url_patterns))
    admin_routes = {route for route in routes if route.startswith("admin/")}
    names = {name for route, name in routes.items() if route not in admin_routes}
    classified = set(WORKSPACE_PAGES) | set(API_ROUTES) | set(OTHER_ROUTES)
    assert names - classified == set(), "classify the new routes in this file"
    assert classified - names == set(), "these classified routes no longer exist"
    assert len(admin_routes) > 20  # Django admin: test_admin_is_staff_only


# --- objects ------------------------------------------------------------------------------------

@dataclass
class Tenant:
    workspace: object
    admin: object
    make: dict[str, Callable[[], str]] = field(default_factory=dict)

    def fresh(self, kind: str) -> str:
        return self.make[kind]()


def tenant(workspace, admin_user) -> Tenant:
    counter = iter(range(10_000))

    def key() -> str:
        return apikey_create(workspace=workspace, name=f"k{next(counter)}",
                             scopes=ALL_KEY_SCOPES, environment="development",
                             **by(admin_user))[0].public_id

    def app() -> str:
        application, _ = oauth_app_create(workspace=workspace, name=f"app{next(counter)}",
                                          redirect_uris=["https://app.example.com/cb"],
                                          confidential=True, **by(admin_user))
        return application.client_id

    def membership() -> str:
        return str(MembershipFactory(workspace=workspace, role=Role.VIEWER,
                                     user=UserFactory()).pk)

    def passport() -> str:
        return passport_create(
            workspace=workspace, gtin="4006381333931", serial_number=f"S{next(counter)}",
            product_name="Drill", **by(),
        ).public_id

    def invitation() -> str:
        return str(invitation_create(
            workspace=workspace, email=f"invitee{next(counter)}@example.com", role=Role.VIEWER,
            origin="http://testserver", **by(admin_user),
        )[0].pk)

    def collection() -> str:
        return collection_create(
            workspace=workspace, name=f"Shelf {next(counter)}", **by()
        ).public_id

    def connection() -> str:
        """A member's grant awaiting approval (so approve, deny and revoke all apply)."""
        application, _ = oauth_app_create(workspace=workspace, name=f"app{next(counter)}",
                                          redirect_uris=["https://app.example.com/cb"],
                                          confidential=True, **by(admin_user))
        granted = connection_grant(user=admin_user, application=application,
                                   workspace=workspace, scopes=["passports:read"],
                                   context=RequestContext())
        Connection.objects.filter(pk=granted.pk).update(approval="pending")
        return granted.public_id

    def webhook() -> str:
        return webhook_endpoint_create(
            workspace=workspace, url=f"http://127.0.0.1:9/hook{next(counter)}",
            event_types=["key.created"], **by(admin_user),
        )[0].public_id

    def delivery() -> str:
        endpoint = WebhookEndpoint.objects.get(public_id=webhook())
        event = webhook_test_send(endpoint=endpoint)
        return f"{endpoint.public_id}/{event.webhook_deliveries.get().public_id}"

    return Tenant(workspace, admin_user,
                  {"key": key, "app": app, "membership": membership, "passport": passport,
                   "collection": collection, "connection": connection,
                   "invitation": invitation, "webhook": webhook, "delivery": delivery})


@pytest.fixture
def a(workspace, members, plan) -> Tenant:
    workspace.plan = plan("scale")  # room for the keys each role's checks create
    workspace.save()
    return tenant(workspace, members["admin"])


@pytest.fixture
def b(other_workspace, plan) -> Tenant:
    other_workspace.plan = plan("scale")
    other_workspace.save()
    owner = UserFactory(email="owner@globex.test")
    MembershipFactory(workspace=other_workspace, role=Role.OWNER, user=owner)
    return tenant(other_workspace, owner)


def state_of(workspace) -> tuple:
    """Everything a request could change in a workspace."""
    return (
        sorted(ApiKey.objects.filter(workspace=workspace).values_list(
            "public_id", "status", "expires_at", "rate_limit_per_minute", "name", "note")),
        sorted(WorkspaceApp.objects.filter(workspace=workspace).values_list(
            "application__client_id", "application__client_secret", "application__name",
            "application__redirect_uris")),
        sorted(Membership.objects.filter(workspace=workspace).values_list("pk", "role")),
        sorted(Passport.objects.filter(workspace=workspace).values_list(
            "public_id", "product_name", "status", "collection_id")),
        sorted(Collection.objects.filter(workspace=workspace).values_list("public_id", "name")),
        sorted(ApiKey.objects.filter(workspace=workspace).values_list("public_id", "collections")),
        sorted(Connection.objects.filter(workspace=workspace).values_list(
            "public_id", "approval", "revoked_at", "scope")),
        sorted(SecurityAlert.objects.filter(workspace=workspace).values_list(
            "pk", "acknowledged_at")),
        sorted(Invitation.objects.filter(workspace=workspace).values_list(
            "pk", "token_digest", "accepted_at", "cancelled_at")),
        Workspace.objects.filter(pk=workspace.pk).values_list(
            "plan_id", "overage_enabled").get(),
        sorted(WebhookEndpoint.objects.filter(workspace=workspace).values_list(
            "public_id", "url", "enabled", "sealed_secret", "event_types")),
        AuditEvent.objects.filter(workspace=workspace).count(),
    )


def url(name: str, slug: str, page: Page, obj_id: str | None) -> str:
    kwargs = {"slug": slug}
    if page.obj == "delivery":
        kwargs["endpoint_id"], kwargs["delivery_id"] = obj_id.split("/")
    elif page.obj == "webhook":
        kwargs["endpoint_id"] = obj_id
    elif page.obj is not None:
        kwargs[{"key": "key_id", "app": "client_id", "membership": "membership_id",
                "connection": "connection_id", "invitation": "invitation_id"}[page.obj]] = obj_id
    return reverse(name, kwargs=kwargs)


def call(client: Client, method: str, path: str):
    return client.get(path) if method == "GET" else client.post(path, {"role": "owner",
                                                                         "overlap": "now"})


# --- the dashboard ------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_no_role_of_a_reaches_anything_of_b(role, a, b, client_for) -> None:
    SecurityAlert.objects.create(workspace=b.workspace, kind="credential_leaked", subject="x")
    b_objects = {
        kind: b.fresh(kind)
        for kind in ("key", "app", "membership", "connection", "invitation", "webhook", "delivery")
    }
    before = state_of(b.workspace)
    client = client_for(role)
    for name, page in WORKSPACE_PAGES.items():
        obj = b_objects.get(page.obj)
        for method in page.methods:
            under_b = call(client, method, url(name, b.workspace.slug, page, obj))
            assert under_b.status_code == HTTPStatus.NOT_FOUND, (role, name, method)
            if page.obj is None:
                continue
            under_a = call(client, method, url(name, a.workspace.slug, page, obj))
            expected = (HTTPStatus.NOT_FOUND if role_can(role, page.action)
                        else HTTPStatus.FORBIDDEN)
            assert under_a.status_code == expected, (role, name, method, under_a.status_code)
    assert state_of(b.workspace) == before


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_actions(role, a, client_for) -> None:
    client = client_for(role)
    for name, page in WORKSPACE_PAGES.items():
        for method in page.methods:
            obj = a.fresh(page.obj) if page.obj else None
            response = call(client, method, url(name, a.workspace.slug, page, obj))
            if role_can(role, page.action):
                assert response.status_code not in (
                    HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND, HTTPStatus.METHOD_NOT_ALLOWED,
                ) and response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR, (
                    role, name, method, response.status_code)
            else:
                assert response.status_code == HTTPStatus.FORBIDDEN, (
                    role, name, method, response.status_code)


def test_the_roles_match_spec_section_2() -> None:
    spec = {  # SPEC §2, written out
        Role.VIEWER: {Action.VIEW_DASHBOARD},
        Role.EDITOR: {Action.VIEW_DASHBOARD, Action.WRITE_RESOURCES},
        Role.ADMIN: {Action.VIEW_DASHBOARD, Action.WRITE_RESOURCES, Action.MANAGE_KEYS,
                     Action.MANAGE_OAUTH_APPS, Action.READ_AUDIT_LOG},
    }
    spec[Role.OWNER] = spec[Role.ADMIN] | {Action.MANAGE_MEMBERS, Action.MANAGE_PLAN,
                                           Action.MANAGE_POLICIES}  # SPEC §12
    for role, actions in spec.items():
        assert {action for action in Action if role_can(role, action)} == actions, role


def test_connected_apps_are_per_user(a, b, members, client_for, authorize, exchange) -> None:
    app = RegisteredApp(*oauth_app_create(
        workspace=b.workspace, name="B app", redirect_uris=["https://app.example.com/cb"],
        confidential=True, **by(b.admin)), "https://app.example.com/cb")
    b_client = Client()
    b_client.force_login(b.admin)
    assert exchange(app, authorize(b_client, app, workspace=b.workspace.slug)).status_code == 200
    connection = Connection.objects.get(user=b.admin)
    for role in ROLES:
        client = client_for(role)
        assert connection.public_id not in client.get("/settings/connected-apps/").content.decode()
        revoke = client.post(f"/settings/connected-apps/{connection.public_id}/revoke")
        assert revoke.status_code == HTTPStatus.NOT_FOUND
        budget = f"/settings/connected-apps/{connection.public_id}/budget"
        assert client.get(budget).status_code == HTTPStatus.NOT_FOUND
        assert client.post(budget, {"daily_cap": "1"}).status_code == HTTPStatus.NOT_FOUND
    connection.refresh_from_db()
    assert connection.revoked_at is None
    assert connection.daily_cap is None


def test_admin_is_staff_only(client_for) -> None:
    for role in ROLES:
        client = client_for(role)
        for model in admin.site._registry:
            meta = model._meta
            path = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
            response = client.get(path)
            assert response.status_code == HTTPStatus.FOUND, (role, path)
            assert response["Location"].startswith("/admin/login/")


# --- the API ------------------------------------------------------------------------------------

@pytest.fixture
def credentials_of_a(a, make_key, oauth_app, tokens_for) -> dict[str, str]:
    _key, key_token = make_key(
        [*ALL_KEY_SCOPES, "collections:read", "collections:write"]
    )
    oauth = tokens_for(oauth_app, role="owner",
                       scope="passports:read passports:write audit:read keys:read "
                             "collections:read collections:write")
    return {"API key": key_token, "OAuth token": oauth["access_token"]}


def test_no_credential_of_a_reaches_anything_of_b(a, b, credentials_of_a) -> None:
    b_passport = b.fresh("passport")
    b_collection = b.fresh("collection")
    b_key = b.fresh("key")
    before = state_of(b.workspace)
    b_objects = {"passport": b_passport, "collection": b_collection}
    stolen = {"passport": {"product_name": "Stolen"}, "collection": {"name": "Stolen"}}
    for kind, token in credentials_of_a.items():
        api = Client(headers={"Authorization": f"Bearer {token}"})
        for name, obj in API_ROUTES.items():
            if obj is not None:
                path = reverse(name, kwargs={f"{obj}_id": b_objects[obj]})
                for method in ("get", "patch", "delete"):
                    body = stolen[obj] if method == "patch" else None
                    response = getattr(api, method)(path, body, content_type="application/json")
                    assert response.status_code == HTTPStatus.NOT_FOUND, (kind, method)
                    assert response.json()["error"] == "not_found"
            else:
                response = api.get(reverse(name))
                assert response.status_code == HTTPStatus.OK, (kind, name)
                body = response.content.decode()
                for secret in (b_passport, b_collection, b_key, b.workspace.slug):
                    assert secret not in body, (kind, name)
        assert api.get("/api/v1/me").json()["workspace"]["slug"] == a.workspace.slug
    assert state_of(b.workspace) == before


SPEC_SCOPES = {  # SPEC §2: viewer reads; editor writes passports; admin reads the audit log
    Role.VIEWER: {"keys:read", "passports:read"},
    Role.EDITOR: {"keys:read", "passports:read", "passports:write"},
    Role.ADMIN: {"audit:read", "keys:read", "passports:read", "passports:write"},
    Role.OWNER: {"audit:read", "keys:read", "passports:read", "passports:write"},
}


@pytest.mark.parametrize("role", ROLES)
def test_each_roles_oauth_token_gets_exactly_its_scopes(role, oauth_app, tokens_for) -> None:
    token = tokens_for(oauth_app, role=role,
                       scope="passports:read passports:write audit:read keys:read")
    api = Client(headers={"Authorization": f"Bearer {token['access_token']}"})
    assert set(api.get("/api/v1/me").json()["scopes"]) == SPEC_SCOPES[role]
    write = api.post("/api/v1/passports", {"gtin": "4006381333931", "serial_number": role,
                                           "product_name": "Drill"},
                     content_type="application/json")
    can_write = "passports:write" in SPEC_SCOPES[role]
    assert write.status_code == (HTTPStatus.CREATED if can_write else HTTPStatus.FORBIDDEN)
    audit = api.get("/api/v1/audit-events")
    can_audit = "audit:read" in SPEC_SCOPES[role]
    assert audit.status_code == (HTTPStatus.OK if can_audit else HTTPStatus.FORBIDDEN)


def test_apps_cannot_reach_another_workspaces_tokens(b, oauth_app, tokens_for, authorize,
                                                     exchange) -> None:
    b_app = RegisteredApp(*oauth_app_create(
        workspace=b.workspace, name="B app", redirect_uris=["https://app.example.com/cb"],
        confidential=True, **by(b.admin)), "https://app.example.com/cb")
    b_client = Client()
    b_client.force_login(b.admin)
    b_tokens = exchange(b_app, authorize(b_client, b_app, workspace=b.workspace.slug)).json()
    a_auth = oauth_app.token_auth()
    introspected = Client().post("/api/oauth/introspect", {"token": b_tokens["access_token"]},
                                 **a_auth)
    assert introspected.json() == {"active": False}
    Client().post("/api/oauth/revoke", {"token": b_tokens["access_token"]}, **a_auth)
    Client().post("/api/oauth/revoke", {"token": b_tokens["refresh_token"]}, **a_auth)
    still = Client(headers={"Authorization": f"Bearer {b_tokens['access_token']}"})
    assert still.get("/api/v1/me").status_code == HTTPStatus.OK
