from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("w/<slug:slug>/settings/audit-log/", views.event_list, name="list"),
    path("w/<slug:slug>/settings/audit-log/export.csv", views.event_export, name="export"),
]
