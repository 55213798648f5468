"""What every trajectory of one veRL agent-loop worker shares: registry, tokenizer, upstreams.

veRL builds a new agent-loop object per trajectory, so the long-lived parts live here, one
per (registry file, profile, event loop) of the worker process: the upstream pool's HTTP
client belongs to the event loop that created it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from router_model.registry import Registry
from router_model.training.engine import HFTokenizer
from router_model.training.rollout import RolloutCore
from server.upstream import UpstreamPool, UpstreamSettings


@dataclass
class SharedRollout:
    core: RolloutCore
    pool: UpstreamPool

    _instances: ClassVar[dict[tuple[str, str, int], SharedRollout]] = {}

    @classmethod
    async def get(
        cls,
        registry_path: str,
        profile: str,
        tokenizer: Any,
        *,
        upstream_total_timeout_s: float = 60.0,
    ) -> SharedRollout:
        loop = asyncio.get_running_loop()
        key = (registry_path, profile, id(loop))
        found = cls._instances.get(key)
        if found is not None:
            return found
        registry = Registry.from_file(registry_path)
        settings = UpstreamSettings(total_timeout_s=upstream_total_timeout_s)
        pool = UpstreamPool(lambda: registry, settings)
        core = RolloutCore.for_profile(registry, profile, pool, HFTokenizer(tokenizer))
        # no await since the look-up: no other coroutine can have built one meanwhile
        shared = cls._instances[key] = cls(core, pool)
        return shared
