from django.urls import path

from . import member_views, policy_views, views

app_name = "workspaces"

urlpatterns = [
    path("", views.home, name="home"),
    path("w/<slug:slug>/", views.overview, name="overview"),
    path("w/<slug:slug>/settings/", views.settings_index, name="settings"),
    path("w/<slug:slug>/settings/members/", member_views.member_list, name="members"),
    path("w/<slug:slug>/settings/members/invite", member_views.invitation_new, name="invite"),
    path(
        "w/<slug:slug>/settings/members/invitations/<int:invitation_id>/resend",
        member_views.invitation_resend_view,
        name="invitation_resend",
    ),
    path(
        "w/<slug:slug>/settings/members/invitations/<int:invitation_id>/cancel",
        member_views.invitation_cancel_view,
        name="invitation_cancel",
    ),
    path(
        "w/<slug:slug>/settings/members/<int:membership_id>/remove",
        member_views.member_remove,
        name="member_remove",
    ),
    path("w/<slug:slug>/settings/plan/", member_views.plan_detail, name="plan"),
    path("w/<slug:slug>/settings/plan/change", member_views.plan_change, name="plan_change"),
    path("w/<slug:slug>/settings/plan/overage", member_views.plan_overage, name="plan_overage"),
    path("invitations/<str:token>/", member_views.invitation_accept_view, name="invitation"),
    path("w/<slug:slug>/settings/security/", policy_views.workspace_policies, name="policies"),
    path(
        "w/<slug:slug>/security-alerts/dismiss",
        views.security_alerts_dismiss,
        name="security_alerts_dismiss",
    ),
    path(
        "w/<slug:slug>/settings/members/<int:membership_id>/role",
        member_views.member_change_role,
        name="member_change_role",
    ),
]
