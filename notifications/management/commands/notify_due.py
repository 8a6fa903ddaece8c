"""`manage.py notify_due [--schedule [--interval S]]`: the periodic sweep (notifications.sweep).

Once, or with `--schedule` every `--interval` seconds (60) until SIGINT/SIGTERM, as `make run`
and docs/operations.md run it beside the task worker.
"""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from notifications.sweep import notify_due


class Command(BaseCommand):
    help = "Emit time-based notifications (expiring keys, budgets) and requeue stalled deliveries."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schedule", action="store_true",
                            help="Keep running, one sweep every --interval seconds.")
        parser.add_argument("--interval", type=float, default=60.0,
                            help="Seconds between sweeps with --schedule (default 60).")

    def handle(self, *args: Any, schedule: bool, interval: float, **options: Any) -> None:
        if not (0.1 <= interval <= 86400):
            raise CommandError("--interval must be between 0.1 and 86400 seconds.")
        running = True

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal running
            running = False

        if schedule:
            signal.signal(signal.SIGINT, stop)
            signal.signal(signal.SIGTERM, stop)
        while True:
            if schedule:  # a long-lived process: drop a connection the server closed
                close_old_connections()
            result = notify_due()
            emitted = ", ".join(f"{k}={v}" for k, v in sorted(result.emitted.items())) or "none"
            self.stdout.write(f"notify_due: emitted {emitted}; requeued {result.requeued}")
            if not schedule:
                return
            deadline = time.monotonic() + interval
            while running and time.monotonic() < deadline:
                time.sleep(min(0.2, interval))
            if not running:
                return
