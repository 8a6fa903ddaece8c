"""OAuth URLs, in two namespaces (include this module once, at the root):

- `oauth2_provider`: the protocol endpoints under the names django-oauth-toolkit's metadata views
  reverse (`authorize`, `token`, `revoke-token`, `introspect`, `dcr-register`, …). No trailing
  slashes: these are API endpoints, and RFC 8414/9728 fix the well-known paths.
- `oauth`: the dashboard — OAuth Apps per workspace and the user's Connected apps.
"""

from django.urls import include, path
from oauth2_provider.views import OAuthServerMetadataView

from . import endpoints, views

protocol_patterns = [
    path(
        ".well-known/oauth-authorization-server",
        OAuthServerMetadataView.as_view(),
        name="oauth-server-metadata",
    ),
    path(
        ".well-known/oauth-protected-resource",
        endpoints.ProtectedResourceMetadataView.as_view(),
        name="oauth-resource-metadata",
    ),
    path(
        ".well-known/oauth-protected-resource/api/v1",  # RFC 9728 §3.1, path-inserted
        endpoints.ProtectedResourceMetadataView.as_view(),
        name="oauth-resource-metadata-api",
    ),
    path("api/oauth/authorize", endpoints.AuthorizationView.as_view(), name="authorize"),
    path("api/oauth/token", endpoints.GatehouseTokenView.as_view(), name="token"),
    path("api/oauth/revoke", endpoints.GatehouseRevokeTokenView.as_view(), name="revoke-token"),
    path("api/oauth/introspect", endpoints.IntrospectView.as_view(), name="introspect"),
    path("api/oauth/register", endpoints.RegistrationView.as_view(), name="dcr-register"),
]

dashboard_patterns = [
    path("w/<slug:slug>/settings/oauth-apps/", views.app_list, name="app_list"),
    path("w/<slug:slug>/settings/oauth-apps/new", views.app_create, name="app_create"),
    path(
        "w/<slug:slug>/settings/oauth-apps/<str:client_id>/rotate-secret",
        views.app_rotate_secret,
        name="app_rotate_secret",
    ),
    path(
        "w/<slug:slug>/settings/oauth-apps/<str:client_id>/edit",
        views.app_edit,
        name="app_edit",
    ),
    path(
        "w/<slug:slug>/settings/oauth-apps/<str:client_id>/delete",
        views.app_delete,
        name="app_delete",
    ),
    path(
        "w/<slug:slug>/settings/connected-apps/",
        views.workspace_connections_view,
        name="workspace_connections",
    ),
    path(
        "w/<slug:slug>/settings/connected-apps/<str:connection_id>/revoke",
        views.workspace_connection_revoke,
        name="workspace_connection_revoke",
    ),
    path(
        "w/<slug:slug>/settings/connected-apps/<str:connection_id>/approve",
        views.workspace_connection_approve,
        name="workspace_connection_approve",
    ),
    path(
        "w/<slug:slug>/settings/connected-apps/<str:connection_id>/deny",
        views.workspace_connection_deny,
        name="workspace_connection_deny",
    ),
    path("settings/connected-apps/", views.connected_apps, name="connected_apps"),
    path(
        "settings/connected-apps/<str:connection_id>/budget",
        views.connection_budget,
        name="connection_budget",
    ),
    path(
        "settings/connected-apps/<str:connection_id>/revoke",
        views.connection_revoke_view,
        name="connection_revoke",
    ),
]

urlpatterns = [
    path("", include((protocol_patterns, "oauth2_provider"))),
    path("", include((dashboard_patterns, "oauth"))),
]
