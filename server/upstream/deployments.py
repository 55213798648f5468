"""The live state of every model deployment, and which one gets the next call.

Each deployment (registry :class:`Deployment`, keyed by model and deployment name) has a
circuit breaker, a count of calls in flight and the semaphore bounding its connections (the
endpoint's ``max_connections``, or the settings' per-model override). A call goes to a
deployment whose breaker lets it through, the one with the fewest calls in flight per unit of
``weight`` (ties drawn at random in proportion to the weights, so idle deployments share calls
by weight); a retry goes to one not tried yet when there is one. State survives a registry
reload; a deployment whose endpoint or upstream model changed starts afresh.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from router_model.registry import Deployment, ModelSpec
from server.upstream.breaker import BreakerPolicy, BreakerState, CircuitBreaker


@dataclass(eq=False)
class DeploymentSlot:
    """One deployment's live state."""

    model: str
    deployment: Deployment
    breaker: CircuitBreaker
    in_flight: int = 0
    limit: int = 0
    semaphore: asyncio.Semaphore = field(default_factory=asyncio.Semaphore)

    @property
    def name(self) -> str:
        return self.deployment.name

    def bounded(self, limit: int) -> asyncio.Semaphore:
        """The connection semaphore, resized when the limit changed (a registry reload)."""
        if limit != self.limit:
            self.limit = limit
            self.semaphore = asyncio.Semaphore(limit)
        return self.semaphore


BreakerListener = Callable[[str, str, BreakerState], None]
"""Told (model, deployment, new state) on every breaker transition (the metric)."""


class Deployments:
    """See the module docstring. One per upstream pool; one event loop."""

    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: BreakerListener | None = None,
        rand: random.Random | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._on_change = on_change
        self._random = rand or random.Random()
        self._slots: dict[tuple[str, str], DeploymentSlot] = {}
        self._by_model: dict[str, tuple[tuple[Deployment, ...], list[DeploymentSlot]]] = {}

    def slots(self, model: ModelSpec) -> list[DeploymentSlot]:
        """The model's deployments' state, in registry order."""
        found = self._by_model.get(model.name)
        if found is not None and found[0] is model.deployments:
            return found[1]
        slots = [self._slot(model.name, d) for d in model.deployments]
        self._by_model[model.name] = (model.deployments, slots)
        return slots

    def choose(self, model: ModelSpec, tried: set[str]) -> DeploymentSlot | None:
        """The deployment for the next call, or ``None`` when every breaker is open."""
        slots = self.slots(model)
        if len(slots) == 1:  # the common case: nothing to choose
            only = slots[0]
            return only if only.breaker.available() else None
        candidates = [s for s in slots if s.name not in tried and s.breaker.available()]
        if not candidates:  # every other one was tried: the same one again
            candidates = [s for s in slots if s.breaker.available()]
            if not candidates:
                return None
        if len(candidates) == 1:
            return candidates[0]
        load = [s.in_flight / s.deployment.weight for s in candidates]
        least = min(load)
        ties = [s for s, x in zip(candidates, load, strict=True) if x == least]
        if len(ties) == 1:
            return ties[0]
        return self._random.choices(ties, weights=[s.deployment.weight for s in ties])[0]

    def has_other(self, model: ModelSpec, tried: set[str]) -> bool:
        """Whether a deployment not tried yet could take a call now."""
        slots = self.slots(model)
        return len(slots) > 1 and any(s.name not in tried and s.breaker.available() for s in slots)

    def retry_after_s(self, model: ModelSpec) -> float:
        """Seconds until the first of the model's open breakers lets a probe through."""
        return min((s.breaker.retry_after_s() for s in self.slots(model)), default=0.0)

    def states(self) -> dict[str, dict[str, BreakerState]]:
        """model -> deployment -> breaker state, for ``/ready`` and the metric."""
        states: dict[str, dict[str, BreakerState]] = {}
        for (model, name), slot in self._slots.items():
            states.setdefault(model, {})[name] = slot.breaker.state
        return states

    def _slot(self, model: str, deployment: Deployment) -> DeploymentSlot:
        key = (model, deployment.name)
        slot = self._slots.get(key)
        same_target = slot is not None and (
            slot.deployment.endpoint,
            slot.deployment.upstream_model,
        ) == (deployment.endpoint, deployment.upstream_model)
        if slot is None or not same_target:
            if len(self._slots) > 4096:  # reloads renamed deployments over and over
                self._slots.clear()
            slot = self._slots[key] = DeploymentSlot(model, deployment, self._breaker(key))
            if self._on_change is not None:
                self._on_change(model, deployment.name, "closed")
        else:
            assert slot is not None
            slot.deployment = deployment  # a new weight or pricing
        return slot

    def _breaker(self, key: tuple[str, str]) -> CircuitBreaker:
        listener = self._on_change
        if listener is None:
            return CircuitBreaker(self._policy, self._clock)
        model, name = key

        def changed(state: BreakerState) -> None:
            listener(model, name, state)

        return CircuitBreaker(self._policy, self._clock, changed)
