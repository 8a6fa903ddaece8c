from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications and webhooks"

    def ready(self) -> None:
        from audit.hooks import on_event_recorded

        from .hooks import on_audit_event

        on_event_recorded(on_audit_event)
