from django.urls import path

from . import views

app_name = "apikeys"

urlpatterns = [
    path("w/<slug:slug>/settings/api-keys/", views.key_list, name="list"),
    path("w/<slug:slug>/settings/api-keys/new/", views.key_create, name="create"),
    path("w/<slug:slug>/settings/api-keys/<str:key_id>/", views.key_detail, name="detail"),
    path("w/<slug:slug>/settings/api-keys/<str:key_id>/edit/", views.key_edit, name="edit"),
    path("w/<slug:slug>/settings/api-keys/<str:key_id>/rotate/", views.key_rotate, name="rotate"),
    path("w/<slug:slug>/settings/api-keys/<str:key_id>/pause/", views.key_pause, name="pause"),
    path("w/<slug:slug>/settings/api-keys/<str:key_id>/resume/", views.key_resume, name="resume"),
    path("w/<slug:slug>/settings/api-keys/<str:key_id>/revoke/", views.key_revoke, name="revoke"),
    path(
        "w/<slug:slug>/settings/api-keys/<str:key_id>/networks/restrict/",
        views.key_networks_restrict, name="networks_restrict",
    ),
    path(
        "w/<slug:slug>/settings/api-keys/<str:key_id>/networks/dismiss/",
        views.key_network_dismiss, name="network_dismiss",
    ),
    path(
        "w/<slug:slug>/settings/api-keys/<str:key_id>/rate-limit/", views.key_rate_limit,
        name="rate_limit",
    ),
    path(
        "w/<slug:slug>/settings/api-keys/<str:key_id>/budget/", views.key_budget, name="budget",
    ),
    path("w/<slug:slug>/settings/usage/", views.usage, name="usage"),
]
