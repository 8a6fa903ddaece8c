from django.apps import AppConfig


class OauthConfig(AppConfig):
    name = "oauth"
    verbose_name = "OAuth"

    def ready(self) -> None:
        from workspaces.hooks import on_membership_removed
        from workspaces.scopes import Scope, register

        from .services import connections_end_for_member

        # Removing a member ends their grants in that workspace (SPEC §7), from every door.
        on_membership_removed(connections_end_for_member)

        register(
            Scope(
                "offline_access",
                "Stay connected: refresh access without asking you again.",
                oauth_only=True,
            )
        )
