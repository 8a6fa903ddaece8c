from django.apps import AppConfig


class OauthConfig(AppConfig):
    name = "oauth"
    verbose_name = "OAuth"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save
        from oauth2_provider.models import get_access_token_model

        from core.retention import register_prune_step
        from workspaces.hooks import (
            on_membership_removed,
            on_overview_notices,
            on_user_deleting,
        )
        from workspaces.scopes import Scope, register

        from .retention import oauth_prune_step
        from .selectors import pending_approval_notices
        from .services import applications_disown, connections_end_for_member
        from .tokencache import access_token_changed

        # Whoever deletes or changes an access token (a service, DOT's rotation or revocation
        # endpoint, a cascade), every process's cached copy goes before the change returns.
        access_token = get_access_token_model()
        post_save.connect(access_token_changed, sender=access_token, dispatch_uid="tokencache")
        post_delete.connect(access_token_changed, sender=access_token, dispatch_uid="tokencache")

        # Removing a member ends their grants in that workspace (SPEC §7), from every door.
        on_membership_removed(connections_end_for_member)
        # Deleting the user who registered a workspace's app keeps the app (DOT's
        # Application.user would delete it, and every grant with it, in the cascade).
        on_user_deleting(applications_disown)
        register_prune_step("oauth", oauth_prune_step)
        # Grants awaiting an admin's approval show on the workspace Overview (SPEC §12).
        on_overview_notices(pending_approval_notices)

        register(
            Scope(
                "offline_access",
                "Stay connected: refresh access without asking you again.",
                oauth_only=True,
            )
        )
