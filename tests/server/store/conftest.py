"""Both store implementations, for the contract tests; Redis is a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.store import MemoryStore, RedisStore, SharedStore
from tests.servers.fixtures import redis_server
from tests.servers.redis_server import RedisServer

__all__ = ["any_store", "redis_server"]


@pytest.fixture(params=["memory", "redis"])
async def any_store(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[SharedStore]:
    store: SharedStore
    if request.param == "memory":
        store = MemoryStore(cache_max_entries=100, trace_max_entries=100)
    else:
        store = RedisStore(redis_server.url, timeout_s=1.0)
    try:
        yield store
    finally:
        await store.aclose()
