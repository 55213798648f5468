"""The episode runner: one per profile (and registry version), shared by every request; it
starts :class:`~router_model.episode.loop.EpisodeRun` s (the loop's semantics are documented
in :mod:`router_model.episode.loop`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from router_model.episode.engine import EpisodeEngines, PolicyEngine
from router_model.episode.events import EpisodeEvent
from router_model.episode.loop import EpisodeRun
from router_model.episode.result import EpisodeResult
from router_model.episode.route import RouteCaller
from router_model.episode.settings import PolicyOverrides, resolve_settings
from router_model.episode.special_tokens import SpecialTokenGuard
from router_model.registry import Registry, RouterProfile


class EpisodeRunner:
    """Runs Router-R1 episodes for one profile; safe to share between requests.

    ``guard`` neutralises special-token strings with the engine's tokenizer; share one per
    engine (it remembers what it asked). ``engines``: where each episode gets its own engine
    (a replica set); without it every episode uses ``engine``.
    """

    def __init__(
        self,
        engine: PolicyEngine,
        route_caller: RouteCaller,
        registry: Registry,
        profile: RouterProfile,
        clock: Callable[[], float] = time.perf_counter,
        *,
        grammar: str | None = None,
        final_grammar: str | None = None,
        guard: SpecialTokenGuard | None = None,
        engines: EpisodeEngines | None = None,
    ) -> None:
        self.engine = engine
        self.engines = engines
        self.route_caller = route_caller
        self.registry = registry
        self.profile = profile
        self.clock = clock
        self.grammar = grammar
        self.final_grammar = final_grammar
        self.guard = guard or SpecialTokenGuard(engine.tokenize)
        self.template = registry.policy_template(profile)
        self.resolver = registry.resolver(profile)

    def start(
        self,
        question: str,
        overrides: PolicyOverrides | None = None,
        *,
        request_id: str | None = None,
    ) -> EpisodeRun:
        """A new episode; play it with :meth:`EpisodeRun.events`."""
        settings = resolve_settings(
            self.profile,
            overrides or PolicyOverrides(),
            grammar=self.grammar,
            final_grammar=self.final_grammar,
        )
        return EpisodeRun(self, question, settings, request_id or f"ep-{uuid.uuid4().hex}")

    def run(
        self,
        question: str,
        overrides: PolicyOverrides | None = None,
        *,
        request_id: str | None = None,
    ) -> AsyncGenerator[EpisodeEvent, None]:
        """The episode's events; the last one is :class:`EpisodeFinished`."""
        return self.start(question, overrides, request_id=request_id).events()

    async def run_to_end(
        self,
        question: str,
        overrides: PolicyOverrides | None = None,
        *,
        request_id: str | None = None,
    ) -> EpisodeResult:
        """Run the episode without streaming and return its result."""
        run = self.start(question, overrides, request_id=request_id)
        async with aclosing(run.events()) as events:
            async for _ in events:
                pass
        return run.result()
