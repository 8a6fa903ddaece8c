from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares (SPEC §1, the lowest layer): it imports no app of the project."""

    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from .redaction import install_log_record_redaction

        install_log_record_redaction()
