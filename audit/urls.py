from django.urls import path

from . import twofactor_views, views

app_name = "audit"

urlpatterns = [
    path("w/<slug:slug>/settings/audit-log/", views.event_list, name="list"),
    path("w/<slug:slug>/settings/audit-log/export.csv", views.event_export, name="export"),
    path("accounts/login/verify/", twofactor_views.login_verify, name="login_verify"),
    path("accounts/two-factor/", twofactor_views.two_factor_detail, name="two_factor"),
    path("accounts/two-factor/enrol/", twofactor_views.two_factor_enrol, name="two_factor_enrol"),
    path("accounts/two-factor/recovery-codes/", twofactor_views.recovery_codes_new,
         name="recovery_codes_new"),
    path("accounts/two-factor/remove/", twofactor_views.two_factor_remove,
         name="two_factor_remove"),
]
