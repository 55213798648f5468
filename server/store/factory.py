"""Choosing the store: Redis when ``redis.url`` is set, else in memory."""

from __future__ import annotations

from collections.abc import Callable

from server.store.base import SharedStore
from server.store.memory import MemoryStore
from server.store.redis_store import RedisStore
from server.store.settings import RedisSettings


def build_store(
    redis: RedisSettings,
    *,
    cache_max_entries: int = 10_000,
    trace_max_entries: int = 10_000,
    on_error: Callable[[str], None] | None = None,
) -> SharedStore:
    """The store. ``cache_max_entries`` bounds the in-memory cache (Redis: TTLs and maxmemory);
    ``trace_max_entries`` the traces kept in memory, or the entries of each trace listing on
    Redis."""
    if redis.url:
        return RedisStore(
            redis.url,
            prefix=redis.prefix,
            max_connections=redis.max_connections,
            timeout_s=redis.timeout_s,
            retry_interval_s=redis.retry_interval_s,
            trace_max_entries=trace_max_entries,
            on_error=on_error,
        )
    return MemoryStore(cache_max_entries=cache_max_entries, trace_max_entries=trace_max_entries)
