"""Django's RedisCache, with one redis-py client per connection pool instead of one per call.

Django's `RedisCacheClient.get_client()` builds a new `redis.Redis` for every cache operation.
Building one copies redis-py's table of ~170 response callbacks: about 45 µs of CPU, twice what
the `GET` itself costs the caller. The API gateway then made three Redis calls per request (the
failed-authentication block check, the per-key rate limit, the daily budget; one script call
since, and `core.counters` takes its client from here too), so this was ~10% of an
authenticated request's CPU (docs/PERFORMANCE.md). A `redis.Redis` is safe to share between
threads: every command borrows a connection from the pool and returns it. Everything else is
Django's backend unchanged.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(
                connection_pool=self._get_connection_pool(write)
            )
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
