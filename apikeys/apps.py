from django.apps import AppConfig


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from workspaces.hooks import on_noncompliant_credentials
        from workspaces.overview import on_overview_attention
        from workspaces.scopes import Scope, register

        from .selectors import apikey_attention, apikeys_noncompliant

        on_noncompliant_credentials(apikeys_noncompliant)
        on_overview_attention(apikey_attention)  # keys expiring soon or unused, on the Overview

        register(Scope("keys:read", "List the workspace's API keys (metadata only, never tokens)."))
