"""The long-lived objects of one gateway process, built by the app's lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from router_model.protocol.grammar import action_grammar
from router_model.registry import Endpoint, Registry, RouterProfile
from server.engines.base import PolicyEngine
from server.engines.factory import build_policy_engine
from server.episode.loop import EpisodeRunner
from server.operations.bundle import Operations
from server.settings import Settings
from server.upstream import UpstreamPool


def profile_grammar(registry: Registry, profile: RouterProfile) -> str | None:
    """The action grammar of a ``grammar: true`` profile, naming its pool as this registry
    version defines it (a reload rebuilds the runners, so a new model is valid at once)."""
    if not profile.grammar:
        return None
    return action_grammar(model.name for model in registry.pool(profile))


class RegistryHolder:
    """The current registry; a reload swaps the whole object between requests."""

    def __init__(self, registry: Registry) -> None:
        self._current = registry

    def get(self) -> Registry:
        return self._current

    def swap(self, registry: Registry) -> None:
        self._current = registry


class EnginePool:
    """One policy engine client per distinct (endpoint, model, engine kind), sharing one client.

    Keyed by the whole endpoint entry, not its URL: a registry reload that changes its
    timeouts or API key variable gets an engine built with them."""

    def __init__(self, client: httpx.AsyncClient, ready_timeout_s: float) -> None:
        self._client = client
        self._ready_timeout_s = ready_timeout_s
        self._engines: dict[tuple[Endpoint, str, str], PolicyEngine] = {}

    def for_profile(self, registry: Registry, profile: RouterProfile) -> PolicyEngine:
        endpoint = registry.endpoint(profile.policy.endpoint)
        key = (endpoint, profile.policy.model, profile.policy.engine)
        engine = self._engines.get(key)
        if engine is None:
            engine = build_policy_engine(registry, profile, self._client)
            self._engines[key] = engine
        return engine

    async def readiness(self, registry: Registry) -> dict[str, bool]:
        """Per profile: is its policy engine serving? Bounded by ``ready_timeout_s``."""

        async def probe(profile: RouterProfile) -> bool:
            try:
                engine = self.for_profile(registry, profile)
                async with asyncio.timeout(self._ready_timeout_s):
                    return await engine.ready()
            except Exception:
                return False

        profiles = registry.profiles
        results = await asyncio.gather(*(probe(p) for p in profiles))
        return {p.name: ok for p, ok in zip(profiles, results, strict=True)}

    async def aclose(self) -> None:
        for engine in self._engines.values():
            await engine.aclose()
        self._engines.clear()


@dataclass
class ServingState:
    """What request handlers reach through ``request.app.state.serving``."""

    settings: Settings
    registry_holder: RegistryHolder
    upstream: UpstreamPool
    engines: EnginePool
    ops: Operations
    _runners: dict[tuple[int, str, bool], EpisodeRunner] = field(default_factory=dict)

    def registry(self) -> Registry:
        return self.registry_holder.get()

    def runner(
        self, registry: Registry, profile: RouterProfile, *, cache: bool = True
    ) -> EpisodeRunner:
        """The episode runner of ``profile`` under this registry version (cached); its upstream
        calls go through the sub-query cache unless ``cache`` is False (the request opted out)."""
        key = (id(registry), profile.name, cache)
        runner = self._runners.get(key)
        if runner is None or runner.registry is not registry:
            if len(self._runners) > 64:  # registries were reloaded: drop stale runners
                self._runners.clear()
            engine = self.engines.for_profile(registry, profile)
            route_caller = self.ops.route_caller(self.upstream, cache=cache)
            runner = EpisodeRunner(
                engine, route_caller, registry, profile, grammar=profile_grammar(registry, profile)
            )
            self._runners[key] = runner
        return runner
