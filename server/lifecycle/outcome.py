"""What one finished request was, for everything that records it: one typed value."""

from __future__ import annotations

from dataclasses import dataclass

from router_model.episode.trace import RouterTrace
from server.auth.access import Caller
from server.errors import APIError
from server.store.base import Reservation
from server.telemetry.propagation import ActiveTrace


@dataclass(frozen=True)
class RequestOutcome:
    """Emitted once per chat request by :meth:`RequestLifecycle.close`; metrics, spend, the
    stored trace, telemetry and the access log are all written from it.

    ``profile``/``model`` are the metric labels (a profile name, ``passthrough`` or ``none``;
    a model name, ``router`` or ``none``). ``trace`` is None when the request never reached
    an episode or a model (refused, malformed); its totals are what the request spent.
    """

    request_id: str
    caller: Caller | None
    profile: str
    model: str
    status: int
    error: APIError | None
    duration_s: float
    ttft_s: float | None
    streamed: bool
    trace: RouterTrace | None
    reservation: Reservation | None = None
    """What admission held from the key's budget; settled with the real cost."""
    started_at: float = 0.0
    """The request's arrival, Unix seconds (spans are built with real times)."""
    telemetry: ActiveTrace | None = None
    """The request's trace context while OpenTelemetry tracing is on (None: off)."""
    question: str | None = None
    """An episode's question (a span event when content capture is on)."""

    @property
    def tokens(self) -> int:
        if self.trace is None:
            return 0
        totals = self.trace.totals
        return totals.prompt_tokens + totals.completion_tokens

    @property
    def cost_usd(self) -> float:
        return 0.0 if self.trace is None else self.trace.totals.cost_usd
