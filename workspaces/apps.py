from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "workspaces"
    verbose_name = "Workspaces"

    def ready(self) -> None:
        from core.retention import register_prune_step

        from .retention import prune_audit_events
        from .roles import Role
        from .scopes import Scope, register

        register_prune_step("audit", prune_audit_events)

        # The audit log's API scope: `audit` sits below the scope registry, so it is named here.
        register(Scope("audit:read", "Read the workspace's audit log.", min_role=Role.ADMIN))
