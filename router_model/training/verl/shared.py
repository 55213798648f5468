"""What every trajectory of one veRL agent-loop worker shares: registry, tokenizer, upstreams.

The upstreams come from the factory the entry point named (:mod:`router_model.training.upstreams`).

veRL builds a new agent-loop object per trajectory, so the long-lived parts live here, one
per (registry file, profile, event loop) of the worker process: the upstream pool's HTTP
client belongs to the event loop that created it.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, ClassVar

from router_model.registry import Registry
from router_model.training.engine import HFTokenizer
from router_model.training.rollout import RolloutCore
from router_model.training.upstreams import resolve_upstreams


@dataclass
class SharedRollout:
    core: RolloutCore
    # holds the upstream client open for the worker's life (veRL gives no shutdown hook)
    resources: AsyncExitStack = field(default_factory=AsyncExitStack)

    _instances: ClassVar[dict[tuple[str, str, int], SharedRollout]] = {}

    @classmethod
    async def get(
        cls,
        registry_path: str,
        profile: str,
        tokenizer: Any,
        *,
        upstreams: str,
        upstream_total_timeout_s: float = 60.0,
    ) -> SharedRollout:
        """``upstreams``: the ``module:factory`` building the RouteCaller (see
        :mod:`router_model.training.upstreams`)."""
        loop = asyncio.get_running_loop()
        key = (registry_path, profile, id(loop))
        found = cls._instances.get(key)
        if found is not None:
            return found
        registry = Registry.from_file(registry_path)
        factory = resolve_upstreams(upstreams)
        resources = AsyncExitStack()
        caller = await resources.enter_async_context(factory(registry, upstream_total_timeout_s))
        found = cls._instances.get(key)  # another trajectory may have built one meanwhile
        if found is not None:
            await resources.aclose()
            return found
        core = RolloutCore.for_profile(registry, profile, caller, HFTokenizer(tokenizer))
        shared = cls._instances[key] = cls(core, resources)
        return shared
