from django.apps import AppConfig


class PassportsConfig(AppConfig):
    name = "passports"
    verbose_name = "Passports"

    def ready(self) -> None:
        from workspaces.roles import Role
        from workspaces.scopes import Scope, register

        register(
            Scope("passports:read", "Read product passports."),
            Scope(
                "passports:write",
                "Create, change and delete product passports.",
                min_role=Role.EDITOR,
                read_only=False,
            ),
            Scope("collections:read", "Read the collections that group passports."),
            Scope(
                "collections:write",
                "Create, rename and delete collections of passports.",
                min_role=Role.EDITOR,
                read_only=False,
            ),
        )
