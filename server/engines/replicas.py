"""Policy engine replicas: several servers of one checkpoint behind the one PolicyEngine port.

A profile's ``policy.endpoints`` lists replicas (a single ``endpoint`` is a set of one). Each
episode gets its own :class:`~server.engines.episode_engine.EpisodeEngine` from
:meth:`ReplicaSet.episode_engine`; at its first call it is pinned to the healthy replica with
the fewest episodes in flight (ties rotate) and sends every turn there, so each turn
re-prefills only its new tokens (the server keeps the episode's prefix). If that replica fails,
the episode moves to another healthy one and the trace says so (``RouteStep.failover_from``).

Health, per replica:

- passive: a :class:`~server.engines.breaker.CircuitBreaker` fed by every call (connect
  errors, 5xx and timeouts open it for a cooldown, then one half-open probe);
- active: ``GET /health`` polled in the background (:mod:`server.engines.health`) and by
  ``/ready``; a replica whose last poll failed gets no new calls.

A replica is *available* when both allow it. When none is, a call still goes to the one that
failed longest ago rather than being refused: with a single replica that is how a profile
behaved before replica sets existed, and a server that is really down refuses the connection
at once.

``selection="round_robin"`` sends every call to the next available replica, with no affinity:
only for comparisons (``bench/bench_replicas.py``); it is what a plain load balancer does.

Every engine request of an episode carries the session header (``session_header``: the
episode id as value), so that an external prefix-aware router in front of several servers
(vLLM production-stack's session router, llm-d) can keep an episode on one server when the
profile names that router as its one endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from router_model.episode.engine import Generation, GenerationChunk, GenerationParams, PolicyEngine
from server.engines.breaker import CircuitBreaker
from server.engines.episode_engine import EpisodeEngine

SelectionMode = Literal["affinity", "round_robin"]


class SessionEngine(PolicyEngine, Protocol):
    """A policy engine that can add headers to its requests (the session header)."""

    def with_headers(self, headers: Mapping[str, str]) -> PolicyEngine: ...


@dataclass(eq=False)
class Replica:
    """One server of a replica set, and what the gateway knows of its health."""

    name: str  # the registry endpoint name: the ``replica`` label of traces and metrics
    engine: SessionEngine
    breaker: CircuitBreaker
    in_flight: int = 0  # episodes pinned here now
    health_up: bool | None = None  # the last /health poll; None before the first

    @property
    def available(self) -> bool:
        """May a new call go here now (health not known to be down, breaker allows)?"""
        return self.health_up is not False and self.breaker.available()

    @property
    def up(self) -> bool:
        """The ``router_r1_policy_engine_up`` value: not known down and breaker not open."""
        return self.health_up is not False and self.breaker.state != "open"

    def status(self) -> dict[str, Any]:
        health = "unknown" if self.health_up is None else ("up" if self.health_up else "down")
        return {
            "up": self.up,
            "health": health,
            "breaker": self.breaker.state,
            "breaker_opened": self.breaker.opened_count,
            "episodes_in_flight": self.in_flight,
        }


class ReplicaSet:
    """The replicas of one policy; a :class:`PolicyEngine` itself for calls that belong to no
    episode (the special-token guard's tokenization), which go to any available replica."""

    def __init__(
        self,
        replicas: Sequence[Replica],
        *,
        session_header: str | None = None,
        selection: SelectionMode = "affinity",
    ) -> None:
        if not replicas:
            raise ValueError("a replica set needs at least one replica")
        names = [replica.name for replica in replicas]
        if len(set(names)) != len(names):
            raise ValueError(f"replica names must be distinct: {names}")
        self.replicas = tuple(replicas)
        self.session_header = session_header
        self.selection: SelectionMode = selection
        self._rotation = 0

    # ------------------------------------------------------------------ selection

    def choose(self, exclude: Collection[str] = ()) -> Replica | None:
        """The replica a call should go to, none of ``exclude``: the available one with the
        fewest episodes in flight (round-robin mode: the next available one); when none is
        available, the one that failed longest ago. None when every replica is excluded."""
        candidates = [replica for replica in self.replicas if replica.name not in exclude]
        if not candidates:
            return None
        start = self._rotation % len(candidates)
        self._rotation += 1
        rotated = candidates[start:] + candidates[:start]  # ties go round
        available = [replica for replica in rotated if replica.available]
        if available:
            if self.selection == "round_robin":
                return available[0]
            return min(available, key=lambda replica: replica.in_flight)
        return min(
            rotated,
            key=lambda replica: (replica.health_up is False, replica.breaker.opened_at or 0.0),
        )

    def episode_engine(self, episode_id: str) -> EpisodeEngine:
        """The engine of one episode (pinned at its first call; see the module docstring)."""
        headers = {self.session_header: episode_id} if self.session_header else {}
        return EpisodeEngine(self, headers)

    def status(self) -> dict[str, dict[str, Any]]:
        return {replica.name: replica.status() for replica in self.replicas}

    async def poll_health(self, timeout_s: float) -> None:
        """Ask every replica's ``/health`` (each bounded by ``timeout_s``) and remember it."""

        async def poll(replica: Replica) -> None:
            try:
                async with asyncio.timeout(timeout_s):
                    replica.health_up = await replica.engine.ready()
            except Exception:
                replica.health_up = False

        await asyncio.gather(*(poll(replica) for replica in self.replicas))

    # ------------------------------------------------------------------ PolicyEngine

    async def chat_prompt_ids(self, user_message: str) -> list[int]:
        async with self._one_call() as engine:
            return await engine.chat_prompt_ids(user_message)

    async def tokenize(self, text: str) -> list[int]:
        async with self._one_call() as engine:
            return await engine.tokenize(text)

    async def detokenize(self, ids: Sequence[int]) -> str:
        async with self._one_call() as engine:
            return await engine.detokenize(ids)

    async def generate(self, prompt_ids: Sequence[int], params: GenerationParams) -> Generation:
        async with self._one_call() as engine:
            return await engine.generate(prompt_ids, params)

    async def stream_generate(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> AsyncIterator[GenerationChunk]:
        async with (
            self._one_call() as engine,
            contextlib.aclosing(engine.stream_generate(prompt_ids, params)) as chunks,
        ):
            async for chunk in chunks:
                yield chunk

    async def ready(self) -> bool:
        """Whether any replica is serving (asks each; never raises)."""
        results = await asyncio.gather(
            *(replica.engine.ready() for replica in self.replicas), return_exceptions=True
        )
        return any(result is True for result in results)

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.engine.aclose()

    @contextlib.asynccontextmanager
    async def _one_call(self) -> AsyncIterator[EpisodeEngine]:
        engine = EpisodeEngine(self, {})
        try:
            yield engine
        finally:
            await engine.aclose()
