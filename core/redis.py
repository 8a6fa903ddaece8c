"""The shared Redis, when `REDIS_URL` is set: one client, the cache's own connection pool."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache

if TYPE_CHECKING:
    from redis import Redis


def using_redis() -> bool:
    return bool(settings.REDIS_URL)


def redis_client() -> Redis:
    """Django's RedisCache client (redis-py), shared with the cache: one connection pool."""
    return cache._cache.get_client(write=True)
