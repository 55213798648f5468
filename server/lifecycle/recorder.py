"""Where every closed request goes: metrics, spend, the stored trace, exporters, the access log.

All of it is written from the one :class:`RequestOutcome` a request's lifecycle emits. The
writes that wait on the shared store (spend, trace) run shielded: a client that leaves, or a
cancelled handler, cannot lose what a request spent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

from router_model.episode.trace import trace_json
from server.auth.access import AccessControl
from server.background import BackgroundWork
from server.errors import is_internal
from server.lifecycle.outcome import RequestOutcome
from server.lifecycle.request import RequestLifecycle
from server.metrics.metrics import Metrics
from server.operations.traces import TraceArchive
from server.store.base import TraceSummary
from server.telemetry.propagation import current_trace

logger = logging.getLogger("router_r1.errors")
access_logger = logging.getLogger("router_r1.access")


class OutcomeExporter(Protocol):
    """Something else that wants every outcome (OpenTelemetry): must not block."""

    def export(self, outcome: RequestOutcome) -> None: ...


class OutcomeRecorder:
    """Opens request lifecycles and records their outcomes."""

    def __init__(
        self,
        metrics: Metrics,
        access: AccessControl,
        traces: TraceArchive,
        background: BackgroundWork,
        *,
        access_log: bool = True,
        exporters: Sequence[OutcomeExporter] = (),
        shield_writes: bool = True,
    ) -> None:
        self._metrics = metrics
        self._access = access
        self._traces = traces
        self._background = background
        self._access_log = access_log
        self._exporters = tuple(exporters)
        # False for an in-process store: its writes never wait, so no cancellation can cut
        # them, and the task that shielding takes (a tenth of a passthrough's own CPU) is
        # saved (bench/bench_proxy.py)
        self._shield_writes = shield_writes

    def open(self, request_id: str) -> RequestLifecycle:
        self._metrics.in_flight.inc()
        return RequestLifecycle(request_id, self, telemetry=current_trace())

    async def record(self, outcome: RequestOutcome, exc: BaseException | None) -> None:
        metrics = self._metrics
        metrics.in_flight.dec()
        error = outcome.error
        metrics.request_finished(
            outcome.profile,
            outcome.model,
            str(outcome.status),
            None if error is None else error.kind,
            outcome.duration_s,
            ttft_s=outcome.ttft_s,
        )
        if outcome.trace is not None:
            metrics.trace_finished(outcome.profile, outcome.trace)
        if exc is not None and error is not None and is_internal(exc, error):
            logger.error("unhandled error while serving a request", exc_info=exc)
        if self._access_log and access_logger.isEnabledFor(logging.INFO):
            _log_access(outcome)
        for exporter in self._exporters:
            try:
                exporter.export(outcome)
            except Exception:  # an exporter's failure never fails the request
                logger.exception("exporting the outcome of %s failed", outcome.request_id)
        work = self._shared_writes(outcome)
        if not work:
            return
        if self._shield_writes:
            await self._background.run_shielded(_gather(work))
            return
        for write in work:  # each completes at once, in this task
            await write

    def _shared_writes(self, outcome: RequestOutcome) -> list[Coroutine[Any, Any, None]]:
        caller = outcome.caller
        if caller is None:
            return []
        work: list[Coroutine[Any, Any, None]] = []
        if caller.key is not None:  # open mode's anonymous caller has no counters
            # releases what admission reserved and adds the real spend, in one step
            work.append(
                self._access.settle(caller, outcome.reservation, outcome.tokens, outcome.cost_usd)
            )
        trace = outcome.trace
        if trace is not None:
            summary = TraceSummary(
                request_id=outcome.request_id,
                created=trace.started_at,
                key_id=caller.id,
                mode=trace.mode,
                profile=trace.profile,
                model=trace.model,
                outcome=trace.outcome,
                status=outcome.status,
                routes=trace.totals.routes,
                cost_usd=trace.totals.cost_usd,
                latency_ms=outcome.duration_s * 1000,
            )
            work.append(self._traces.put(summary, trace_json(trace)))
        return work


async def _gather(work: list[Coroutine[Any, Any, None]]) -> None:
    if len(work) == 1:  # gather would wrap a lone coroutine in one more task
        await work[0]
        return
    await asyncio.gather(*work)


def _log_access(outcome: RequestOutcome) -> None:
    trace = outcome.trace
    fields: dict[str, Any] = {
        "status": outcome.status,
        "latency_ms": round(outcome.duration_s * 1000, 1),
        "profile": outcome.profile,
        "model": outcome.model,
        "key": outcome.caller.id if outcome.caller is not None else "-",
        "stream": outcome.streamed,
    }
    if trace is not None:
        fields["outcome"] = trace.outcome
        fields["routes"] = trace.totals.routes
        fields["cost_usd"] = round(trace.totals.cost_usd, 8)
    if outcome.ttft_s is not None:
        fields["ttft_ms"] = round(outcome.ttft_s * 1000, 1)
    if outcome.error is not None:
        fields["error"] = outcome.error.code or outcome.error.type
    access_logger.info("chat completion", extra=fields)
