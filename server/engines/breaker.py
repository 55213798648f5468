"""A circuit breaker per policy engine replica: passive health, learnt from the calls it serves.

``closed``: calls go through. ``failure_threshold`` consecutive failures (connect errors,
5xx, timeouts: :class:`~router_model.episode.engine.EngineUnavailable`) open it: for
``cooldown_s`` new episodes are not given the replica and episodes on it move elsewhere. Then
it is ``half_open``: ONE call (the probe) may go there; its success closes the breaker, its
failure opens it for another cooldown, and a probe that ends without a verdict (cancelled)
lets the next call probe. A reply that is an error of the request (4xx) is a success here:
the server answered.

The state is computed from the clock when read, so nothing has to run when the cooldown ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "half_open", "open"]
STATE_GAUGE: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}
"""The values of the ``router_r1_policy_engine_breaker_state`` gauge."""


class CircuitBreaker:
    """See the module docstring; not thread-safe (one event loop)."""

    def __init__(
        self,
        *,
        failure_threshold: int = 1,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.opened_count = 0  # how many times it opened (for /ready)

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cooldown_s:
            return "open"
        return "half_open"

    @property
    def opened_at(self) -> float | None:
        """When it last opened (clock time), or None while closed."""
        return self._opened_at

    def available(self) -> bool:
        """May a new call go to this replica now?"""
        state = self.state
        return state == "closed" or (state == "half_open" and not self._probing)

    def call_started(self) -> bool:
        """A call is going to the replica; True when it is the half-open probe."""
        if self.state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        tripped = self._opened_at is not None or self._failures >= self.failure_threshold
        if tripped and self.state != "open":  # a failure seen while open keeps its cooldown
            self._opened_at = self._clock()
            self.opened_count += 1
        self._probing = False

    def probe_abandoned(self) -> None:
        """The probe ended without a verdict (cancelled): the next call may probe."""
        self._probing = False
