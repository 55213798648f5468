"""One request's place in a distributed trace, fixed when the request starts.

Spans are built after the request from its trace (:mod:`.spans`), but the calls made during
it (policy engine turns, upstream calls) must already name their parent span in the
``traceparent`` they send, so that vLLM's own OTLP spans join the same trace. So the ids are
chosen up front: the trace id (the client's, or a new one), the request span's id, and one id
per policy turn and per upstream call, handed out on first use and reused by the builder.
The sampling decision is taken here too (a parent-based sampler by default: a client that
sent ``sampled=0`` gets no spans, and its callees are told so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Decision, Sampler

from server.telemetry.traceparent import (
    SAMPLED_FLAG,
    TRACEPARENT,
    TRACESTATE,
    TraceParent,
    format_traceparent,
    parse_traceparent,
    parse_tracestate,
)

ChildKind = Literal["turn", "upstream"]
REQUEST_SPAN_NAME = "router_r1.request"  # what the sampler is told; spans get semconv names


@dataclass
class RequestTraceContext:
    """The ids of one request's spans and whether they are exported.

    ``parent`` is the client's ``traceparent`` (None: the request span is a root);
    ``tracestate`` the client's, forwarded unchanged.
    """

    trace_id: int
    span_id: int
    sampled: bool
    parent: TraceParent | None = None
    tracestate: str | None = None
    ids: IdGenerator = field(default_factory=RandomIdGenerator, repr=False)
    _children: dict[tuple[ChildKind, int], int] = field(default_factory=dict, repr=False)

    @classmethod
    def start(
        cls,
        traceparent: str | None = None,
        tracestate: str | None = None,
        *,
        sampler: Sampler = DEFAULT_ON,
        ids: IdGenerator | None = None,
    ) -> RequestTraceContext:
        """The context of a request that arrived with these (raw, maybe invalid) headers."""
        ids = ids or RandomIdGenerator()
        parent = parse_traceparent(traceparent)
        state = parse_tracestate(tracestate) if parent is not None else None
        trace_id = parent.trace_id if parent is not None else ids.generate_trace_id()
        return cls(
            trace_id=trace_id,
            span_id=ids.generate_span_id(),
            sampled=_sampled(sampler, parent, trace_id),
            parent=parent,
            tracestate=state,
            ids=ids,
        )

    @property
    def flags(self) -> int:
        return SAMPLED_FLAG if self.sampled else 0

    def child_span_id(self, kind: ChildKind, index: int) -> int:
        """The span id of policy turn / upstream call ``index`` (the same on every call)."""
        key = (kind, index)
        span_id = self._children.get(key)
        if span_id is None:
            span_id = self._children[key] = self.ids.generate_span_id()
        return span_id

    def traceparent(self, span_id: int | None = None) -> str:
        """The ``traceparent`` for a call made under ``span_id`` (default: the request span)."""
        return format_traceparent(
            self.trace_id, self.span_id if span_id is None else span_id, self.flags
        )

    def headers(self, span_id: int | None = None) -> dict[str, str]:
        """``traceparent`` (and the client's ``tracestate``) to send on an engine or upstream
        call; e.g. ``ctx.headers(ctx.child_span_id("turn", 2))`` for turn 2's engine calls."""
        headers = {TRACEPARENT: self.traceparent(span_id)}
        if self.tracestate is not None:
            headers[TRACESTATE] = self.tracestate
        return headers


def _sampled(sampler: Sampler, parent: TraceParent | None, trace_id: int) -> bool:
    if sampler is DEFAULT_ON:  # the default, decided without building an SDK context
        return parent is None or parent.sampled
    context: Context | None = None
    if parent is not None:
        remote = trace_api.SpanContext(
            parent.trace_id,
            parent.span_id,
            is_remote=True,
            trace_flags=trace_api.TraceFlags(parent.flags & SAMPLED_FLAG),
        )
        context = trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote))
    result = sampler.should_sample(context, trace_id, REQUEST_SPAN_NAME, trace_api.SpanKind.SERVER)
    return result.decision is Decision.RECORD_AND_SAMPLE
