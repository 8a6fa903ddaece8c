from django.urls import path

from . import views

app_name = "notifications"

_HOOK = "w/<slug:slug>/settings/webhooks/<str:endpoint_id>/"

urlpatterns = [
    path("w/<slug:slug>/settings/notifications/", views.notification_settings, name="settings"),
    path("w/<slug:slug>/settings/webhooks/", views.webhook_list, name="webhooks"),
    path(_HOOK, views.webhook_detail, name="webhook_detail"),
    path(_HOOK + "rotate", views.webhook_rotate, name="webhook_rotate"),
    path(_HOOK + "delete", views.webhook_delete, name="webhook_delete"),
    path(_HOOK + "test", views.webhook_test, name="webhook_test"),
    path(_HOOK + "deliveries/<str:delivery_id>/resend", views.webhook_resend,
         name="webhook_resend"),
]
