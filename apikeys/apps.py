from django.apps import AppConfig


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from workspaces.hooks import on_noncompliant_credentials
        from workspaces.scopes import Scope, register

        from .selectors import apikeys_noncompliant

        on_noncompliant_credentials(apikeys_noncompliant)

        register(Scope("keys:read", "List the workspace's API keys (metadata only, never tokens)."))
