"""Fixtures starting a real Redis Cluster or Sentinel group; a conftest re-exports the ones its
tests use. The shared ones (one per test session) are for tests that only read and write keys:
whoever uses them empties them first; tests that kill a node get their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.redis_cluster import RedisClusterServers
from tests.servers.redis_sentinel import SentinelGroup


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """Three primaries, no replicas, shared by the session."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_replicated(tmp_path: Path) -> Iterator[RedisClusterServers]:
    """Three primaries with a replica each, for one test (a primary may be killed)."""
    cluster = RedisClusterServers(tmp_path / "cluster", replicas_per_primary=1).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A primary, a replica and one Sentinel, shared by the session."""
    group = SentinelGroup(tmp_path_factory.mktemp("redis-sentinel")).start()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def redis_sentinel_failover(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A primary, a replica and three Sentinels, for one test (the primary may be killed)."""
    group = SentinelGroup(tmp_path / "sentinel", sentinels=3).start()
    try:
        yield group
    finally:
        group.stop()
