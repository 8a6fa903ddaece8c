"""Outages simulated at Django's boundary, not inside our own code: the code under test meets the
failure where a real outage would reach it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

CACHE_METHODS = (
    "add", "get", "get_many", "get_or_set", "has_key", "set", "set_many", "touch", "incr", "decr",
    "delete", "delete_many",
)


@contextlib.contextmanager
def cache_down(exc: BaseException) -> Iterator[None]:
    """Every call to this thread's `caches["default"]` (what `django.core.cache.cache` and
    django-ratelimit use) raises `exc`, as a cache server that is down does."""
    from django.core.cache import caches

    cache = caches["default"]
    with contextlib.ExitStack() as stack:
        for name in CACHE_METHODS:
            stack.enter_context(mock.patch.object(cache, name, side_effect=exc))
        yield
