from django.urls import path

from . import policy_views, views

app_name = "workspaces"

urlpatterns = [
    path("", views.home, name="home"),
    path("w/<slug:slug>/", views.overview, name="overview"),
    path("w/<slug:slug>/settings/members/", views.member_list, name="members"),
    path("w/<slug:slug>/settings/security/", policy_views.workspace_policies, name="policies"),
    path(
        "w/<slug:slug>/security-alerts/dismiss",
        views.security_alerts_dismiss,
        name="security_alerts_dismiss",
    ),
    path(
        "w/<slug:slug>/settings/members/<int:membership_id>/role",
        views.member_change_role,
        name="member_change_role",
    ),
]
