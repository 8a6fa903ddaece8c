from django.apps import AppConfig


class OauthConfig(AppConfig):
    name = "oauth"
    verbose_name = "OAuth"

    def ready(self) -> None:
        from workspaces.scopes import Scope, register

        register(
            Scope(
                "offline_access",
                "Stay connected: refresh access without asking you again.",
                oauth_only=True,
            )
        )
