"""Timeouts, retries and limits of the upstream pool (plain data; the app maps its settings in)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from router_model.registry import Endpoint
from server.upstream.breaker import BreakerPolicy

PositiveFloat = Annotated[float, Field(gt=0)]


class UpstreamSettings(BaseModel):
    """How the pool talks to upstream endpoints.

    Timeouts: ``connect_timeout_s``/``read_timeout_s`` override the endpoint's own values when set
    (the registry's defaults are connect 5 s, read 120 s); ``read`` bounds each wait for bytes.
    ``total_timeout_s`` bounds a whole ``route_call`` — queueing for a connection slot, every
    attempt and every backoff sleep included. ``passthrough_timeout_s`` bounds a whole ``chat``
    call, streamed or not, to its last byte; ``None`` = no overall bound. Between two chunks of
    a stream at most ``stream_idle_timeout_s`` may pass (or ``read``, if shorter).

    Retries (at most ``max_retries`` after the first try): only what the upstream cannot have
    processed (connect failures, 429, 503 with ``Retry-After``), unless the model opts in to
    more (registry ``retry: {unsafe: true}``; see :mod:`server.upstream.retry`). A retry goes
    to another deployment of the model when there is one (at once), else to the same after a
    backoff: before retry n (1-based) ``uniform(d/2, d)`` with ``d = min(cap, base *
    2**(n-1))``; a ``Retry-After`` up to ``backoff_cap_s`` is waited exactly; a longer one ends
    the retries (the 429/503 is returned). A retry whose sleep would overrun the overall bound
    is not made.

    Circuit breaker of each deployment (:mod:`server.upstream.breaker`): open after
    ``breaker_failures`` consecutive failures, or a share ``breaker_error_ratio`` of failures
    among at least ``breaker_min_calls`` calls in the last ``breaker_window_s``; closed again
    after ``breaker_cooldown_s`` and one successful probe call.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    connect_timeout_s: PositiveFloat | None = None
    """Overrides every endpoint's connect timeout (the registry's default is 5 s)."""
    read_timeout_s: PositiveFloat | None = None
    """Overrides every endpoint's read timeout: each wait for bytes (the registry's default is 120
    s)."""
    total_timeout_s: PositiveFloat = 60.0
    """Bounds one routed sub-query call: queueing, every attempt and every backoff."""
    passthrough_timeout_s: PositiveFloat | None = 600.0
    """Bounds a whole passthrough call, streamed or not, to its last byte (unset: no overall
    bound)."""
    stream_idle_timeout_s: PositiveFloat = 60.0
    """At most this long between two chunks of an upstream stream (or the read timeout, if
    shorter)."""

    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Retries after the first try, only of what the upstream cannot have processed (connect
    failure, 429, 503 with Retry-After) unless a model opts in."""
    backoff_base_s: Annotated[float, Field(ge=0)] = 0.25
    """Backoff before retry n: uniform(d/2, d) with d = min(cap, base * 2**(n-1)); a retry to
    another deployment goes at once."""
    backoff_cap_s: Annotated[float, Field(ge=0)] = 2.0
    """Longest backoff; a Retry-After above it ends the retries."""

    breaker_failures: Annotated[int, Field(gt=0)] = 5
    """Consecutive failures that open a deployment's circuit breaker."""
    breaker_error_ratio: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Share of failed calls over the window that also opens it (given the minimum number of
    calls)."""
    breaker_window_s: PositiveFloat = 30.0
    """The window of the error ratio."""
    breaker_min_calls: Annotated[int, Field(gt=0)] = 10
    """Calls in the window before the error ratio counts."""
    breaker_cooldown_s: PositiveFloat = 30.0
    """How long an open breaker keeps calls off a deployment before one half-open probe."""

    max_connections_per_model: Annotated[int, Field(gt=0)] | None = None  # None: endpoint's
    """Concurrent connections to one model's endpoint (unset: the endpoint's own
    ``max_connections``)."""
    max_connections_total: Annotated[int, Field(gt=0)] = 1000
    """Concurrent upstream connections of the whole process."""
    keepalive_expiry_s: PositiveFloat = 30.0
    """An idle pooled upstream connection is closed after this long."""

    def connect_timeout(self, endpoint: Endpoint) -> float:
        return self.connect_timeout_s or endpoint.connect_timeout_s

    def read_timeout(self, endpoint: Endpoint) -> float:
        return self.read_timeout_s or endpoint.read_timeout_s

    def stream_read_timeout(self, endpoint: Endpoint) -> float:
        """Between two chunks of a stream (and until its headers)."""
        return min(self.read_timeout(endpoint), self.stream_idle_timeout_s)

    def model_limit(self, endpoint: Endpoint) -> int:
        return self.max_connections_per_model or endpoint.max_connections

    def breaker_policy(self) -> BreakerPolicy:
        return BreakerPolicy(
            failures=self.breaker_failures,
            error_ratio=self.breaker_error_ratio,
            window_s=self.breaker_window_s,
            min_calls=self.breaker_min_calls,
            cooldown_s=self.breaker_cooldown_s,
        )

    def backoff_s(self, retry: int, rand: float) -> float:
        """Sleep before retry number ``retry`` (1-based); ``rand`` uniform in [0, 1)."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (retry - 1))
        return float(ceiling * (0.5 + 0.5 * rand))


class CacheSettings(BaseModel):
    """The sub-query cache (``ROUTER_R1_CACHE_*``): deterministic upstream calls only."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    enabled: bool = True
    """Answer deterministic sub-queries (temperature 0 with a seed) from the cache."""
    ttl_s: PositiveFloat = 3600.0
    """How long a cached sub-query reply is served."""
    max_entries: Annotated[int, Field(gt=0)] = 10_000
    """In-memory store only; with Redis the bound is the TTL and Redis' own maxmemory policy."""
    max_entry_bytes: Annotated[int, Field(gt=0)] = 64 * 1024
    """A larger reply is not cached."""
    coalesce: bool = True
    """Identical deterministic sub-queries in flight at once share one upstream call
    (``server.upstream.coalesce``), cache or no cache."""
