"""The long-lived objects of one gateway process, built by the app's lifespan (``server.app``).

:class:`AppState` is flat and typed: request handlers reach each object directly
(``server.deps``), never through another object's attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

from router_model.episode.route import RouteCaller
from router_model.episode.runner import EpisodeRunner
from router_model.protocol.grammar import action_grammar
from router_model.registry import Registry, RouterProfile
from server.auth.access import AccessControl
from server.auth.key_watch import KeyFileWatcher
from server.background import BackgroundWork
from server.engines.health import EngineHealthPoller
from server.engines.pool import EnginePool
from server.lifecycle.recorder import OutcomeRecorder
from server.metrics.metrics import Metrics
from server.operations.traces import TraceArchive
from server.registry_watch import RegistryWatcher
from server.settings import Settings
from server.store.base import SharedStore
from server.telemetry import TraceExporter
from server.upstream import UpstreamPool
from server.upstream.cache import CachingRouteCaller


def final_turn_grammar(profile: RouterProfile) -> str | None:
    """A ``grammar: true`` profile's final turn may only answer: the loop would not execute a
    route there anyway (spec: the final turn's route is not run), and a prompted policy that
    writes one ends without an answer. Trained checkpoints run without a grammar."""
    return action_grammar(()) if profile.grammar else None


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


class RunnerCache:
    """The episode runner of each (registry version, profile, cache wanted), built once."""

    def __init__(
        self, engines: EnginePool, upstream: RouteCaller, cached: RouteCaller | None
    ) -> None:
        self._engines = engines
        self._upstream = upstream
        self._cached = cached
        self._runners: dict[tuple[int, str, bool], EpisodeRunner] = {}

    def runner(
        self, registry: Registry, profile: RouterProfile, *, cache: bool = True
    ) -> EpisodeRunner:
        """Its upstream calls go through the sub-query cache unless ``cache`` is False (the
        request opted out) or the cache is off."""
        key = (id(registry), profile.name, cache)
        runner = self._runners.get(key)
        if runner is None or runner.registry is not registry:
            if len(self._runners) > 64:  # registries were reloaded: drop stale runners
                self._runners.clear()
            engine, guard = self._engines.for_profile(registry, profile)
            caller = self._cached if cache and self._cached is not None else self._upstream
            runner = EpisodeRunner(
                engine,
                caller,
                registry,
                profile,
                grammar=profile_grammar(registry, profile),
                final_grammar=final_turn_grammar(profile),
                guard=guard,
                engines=engine,  # each episode pinned to one replica
            )
            self._runners[key] = runner
        return runner


@dataclass(frozen=True)
class AppState:
    """Everything one gateway process holds, built in dependency order by the lifespan."""

    settings: Settings
    registry: RegistryHolder
    metrics: Metrics
    store: SharedStore
    access: AccessControl
    traces: TraceArchive
    background: BackgroundWork
    recorder: OutcomeRecorder
    upstream: UpstreamPool
    route_cache: CachingRouteCaller | None
    engines: EnginePool
    runners: RunnerCache
    registry_watcher: RegistryWatcher | None
    key_watcher: KeyFileWatcher | None
    engine_health: EngineHealthPoller | None = None
    telemetry: TraceExporter | None = None
    """The OpenTelemetry span exporter; None when tracing is off."""
