from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """The request pipeline of `/api/v1/` (SPEC §1): only `config` imports it."""

    name = "gateway"
    verbose_name = "API gateway"

    def ready(self) -> None:
        from core.retention import register_prune_step

        from .retention import prune_api_metering

        register_prune_step("api", prune_api_metering)
