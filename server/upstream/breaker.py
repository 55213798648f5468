"""A circuit breaker per deployment: stop sending calls to a deployment that keeps failing.

Closed (calls go through) until ``failures`` consecutive failures, or a share of failures of at
least ``error_ratio`` among the calls of the last ``window_s`` (once there were ``min_calls``):
then open for ``cooldown_s`` (no calls), then half-open: exactly one probe call goes through;
its success closes the breaker, its failure opens it for another cooldown. What counts as a
failure is the caller's decision (:attr:`CallFailure.counts_against_deployment`): the server did
not answer or answered 5xx; a 4xx is the request's, not the server's. A probe that ends without
an outcome (the caller was cancelled) lets the next call probe.

The window is ten buckets of ``window_s / 10`` (constant memory and CPU per call, whatever
the rate). The clock is injected (tests drive it by hand).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

BreakerState = Literal["closed", "half_open", "open"]
STATE_VALUES: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}
"""The metric's encoding: ``router_r1_upstream_breaker_state``."""

_BUCKETS = 10


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 5
    error_ratio: float = 0.5
    window_s: float = 30.0
    min_calls: int = 10
    cooldown_s: float = 30.0


class CircuitBreaker:
    """See the module docstring. Not thread-safe (one event loop)."""

    __slots__ = (
        "_bucket_s",
        "_buckets",
        "_clock",
        "_consecutive",
        "_on_change",
        "_opened_at",
        "_probing",
        "policy",
        "state",
    )

    def __init__(
        self,
        policy: BreakerPolicy,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.policy = policy
        self.state: BreakerState = "closed"
        self._clock = clock
        self._on_change = on_change
        self._consecutive = 0
        self._opened_at = 0.0
        self._probing = False
        self._bucket_s = policy.window_s / _BUCKETS
        # [bucket number, calls, failures] per slot of the ring
        self._buckets = [[-1, 0, 0] for _ in range(_BUCKETS)]

    # ------------------------------------------------------------------ admission

    def available(self) -> bool:
        """Whether a call could go through now (without taking the half-open probe)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            return self._clock() >= self._opened_at + self.policy.cooldown_s
        return not self._probing

    def begin(self) -> bool:
        """Take the right to send one call: always when closed; the one probe when the
        cooldown has passed (or a probe was abandoned); never otherwise."""
        if self.state == "closed":
            return True
        if not self.available():
            return False
        if self.state == "open":
            self._set("half_open")
        self._probing = True
        return True

    def retry_after_s(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self._opened_at + self.policy.cooldown_s - self._clock())

    # ------------------------------------------------------------------ outcomes

    def success(self) -> None:
        if self.state == "half_open":
            self._probing = False
            self._consecutive = 0
            self._reset_window()
            self._set("closed")
        elif self.state == "closed":
            self._consecutive = 0
            self._count(failed=False)

    def failure(self) -> None:
        if self.state == "half_open":
            self._probing = False
            self._open()
        elif self.state == "closed":
            self._consecutive += 1
            calls, failures = self._count(failed=True)
            policy = self.policy
            if self._consecutive >= policy.failures or (
                calls >= policy.min_calls and failures >= policy.error_ratio * calls
            ):
                self._open()
        # open: a call that started before it opened; the cooldown stands

    def abandoned(self) -> None:
        """A call ended without an outcome (cancelled): a half-open probe may be retaken."""
        if self.state == "half_open":
            self._probing = False

    # ------------------------------------------------------------------ internals

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._consecutive = 0
        self._reset_window()
        self._set("open")

    def _set(self, state: BreakerState) -> None:
        if state != self.state:
            self.state = state
            if self._on_change is not None:
                self._on_change(state)

    def _reset_window(self) -> None:
        for bucket in self._buckets:
            bucket[0] = -1

    def _count(self, *, failed: bool) -> tuple[int, int]:
        """Add one call to the window; on a failure, the window's (calls, failures)."""
        number = int(self._clock() // self._bucket_s) if self._bucket_s > 0 else 0
        bucket = self._buckets[number % _BUCKETS]
        if bucket[0] != number:
            bucket[0], bucket[1], bucket[2] = number, 0, 0
        bucket[1] += 1
        if not failed:
            return 0, 0
        bucket[2] += 1
        oldest = number - _BUCKETS + 1
        calls = failures = 0
        for start, bucket_calls, bucket_failures in self._buckets:
            if start >= oldest:
                calls += bucket_calls
                failures += bucket_failures
        return calls, failures
