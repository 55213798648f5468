"""Redis going away: every operation fails fast with StoreUnavailable, and recovers."""

from __future__ import annotations

import asyncio
import time

import pytest

from server.store import Limits, RedisStore, StoreUnavailable, Window
from tests.servers.ports import free_port
from tests.servers.redis_server import RedisServer

MINUTE = Window("m1", 30.0)
PERIOD = Window("d1", 3600.0)

pytestmark = pytest.mark.slow


async def test_nothing_listening_fails_fast() -> None:
    errors: list[str] = []
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2, on_error=errors.append)
    try:
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable):
            await store.cache_get("k")
        assert time.perf_counter() - started < 1.0
        assert await store.ping() is False
        assert errors == ["cache_get"]  # ping during the retry interval does not try again
    finally:
        await store.aclose()


async def test_killed_then_restarted(redis_server: RedisServer) -> None:
    errors: list[str] = []
    store = RedisStore(
        redis_server.url, timeout_s=0.2, retry_interval_s=0.2, on_error=errors.append
    )
    try:
        await store.cache_put("k", b"v", 60)
        redis_server.kill()
        started = time.perf_counter()
        for _ in range(20):  # one failure, then fast refusals during the retry interval
            with pytest.raises(StoreUnavailable):
                await store.admit("k1", Limits(requests_per_minute=5), MINUTE, PERIOD)
        assert time.perf_counter() - started < 1.0
        assert len(errors) == 1
        redis_server.start()
        await asyncio.sleep(0.25)
        assert (await store.admit("k1", Limits(requests_per_minute=5), MINUTE, PERIOD)).allowed
        assert await store.ping() is True
    finally:
        await store.aclose()


async def test_a_hung_redis_costs_a_bounded_wait(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, timeout_s=0.2, retry_interval_s=5.0)
    try:
        await store.cache_put("k", b"v", 60)
        redis_server.pause()
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable):
            await store.cache_get("k")
        first = time.perf_counter() - started
        assert first < 1.0
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable):
            await store.record_usage("k1", MINUTE, PERIOD, 1, 0.1)
        assert time.perf_counter() - started < 0.05  # within the retry interval: no wait
    finally:
        redis_server.resume()
        await store.aclose()
