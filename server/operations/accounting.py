"""One chat request's bookkeeping, from authentication to its last byte.

:meth:`Operations.open_account` authenticates and admits the caller and returns a
:class:`RequestAccount`; the serving code tells it what the request turned out to be (an
episode of a profile, a passthrough to a model) and what it spent, and whoever finishes the
response calls :meth:`RequestAccount.close` — the handler for a plain response, the stream
generator's ``finally`` for a stream (so streams, failures and disconnects are accounted too).
Closing records the metrics, adds tokens and spend to the caller's counters and stores the
episode's trace; it is idempotent and safe to await while being cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router_model.registry import ModelSpec, RouterProfile
from server.aio import aclose
from server.auth.access import Caller
from server.engines.base import EngineError, EngineUnavailable
from server.episode.events import EpisodeEvent, EpisodeFinished, RouteFinished
from server.episode.result import EpisodeResult
from server.episode.trace import RouteStep
from server.errors import APIError
from server.metrics.metrics import NONE, PASSTHROUGH, ROUTER
from server.store.base import TraceSummary
from server.upstream.errors import (
    UpstreamBadResponseError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeoutError,
)
from server.upstream.result import UpstreamResult, Usage
from server.upstream.stream import UpstreamStream

if TYPE_CHECKING:
    from server.operations.bundle import Operations

_KIND_BY_STATUS = {
    401: "auth",
    402: "budget",
    403: "auth",
    404: "not_found",
    429: "rate_limit",
    499: "cancelled",
    503: "unavailable",
    504: "timeout",
}


def error_status(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, error kind) a failure is counted under (bounded vocabulary)."""
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return 499, "cancelled"
    if isinstance(exc, UpstreamError):
        return exc.status_code, "timeout" if exc.status_code == 504 else "upstream"
    if isinstance(exc, EngineUnavailable):
        return (504, "timeout") if exc.timed_out else (503, "policy_engine")
    if isinstance(exc, EngineError):
        return 502, "policy_engine"
    if isinstance(exc, TimeoutError):
        return 504, "timeout"
    if isinstance(exc, APIError):
        status = exc.status_code
        return status, _KIND_BY_STATUS.get(
            status, "invalid_request" if status < 500 else "internal"
        )
    return 500, "internal"


def upstream_status(exc: UpstreamError) -> str:
    """The upstream call status (as in traces) of a passthrough failure."""
    if isinstance(exc, UpstreamTimeoutError):
        return "timeout"
    if isinstance(exc, UpstreamHTTPError):
        return "http_error"
    if isinstance(exc, UpstreamBadResponseError):
        return "bad_response"
    if isinstance(exc, UpstreamConnectionError):
        return "connect_error"
    return "http_error"


@dataclass(frozen=True)
class PassthroughSpend:
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    upstream_s: float | None  # None for a stream (its duration is the request's)
    status: str  # the upstream call's outcome: ok, or an error status


class RequestAccount:
    """Created by :meth:`Operations.open_account`; see the module docstring."""

    def __init__(self, ops: Operations, request_id: str) -> None:
        self._ops = ops
        self.request_id = request_id
        self.caller: Caller | None = None
        self.profile_label = NONE
        self.model_label = NONE
        self._profile: RouterProfile | None = None
        self._started = time.perf_counter()
        self._created = time.time()  # a stored trace's summary says when the request started
        self._result: EpisodeResult | None = None
        self._route_tokens = 0
        self._route_cost = 0.0
        self._passthrough: PassthroughSpend | None = None
        self._error: BaseException | None = None  # seen by a wrapper, handled in a stream
        self._closed = False
        ops.metrics.in_flight.inc()

    # ------------------------------------------------------------------ what it is

    def serving_profile(self, profile: RouterProfile) -> None:
        self._profile = profile
        self.profile_label, self.model_label = profile.name, ROUTER

    def serving_model(self, model: ModelSpec) -> None:
        self.profile_label, self.model_label = PASSTHROUGH, model.name

    # ------------------------------------------------------------------ what it spent

    def route_finished(self, step: RouteStep) -> None:
        """A finished route of an episode still running (what a failed episode has spent)."""
        self._route_tokens += (
            step.policy_prompt_tokens
            + step.policy_completion_tokens
            + step.upstream_prompt_tokens
            + step.upstream_completion_tokens
        )
        self._route_cost += step.cost_usd

    def episode_finished(self, result: EpisodeResult) -> None:
        self._result = result

    def passthrough_finished(
        self,
        usage: Usage | None,
        cost_usd: float,
        *,
        upstream_s: float | None = None,
        status: str = "ok",
    ) -> None:
        """What a passthrough spent (``usage`` None: the upstream reported none)."""
        self._passthrough = PassthroughSpend(
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            cost_usd,
            upstream_s,
            status,
        )

    def spent(self) -> tuple[int, float]:
        """(tokens, USD) so far: the episode's totals, the passthrough's, or finished routes'."""
        if self._result is not None:
            return self._result.usage.total_tokens, self._result.trace.totals.cost_usd
        p = self._passthrough
        if p is not None:
            return p.prompt_tokens + p.completion_tokens, p.cost_usd
        return self._route_tokens, self._route_cost

    def passthrough_result(self, result: UpstreamResult) -> None:
        self.passthrough_finished(result.usage, result.cost_usd, upstream_s=result.latency_s)

    # ------------------------------------------------------------------ wrappers

    async def watch(
        self, events: AsyncGenerator[EpisodeEvent, None]
    ) -> AsyncGenerator[EpisodeEvent, None]:
        """The episode's events, unchanged, noting what each finished route and the finished
        episode spent, and the error that ended it (if any)."""
        async with aclosing(events):
            try:
                async for event in events:
                    if isinstance(event, RouteFinished):
                        self.route_finished(event.step)
                    elif isinstance(event, EpisodeFinished):
                        self.episode_finished(event.result)
                    yield event
            except Exception as exc:
                self._error = exc
                raise

    async def play(self, events: AsyncGenerator[EpisodeEvent, None]) -> EpisodeResult:
        """Run an episode to its end without streaming; its result."""
        async with aclosing(self.watch(events)) as watched:
            async for event in watched:
                if isinstance(event, EpisodeFinished):
                    return event.result
        raise RuntimeError("episode ended without a result")  # pragma: no cover

    async def stream(
        self, chunks: AsyncIterator[bytes], upstream: UpstreamStream | None = None
    ) -> AsyncGenerator[bytes, None]:
        """A response body, unchanged; the account is closed when it ends, however it ends
        (for a passthrough, with the usage and cost ``upstream`` accounted by then)."""
        error: BaseException | None = None
        try:
            async for chunk in chunks:
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            await aclose(chunks)
            if upstream is not None:
                self._upstream_stream_ended(upstream)
                error = error or upstream.error
            await self.close(error or self._error)

    def _upstream_stream_ended(self, upstream: UpstreamStream) -> None:
        status = "ok" if upstream.error is None else upstream_status(upstream.error)
        self.passthrough_finished(upstream.usage, upstream.cost_usd, status=status)

    # ------------------------------------------------------------------ the end

    async def close(self, error: BaseException | None = None) -> None:
        """Record everything once; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        metrics = self._ops.metrics
        metrics.in_flight.dec()
        duration = time.perf_counter() - self._started
        status, kind = (200, None) if error is None else error_status(error)
        metrics.request_finished(self.profile_label, self.model_label, str(status), kind, duration)
        result, profile = self._result, self._profile
        if result is not None and profile is not None:
            metrics.episode_finished(profile, result.trace)
        p = self._passthrough
        if p is None and isinstance(error, UpstreamError) and self.profile_label == PASSTHROUGH:
            metrics.upstream_calls(self.model_label, upstream_status(error)).inc()
        if p is not None:
            metrics.passthrough_finished(
                self.model_label,
                status=p.status,
                prompt_tokens=p.prompt_tokens,
                completion_tokens=p.completion_tokens,
                cost_usd=p.cost_usd,
                upstream_s=p.upstream_s,
            )
        caller = self.caller
        if caller is None:
            return
        work: list[Coroutine[Any, Any, None]] = []
        if caller.key is not None:  # open mode's anonymous caller has no counters
            tokens, cost = self.spent()
            work.append(self._ops.access.record(caller, tokens, cost))
        if self._result is not None:
            trace = self._result.trace
            summary = TraceSummary(
                request_id=self.request_id,
                created=self._created,
                key_id=caller.id,
                mode="router",
                profile=trace.profile,
                model=trace.policy_model,
                outcome=trace.outcome,
                status=status,
                routes=trace.totals.routes,
                cost_usd=trace.totals.cost_usd,
                latency_ms=duration * 1000,
            )
            work.append(self._ops.traces.put(summary, trace.model_dump_json().encode()))
        if work:
            await self._ops.run_shielded(_gather(work))


async def _gather(work: list[Coroutine[Any, Any, None]]) -> None:
    await asyncio.gather(*work)
