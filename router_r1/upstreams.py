"""The upstream clients a training run calls its routes through: the gateway's own pool.

Named by ``router-r1 train`` (:mod:`router_model.training.upstreams`) and imported by name in
the training process, so the trainers never import the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from router_model.episode.route import RouteCaller
from router_model.registry import Registry
from server.upstream import UpstreamPool, UpstreamSettings

UPSTREAMS = "router_r1.upstreams:registry_upstreams"


@asynccontextmanager
async def registry_upstreams(
    registry: Registry, total_timeout_s: float
) -> AsyncIterator[RouteCaller]:
    """The registry's upstream pool, each routed call bounded by ``total_timeout_s``."""

    def current() -> Registry:
        return registry

    settings = UpstreamSettings(total_timeout_s=total_timeout_s)
    async with UpstreamPool(current, settings) as pool:
        yield pool
