from django.apps import AppConfig


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from workspaces.scopes import Scope, register

        register(Scope("keys:read", "List the workspace's API keys (metadata only, never tokens)."))
