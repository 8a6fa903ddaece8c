"""`manage.py prune`: remove what has outlived its retention, one step at a time.

The steps are registered by the apps that own the data (`core.retention`); `--step NAME` runs
only the named steps.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.retention import StepFailedError, prune_steps


class Command(BaseCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps = prune_steps()
        self.help = "Delete data past its retention: " + ", ".join(self.steps) + "."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--step", action="append", choices=list(self.steps), dest="steps",
            help="Run only this step (repeatable). Default: all.",
        )

    def handle(self, *args: Any, steps: list[str] | None, **options: Any) -> None:
        now = timezone.now()
        failures: list[str] = []
        for name in steps or list(self.steps):
            try:
                self.stdout.write(self.steps[name](now))
            except StepFailedError as exc:
                failures.append(str(exc))
                self.stderr.write(str(exc))
        if failures:
            raise CommandError(f"{len(failures)} prune step(s) did not finish.", returncode=1)
