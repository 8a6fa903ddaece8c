from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from workspaces.roles import Role
        from workspaces.scopes import Scope, register

        register(Scope("audit:read", "Read the workspace's audit log.", min_role=Role.ADMIN))
