"""A Redis Cluster primary, or a Sentinel-managed primary, killed under load: every call ends
quickly (StoreUnavailable, never a hang), and calls succeed again once the replica is promoted."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from dataclasses import dataclass, field

import pytest

from server.store import Limits, RedisStore, StoreUnavailable, Window
from server.store.layout import tag
from tests.servers.redis_cluster import RedisClusterServers
from tests.servers.redis_sentinel import SentinelGroup

# While a node fails over, redis-py may drop a connection it was opening without closing it
# (redis-py 8.1; see closed() below): if the collector finds it while a test here runs, its
# ResourceWarning would fail that test under -W error. Only redis-py's own connection objects,
# only in these failover tests: the store's own connections are closed by aclose(), which
# every test checks by closing the store.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:unclosed Connection <redis.asyncio.connection.Connection:ResourceWarning"
    ),
]

MINUTE = Window("m1", 30.0)
PERIOD = Window("d1", 3600.0)
LIMITS = Limits(requests_per_minute=10**9, budget_usd=10.0**9)
TIMEOUT_S = 0.25  # the default
CALL_BOUND_S = 1.5  # the store's bound is 2 x TIMEOUT_S; the rest is slack for a busy machine
RECOVERY_BOUND_S = 30.0
WORKERS = 8


@dataclass
class Load:
    """Workers admitting and settling against one store, recording how each call ended."""

    store: RedisStore
    watched: str  # the subject whose primary is killed
    durations: list[float] = field(default_factory=list)
    killed: bool = False
    failures: int = 0  # after the kill
    watched_failed: bool = False
    loaded: asyncio.Event = field(default_factory=asyncio.Event)  # 20 calls done: kill now
    recovered: asyncio.Event = field(default_factory=asyncio.Event)  # ``watched`` served again
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def worker(self, subject: str) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                admission = await self.store.admit(
                    subject, LIMITS, MINUTE, PERIOD, reserve_usd=0.01
                )
                await self.store.settle(subject, admission.reservation, MINUTE, PERIOD, 1, 0.001)
            except StoreUnavailable:
                if self.killed:
                    self.failures += 1
                    self.watched_failed = self.watched_failed or subject == self.watched
                await asyncio.sleep(0.01)
            else:
                if self.watched_failed and subject == self.watched:
                    self.recovered.set()
            self.durations.append(time.perf_counter() - started)
            if len(self.durations) >= 20:
                self.loaded.set()


async def served(store: RedisStore) -> None:
    """Until the store answers (a cold cluster client on a busy machine may time out once)."""
    for _ in range(int(RECOVERY_BOUND_S / 0.3)):
        if await store.ping():
            return
        await asyncio.sleep(0.3)
    raise AssertionError("the store never answered")


async def closed(store: RedisStore) -> None:
    """Close the store and collect its garbage now. While a node fails over, redis-py may
    drop a connection it was opening without closing it; its socket is closed when collected
    (a ResourceWarning, which pytest would pin on whichever later test collects it)."""
    await store.aclose()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def requests_counted(store: RedisStore, subject: str) -> int:
    """``subject``'s request count, once the store serves it again: right after a failover
    another worker's failure can put the whole store in its short retry pause (a refusal
    without trying, by design), so ask until it answers, within the recovery bound."""
    deadline = time.perf_counter() + RECOVERY_BOUND_S
    while True:
        try:
            return (await store.usage(subject, MINUTE, PERIOD)).requests
        except StoreUnavailable:
            if time.perf_counter() > deadline:
                raise
            await asyncio.sleep(0.3)


async def kill_under_load(store: RedisStore, subjects: list[str], kill: object) -> Load:
    """Run two workers per subject, kill, and wait until ``subjects[0]`` is served again."""
    await served(store)
    load = Load(store, subjects[0])
    workers = [asyncio.create_task(load.worker(s)) for s in subjects for _ in range(2)]
    try:
        async with asyncio.timeout(RECOVERY_BOUND_S):
            await load.loaded.wait()
        load.killed = True
        await asyncio.to_thread(kill)  # type: ignore[arg-type]
        async with asyncio.timeout(RECOVERY_BOUND_S):
            await load.recovered.wait()
    finally:
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), CALL_BOUND_S * 2)
    return load


async def test_a_cluster_primary_killed_under_load(
    redis_cluster_replicated: RedisClusterServers,
) -> None:
    cluster = redis_cluster_replicated
    store = RedisStore(cluster.url, timeout_s=TIMEOUT_S, retry_interval_s=0.2)
    subjects = [f"key-{i}" for i in range(WORKERS // 2)]
    victim = cluster.primary_of(tag(subjects[0]))
    try:
        load = await kill_under_load(store, subjects, victim.kill)
        assert load.failures > 0
        assert max(load.durations) < CALL_BOUND_S
        # the subjects on the promoted replica are served by it
        assert cluster.primary_of(tag(subjects[0])) is not victim
        assert await requests_counted(store, subjects[0]) > 0
        await served(store)
    finally:
        await closed(store)


async def test_a_sentinel_primary_killed_under_load(
    redis_sentinel_failover: SentinelGroup,
) -> None:
    group = redis_sentinel_failover
    store = RedisStore(group.url, timeout_s=TIMEOUT_S, retry_interval_s=0.2)
    subjects = [f"key-{i}" for i in range(WORKERS // 2)]
    try:
        load = await kill_under_load(store, subjects, group.kill_primary)
        assert load.failures > 0
        assert max(load.durations) < CALL_BOUND_S
        await asyncio.to_thread(group.wait_failed_over)
        assert await requests_counted(store, subjects[0]) > 0
        await served(store)
    finally:
        await closed(store)


async def test_no_sentinel_answering_fails_fast(redis_sentinel_failover: SentinelGroup) -> None:
    errors: list[str] = []
    store = RedisStore(
        redis_sentinel_failover.url,
        timeout_s=TIMEOUT_S,
        retry_interval_s=5.0,
        on_error=errors.append,
    )
    try:
        for sentinel in redis_sentinel_failover.sentinels:
            sentinel.stop()
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable):
            await store.cache_get("k")
        with pytest.raises(StoreUnavailable):  # within the retry interval: not tried again
            await store.admit("k1", LIMITS, MINUTE, PERIOD)
        assert time.perf_counter() - started < CALL_BOUND_S
        assert errors == ["cache_get"]
    finally:
        await closed(store)
