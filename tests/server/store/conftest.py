"""Every store implementation, for the contract tests: in memory, and real Redis as one
``redis-server``, a 3-primary Redis Cluster, and a Sentinel-managed primary."""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator

import pytest

from server.store import MemoryStore, RedisStore, SharedStore
from tests.servers.fixtures import redis_server
from tests.servers.redis_cluster import RedisClusterServers
from tests.servers.redis_sentinel import SentinelGroup
from tests.servers.redis_server import RedisServer
from tests.servers.redis_topologies import (
    redis_cluster,
    redis_cluster_replicated,
    redis_sentinel,
    redis_sentinel_failover,
)

__all__ = [
    "any_store",
    "redis_cluster",
    "redis_cluster_replicated",
    "redis_sentinel",
    "redis_sentinel_failover",
    "redis_server",
]

TRACE_MAX_ENTRIES = 100


def _url(request: pytest.FixtureRequest) -> str:
    """The URL of the Redis the test's parameter names, started (or emptied) for it."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    if request.param == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster.flush()
        return cluster.url
    group: SentinelGroup = request.getfixturevalue("redis_sentinel")
    group.flush()
    return group.url


@pytest.fixture(params=["memory", "redis", "cluster", "sentinel"])
async def any_store(request: pytest.FixtureRequest) -> AsyncIterator[SharedStore]:
    store: SharedStore
    if request.param == "memory":
        store = MemoryStore(cache_max_entries=100, trace_max_entries=TRACE_MAX_ENTRIES)
    else:
        # generous: 50 calls at once open 50 connections (each asking a Sentinel where the
        # primary is) on a busy 2-core machine; these tests are about semantics, not speed
        store = RedisStore(_url(request), timeout_s=3.0, trace_max_entries=TRACE_MAX_ENTRIES)
    with warnings.catch_warnings():
        if request.param == "sentinel":
            # redis-py 8.1's Sentinel pool can drop a socket it was connecting while many
            # connections open at once on a loaded machine (seen in 2 of ~8 CI runs, never
            # in 33 targeted runs); collected mid-test, its ResourceWarning failed a test
            # about spend semantics. Only for Sentinel, only unclosed raw sockets: the
            # store's own pools are closed by aclose() below.
            warnings.filterwarnings("ignore", "unclosed <socket.socket", ResourceWarning)
            gc.collect()  # an earlier test's garbage is not pinned on this one
        try:
            yield store
        finally:
            await store.aclose()
            if request.param == "sentinel":
                gc.collect()
