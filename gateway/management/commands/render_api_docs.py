"""`manage.py render_api_docs [--check]`: write docs/api.md from the OpenAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from gateway.openapi import build_document, render_markdown

if TYPE_CHECKING:
    from django.core.management.base import CommandParser


def api_docs_path() -> Path:
    return Path(settings.BASE_DIR) / "docs" / "api.md"


class Command(BaseCommand):
    help = "Render docs/api.md from the OpenAPI document (gateway/openapi.py)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check", action="store_true",
            help="Exit 1 when docs/api.md differs from the rendered document; write nothing.",
        )

    def handle(self, *args: Any, check: bool = False, **options: Any) -> None:
        path = api_docs_path()
        rendered = render_markdown(build_document())
        if check:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != rendered:
                raise CommandError(f"{path} is stale: run manage.py render_api_docs.")
            self.stdout.write(f"{path} is up to date.")
            return
        path.write_text(rendered, encoding="utf-8")
        self.stdout.write(f"Wrote {path}.")
