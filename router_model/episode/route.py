"""What one routed (upstream) call returned: the seam between the episode loop and the pool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from router_model.registry import ModelSpec

UpstreamStatus = Literal[
    "ok",
    "cached",
    "timeout",
    "http_error",
    "connect_error",
    "bad_response",
    "rate_limited",
    "context_too_long",
    "unavailable",
]
"""``rate_limited``: the model's per-minute limits refused the call; ``context_too_long``: the
prompt plus ``max_tokens`` does not fit its ``context_tokens`` (neither was sent);
``unavailable``: every deployment's circuit breaker is open (not sent either)."""


@dataclass(frozen=True)
class UpstreamReply:
    """The outcome of one upstream chat call; failures are values, never exceptions."""

    model: str  # registry name
    status: UpstreamStatus
    text: str | None  # None unless status is "ok" or "cached"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0  # 0 for a cache hit
    latency_s: float = 0.0
    attempts: int = 1
    error: str | None = None  # one line, for the trace and the logs
    http_status: int | None = None  # the upstream's HTTP status, when one was received
    usage_missing: bool = False  # the upstream reported no usage: tokens (and cost) are 0
    finish_reason: str | None = None
    deployment: str | None = None  # the model's deployment that served the (last) attempt
    shared: bool = False  # another caller's identical call in flight was shared: cost 0

    @property
    def succeeded(self) -> bool:
        return self.status in ("ok", "cached")


class RouteCaller(Protocol):
    """Sends one Router-R1 sub-query (already rendered into the upstream prompt) to a model."""

    async def route_call(self, model: ModelSpec, prompt: str, *, max_tokens: int) -> UpstreamReply:
        """Never raises for upstream failures; bounded by the pool's timeouts and retries."""
        ...
