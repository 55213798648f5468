"""Choosing the store from the settings: Redis when ``redis_url`` is set, else in memory."""

from __future__ import annotations

from collections.abc import Callable

from server.operations.settings import OperationsSettings
from server.store.base import SharedStore
from server.store.memory import MemoryStore
from server.store.redis_store import RedisStore


def build_store(
    settings: OperationsSettings, on_error: Callable[[str], None] | None = None
) -> SharedStore:
    if settings.redis_url:
        return RedisStore(
            settings.redis_url,
            prefix=settings.redis_prefix,
            max_connections=settings.redis_max_connections,
            timeout_s=settings.redis_timeout_s,
            retry_interval_s=settings.redis_retry_interval_s,
            trace_max_entries=settings.trace_max_entries,
            on_error=on_error,
        )
    return MemoryStore(
        cache_max_entries=settings.cache_max_entries,
        trace_max_entries=settings.trace_max_entries,
    )
