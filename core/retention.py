"""Retention: what `manage.py prune` deletes, step by step.

Each app that keeps something with a lifetime registers a step in its `AppConfig.ready`
(`register_prune_step`): a function `(now) -> summary line`, raising `StepFailedError` when it
finished what it could and reports what it could not do. `core` knows no app; the steps run in
the order the apps registered them (INSTALLED_APPS order).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

PruneStep = Callable[[datetime], str]

_steps: dict[str, PruneStep] = {}


class StepFailedError(Exception):
    """A step finished what it could and reports what it could not do."""


def register_prune_step(name: str, step: PruneStep) -> None:
    _steps[name] = step


def prune_steps() -> dict[str, PruneStep]:
    return dict(_steps)
