"""The policy engines of the registry's profiles: one replica set per distinct policy.

Two profiles whose policy names the same endpoints, model, engine kind and session header share
one :class:`~server.engines.replicas.ReplicaSet` (the same servers: one count of episodes in
flight, one breaker per server). The key holds the whole endpoint entries, not their URLs: a
registry reload that changes an endpoint's timeouts or API key variable gets a set built with
them; a reload that changes nothing keeps the set and what it knows of its replicas' health.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from router_model.episode.special_tokens import SpecialTokenGuard
from router_model.registry import Endpoint, Registry, RouterProfile
from server.engines.factory import build_replica_set
from server.engines.replicas import ReplicaSet
from server.engines.settings import EngineSettings

_Key = tuple[tuple[tuple[str, Endpoint], ...], str, str, str | None]


class EnginePool:
    """The replica set (and its special-token guard) of each profile's policy, all speaking
    through one shared HTTP client."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        ready_timeout_s: float,
        settings: EngineSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ready_timeout_s = ready_timeout_s
        self._settings = settings or EngineSettings()
        self._clock = clock
        self._sets: dict[_Key, tuple[ReplicaSet, SpecialTokenGuard]] = {}

    def for_profile(
        self, registry: Registry, profile: RouterProfile
    ) -> tuple[ReplicaSet, SpecialTokenGuard]:
        policy = profile.policy
        endpoints = tuple((name, registry.endpoint(name)) for name in policy.replica_endpoints)
        key = (endpoints, policy.model, policy.engine, policy.session_header)
        found = self._sets.get(key)
        if found is None:
            replicas = build_replica_set(
                registry, profile, self._client, self._settings, clock=self._clock
            )
            found = self._sets[key] = (replicas, SpecialTokenGuard(replicas.tokenize))
        return found

    def replica_sets(self, registry: Registry) -> dict[str, ReplicaSet]:
        """Each profile's replica set (profiles whose engine cannot be built are left out)."""
        sets: dict[str, ReplicaSet] = {}
        for profile in registry.profiles:
            try:
                sets[profile.name] = self.for_profile(registry, profile)[0]
            except Exception:  # reported by /ready as not ready
                continue
        return sets

    async def poll(self, registry: Registry) -> dict[str, ReplicaSet]:
        """Poll the health of every replica of the registry's profiles once (each poll bounded
        by ``ready_timeout_s``); returns the sets by profile."""
        sets = self.replica_sets(registry)
        distinct = {id(replicas): replicas for replicas in sets.values()}
        await asyncio.gather(
            *(replicas.poll_health(self._ready_timeout_s) for replicas in distinct.values())
        )
        return sets

    async def readiness(self, registry: Registry) -> dict[str, bool]:
        """Per profile: is at least one replica of its policy engine serving? Polls them."""
        sets = await self.poll(registry)
        return {
            profile.name: profile.name in sets
            and any(replica.health_up for replica in sets[profile.name].replicas)
            for profile in registry.profiles
        }

    def status(self, registry: Registry) -> dict[str, dict[str, dict[str, Any]]]:
        """Per profile, each replica's state as last seen (``/ready``)."""
        return {name: replicas.status() for name, replicas in self.replica_sets(registry).items()}

    async def aclose(self) -> None:
        for replicas, _ in self._sets.values():
            await replicas.aclose()
        self._sets.clear()
