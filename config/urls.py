from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from audit.views import LoginView, admin_login
from gateway import views as gateway_views
from gateway.api import api_root_without_slash

urlpatterns = [
    # Before the admin's own URLs, which it shadows: admin sign-ins are throttled and audited
    # like the dashboard's (audit.views.AdminLoginView).
    path("admin/login/", admin_login, name="admin_login"),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        LoginView.as_view(),  # Django's, recording sign-ins on the audit log
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("workspaces.urls")),
    path("", include("audit.urls")),
    path("", include("apikeys.urls")),
    path("", include("oauth.urls")),  # OAuth endpoints (oauth2_provider:…) and pages (oauth:…)
    path(
        "w/<slug:slug>/settings/api-reference/", gateway_views.api_reference,
        name="api_reference",
    ),
    path("", include("notifications.urls")),
    path("api/v1/", include("gateway.urls")),
    path("", include("mcp_server.urls")),  # /mcp, /mcp/readonly and their metadata (SPEC §14)
    # JSON, not Django's HTML 404:
    path("api/v1", api_root_without_slash, name="api_root_without_slash"),
]

# JSON for paths under /api/, the dashboard's templates everywhere else (apikit/errors.py).
handler400 = "apikit.errors.handler400"
handler403 = "apikit.errors.handler403"
handler404 = "apikit.errors.handler404"
handler500 = "apikit.errors.handler500"
