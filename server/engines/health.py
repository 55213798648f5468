"""Active health of policy engine replicas: ``/health`` polled in the background.

Every ``ROUTER_R1_ENGINE_HEALTH_INTERVAL_S`` the poller asks each replica of the current
registry's profiles for ``/health`` (each bounded by ``ROUTER_R1_READY_TIMEOUT_S``); a replica
whose last poll failed gets no new calls until one succeeds (:mod:`server.engines.replicas`).
After each round it publishes every replica's state: ``router_r1_policy_engine_up{profile,
replica}`` (1 when not known down and its breaker is not open) and
``router_r1_policy_engine_breaker_state{profile,replica}`` (0 closed, 1 half-open, 2 open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from router_model.registry import Registry
from server.engines.breaker import STATE_GAUGE
from server.engines.pool import EnginePool
from server.engines.replicas import ReplicaSet
from server.metrics.metrics import Metrics

logger = logging.getLogger("router_r1.engines")


def publish_replica_states(metrics: Metrics, sets: Mapping[str, ReplicaSet]) -> None:
    """Set the replica gauges of each profile's replica set as it stands now."""
    for profile, replicas in sets.items():
        for replica in replicas.replicas:
            metrics.policy_engine_up(profile, replica.name).set(1 if replica.up else 0)
            state = STATE_GAUGE[replica.breaker.state]
            metrics.policy_engine_breaker_state(profile, replica.name).set(state)


class EngineHealthPoller:
    """The background task of the lifespan; :meth:`poll_once` is one round (tests call it)."""

    def __init__(
        self,
        engines: EnginePool,
        registry: Callable[[], Registry],
        metrics: Metrics,
        *,
        interval_s: float,
    ) -> None:
        self._engines = engines
        self._registry = registry
        self._metrics = metrics
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    async def poll_once(self) -> None:
        sets = await self._engines.poll(self._registry())
        publish_replica_states(self._metrics, sets)
        self.rounds += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="policy-engine-health")

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # a bug must not end the polling
                logger.exception("polling the policy engines' health failed")
            await asyncio.sleep(self._interval_s)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
