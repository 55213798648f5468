"""The engine pool: one replica set per distinct policy, kept across reloads that keep it."""

from __future__ import annotations

import httpx

from server.engines.pool import EnginePool
from tests.fakes.replica_hosts import ReplicaHosts, replica_registry


async def test_a_reload_that_keeps_the_replicas_keeps_what_is_known_of_them() -> None:
    hosts = ReplicaHosts.of(["a", "b"])
    hosts.down.add("b")
    async with httpx.AsyncClient(transport=hosts) as client:
        pool = EnginePool(client, ready_timeout_s=1.0)
        first = replica_registry(["a", "b"])
        assert await pool.readiness(first) == {"router-r1": True}
        replicas, _ = pool.for_profile(first, first.profiles[0])
        assert [r.health_up for r in replicas.replicas] == [True, False]
        again = replica_registry(["a", "b"])  # a reload that changed nothing here
        assert pool.for_profile(again, again.profiles[0])[0] is replicas
        status = pool.status(again)["router-r1"]
        assert (status["a"]["health"], status["b"]["health"]) == ("up", "down")
        fewer = replica_registry(["a"])
        assert pool.for_profile(fewer, fewer.profiles[0])[0] is not replicas
        hosts.down.add("a")
        assert await pool.readiness(fewer) == {"router-r1": False}
        await pool.aclose()
