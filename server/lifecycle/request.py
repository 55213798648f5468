"""One chat request's lifecycle: opened once, told what it serves and spends, closed once.

The chat handler opens a :class:`RequestLifecycle` before anything else and closes it exactly
once however the request ends: its response sent, an error, the client leaving, a
cancellation (the handler closes a plain response; a stream's end closes a stream). Closing
turns what was recorded into one :class:`RequestOutcome` and hands it to the sink, which
writes metrics, spend, the trace, telemetry and the access line from it. Spend is read from
the episode's own ledger (:meth:`EpisodeRun.result`) or the passthrough's call record at
that moment, so whatever ended the request, every call already made is counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from router_model.episode.loop import EpisodeRun
from router_model.episode.trace import (
    FallbackReason,
    Outcome,
    RouterTotals,
    RouterTrace,
    RouteStep,
)
from router_model.registry import ModelSpec, RouterProfile
from router_model.rewards.cost import raw_cost
from server.auth.access import Caller
from server.errors import classify
from server.lifecycle.fallback import FallbackCall, with_fallback
from server.lifecycle.outcome import RequestOutcome
from server.metrics.metrics import NONE, PASSTHROUGH, ROUTER
from server.store.base import Reservation
from server.telemetry.propagation import ActiveTrace


class OutcomeSink(Protocol):
    """Where closed requests go (:class:`~server.lifecycle.recorder.OutcomeRecorder`)."""

    async def record(self, outcome: RequestOutcome, exc: BaseException | None) -> None: ...


@dataclass
class UpstreamCall:
    """A passthrough's upstream call, filled in as it goes (a stream's usage arrives last)."""

    model: ModelSpec
    status: str = "pending"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    usage_estimated: bool = False
    attempts: int = 0
    error: str | None = None
    started_ms: float = 0.0
    latency_ms: float = 0.0
    deployment: str | None = None


class RequestLifecycle:
    """See the module docstring. Not shared between requests; never refers to its creator."""

    def __init__(
        self,
        request_id: str,
        sink: OutcomeSink,
        clock: Callable[[], float] = time.perf_counter,
        *,
        telemetry: ActiveTrace | None = None,
    ) -> None:
        self.request_id = request_id
        self.telemetry = telemetry  # the request's trace context (None: tracing is off)
        self.caller: Caller | None = None
        self.reservation: Reservation | None = None  # held from the key's budget at admission
        self.streamed = False
        self._sink = sink
        self._clock = clock
        self._t0 = clock()
        self._started_at = time.time()
        self._labels = (NONE, NONE)
        self._run: EpisodeRun | None = None
        self._calls: list[UpstreamCall] = []
        self._fallback: FallbackCall | None = None
        self._first_token_s: float | None = None
        self._error: BaseException | None = None
        self._closed = False
        # the passthrough trace a response carried, and how many calls it covered
        self._served_trace: tuple[int, RouterTrace] | None = None

    # ------------------------------------------------------------------ what it serves

    def serving_episode(self, profile: RouterProfile, run: EpisodeRun) -> None:
        self._labels = (profile.name, ROUTER)
        self._run = run
        if self.telemetry is not None:  # its engine and upstream calls name its turns' spans
            self.telemetry.run = run

    def serving_passthrough(self, model: ModelSpec) -> UpstreamCall:
        """The record the passthrough fills in as its call proceeds."""
        self._labels = (PASSTHROUGH, model.name)
        self._calls = [UpstreamCall(model, started_ms=self.elapsed_ms())]
        return self._calls[0]

    def passthrough_fallback(self, model: ModelSpec) -> UpstreamCall:
        """The record of a fallback model's call, after the previous one failed (the trace
        gets one step per call; the request keeps the first model's labels)."""
        call = UpstreamCall(model, started_ms=self.elapsed_ms())
        self._calls.append(call)
        return call

    def serving_fallback(
        self, model: ModelSpec, reason: FallbackReason, detail: str | None = None
    ) -> UpstreamCall:
        """The episode could not answer: the profile's fallback model is asked; the record
        its call fills in (the trace adds it to the episode's)."""
        call = UpstreamCall(model, started_ms=self.elapsed_ms())
        self._fallback = FallbackCall(call, reason, detail)
        return call

    def elapsed_ms(self) -> float:
        return (self._clock() - self._t0) * 1000

    def first_token(self) -> None:
        """The first generated text reached the client (streams: time to first token)."""
        if self._first_token_s is None:
            self._first_token_s = self._clock() - self._t0

    def failed(self, exc: BaseException) -> None:
        """A failure the response already told the client about (an in-stream error event):
        the request closes with it."""
        if self._error is None:
            self._error = exc

    def trace_so_far(self) -> RouterTrace:
        """The trace as the request stands now, for a response that carries it (a passthrough
        reply, the last chunk of its stream); the closing trace is built the same way."""
        trace = self._trace(200, None)
        assert trace is not None, "trace_so_far() before the request served anything"
        if self._run is None:
            self._served_trace = (len(self._calls), trace)
        return trace

    # ------------------------------------------------------------------ the end

    async def close(self, exc: BaseException | None = None) -> None:
        """Emit the request's outcome; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        exc = exc or self._error
        error = None if exc is None else classify(exc)
        profile, model = self._labels
        status = 200 if error is None else error.status_code
        outcome = RequestOutcome(
            request_id=self.request_id,
            caller=self.caller,
            profile=profile,
            model=model,
            status=status,
            error=error,
            duration_s=self._clock() - self._t0,
            ttft_s=self._first_token_s,
            streamed=self.streamed,
            trace=self._trace(
                error.status_code if error else 200, error.message if error else None
            ),
            reservation=self.reservation,
            started_at=self._started_at,
            telemetry=self.telemetry,
            question=None if self._run is None else self._run.question,
        )
        await self._sink.record(outcome, exc)

    def _trace(self, status: int, message: str | None) -> RouterTrace | None:
        ended: Outcome = "cancelled" if status == 499 else "error"
        if self._run is not None:
            trace = self._run.result(ended, message).trace
            if self._fallback is not None:
                trace = with_fallback(trace, self._fallback, self.elapsed_ms())
            return trace
        if not self._calls:
            return None
        served = self._served_trace
        if message is None and served is not None and served[0] == len(self._calls):
            # A successful passthrough closes right after its response carried the trace:
            # that one is stored too (building it twice was a tenth of a request's CPU).
            return served[1]
        return self._passthrough_trace("completed" if message is None else ended, message)

    def _passthrough_trace(self, outcome: Outcome, message: str | None) -> RouterTrace:
        """One step per upstream call (the model's, then each fallback's that was tried)."""
        total_ms = self.elapsed_ms()
        first = self._calls[0].model.name
        steps: list[RouteStep] = []
        models: list[str] = []
        cost = upstream_ms = 0.0
        prompt_tokens = completion_tokens = 0
        priced: list[tuple[float, float]] = []
        for index, call in enumerate(self._calls):
            latency_ms = call.latency_ms or max(total_ms - call.started_ms, 0.0)
            steps.append(
                RouteStep(
                    index=index,
                    action="passthrough",
                    written_model=first,
                    model=call.model.name,
                    upstream_status=call.status if call.status != "pending" else outcome,
                    upstream_error=call.error,
                    upstream_attempts=call.attempts,
                    deployment=call.deployment,
                    upstream_prompt_tokens=call.prompt_tokens,
                    upstream_completion_tokens=call.completion_tokens,
                    usage_estimated=call.usage_estimated,
                    cost_usd=call.cost_usd,
                    upstream_cost_usd=call.cost_usd,
                    upstream_latency_ms=latency_ms,
                    started_ms=call.started_ms,
                    upstream_started_ms=call.started_ms,
                )
            )
            if call.model.name not in models:
                models.append(call.model.name)
            cost += call.cost_usd
            upstream_ms += latency_ms
            prompt_tokens += call.prompt_tokens
            completion_tokens += call.completion_tokens
            priced.append((call.completion_tokens, call.model.pricing_of().output_per_1m))
        totals = RouterTotals(
            models=models,
            cost_usd=cost,
            upstream_cost_usd=cost,
            raw_cost=raw_cost(priced),
            upstream_prompt_tokens=prompt_tokens,
            upstream_completion_tokens=completion_tokens,
            upstream_time_ms=upstream_ms,
            overhead_ms=max(total_ms - upstream_ms, 0.0),
            total_ms=total_ms,
        )
        return RouterTrace(
            request_id=self.request_id,
            mode="passthrough",
            model=first,
            outcome=outcome,
            error=message,
            started_at=self._started_at,
            steps=steps,
            totals=totals,
        )
