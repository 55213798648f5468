"""OpenTelemetry spans built from a finished request: a pure function of its facts.

The tree: the request span (SERVER; its parent is the client's ``traceparent`` span when one
was sent) → one span per policy turn (CLIENT, ``text_completion {policy model}``) → the turn's
upstream call (CLIENT, ``chat {model}``). A passthrough request is one upstream call: its one
span (``chat {model}``) carries the call's attributes too (a child repeating them would double
the export cost of the cheapest requests: encoding is most of it).

Times are the real ones, from the trace (``started_at`` plus each step's offsets) rather
than from when the spans are built, which happens after the episode so that the loop is not
slowed. A turn lasts from its first engine call to the next turn's (the last one to the
episode's end): that covers its generation, its upstream call and its observation.

Why ``ReadableSpan`` objects are made here instead of going through a ``Tracer``: the span
ids were fixed when the request started (:class:`~.context.RequestTraceContext`, sent to the
engines in ``traceparent``) and the times are past ones; a tracer would choose its own ids.
The SDK's span processors and OTLP exporters take these spans as they take their own.

Prompts, thoughts and replies are content: they go into ``gen_ai.client.inference.operation
.details`` events (``gen_ai.input.messages``/``gen_ai.output.messages``, JSON) only when
``include_content`` is set; attributes never hold them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from router_model.episode.trace import RouterTrace, RouteStep
from server.telemetry import attributes as A
from server.telemetry.facts import RequestFacts, UpstreamCall

SUCCEEDED = ("ok", "cached")

Attributes = dict[str, AttributeValue]


@dataclass(frozen=True)
class SpanSetup:
    """What every span of a process shares."""

    resource: Resource
    scope: InstrumentationScope
    include_content: bool = False


def _ns(seconds: float) -> int:
    """Unix seconds → ns (offsets are added in ns: a float of Unix ns is only ~256 ns exact)."""
    return int(seconds * 1e9)


def _ms(offset_ms: float) -> int:
    return round(offset_ms * 1e6)


def _messages(role: str, *parts: tuple[str, str | None]) -> str:
    """GenAI semconv message JSON: ``[{"role", "parts": [{"type", "content"}]}]``."""
    kept = [{"type": kind, "content": text} for kind, text in parts if text]
    return json.dumps([{"role": role, "parts": kept}], ensure_ascii=False)


def _content_event(
    at_ns: int, *, prompt: str | None = None, output: Sequence[tuple[str, str | None]] = ()
) -> Event:
    attributes: Attributes = {}
    if prompt:
        attributes[A.INPUT_MESSAGES] = _messages("user", ("text", prompt))
    if any(text for _, text in output):
        attributes[A.OUTPUT_MESSAGES] = _messages("assistant", *output)
    return Event(A.CONTENT_EVENT, attributes, at_ns)


class _Builder:
    def __init__(self, facts: RequestFacts, setup: SpanSetup) -> None:
        self.facts = facts
        self.setup = setup
        self.ctx = facts.context
        self.spans: list[ReadableSpan] = []

    def span_context(self, span_id: int) -> trace_api.SpanContext:
        return trace_api.SpanContext(
            self.ctx.trace_id,
            span_id,
            is_remote=False,
            trace_flags=trace_api.TraceFlags(self.ctx.flags),
        )

    def add(
        self,
        name: str,
        span_id: int,
        parent: trace_api.SpanContext | None,
        kind: SpanKind,
        start_ns: int,
        end_ns: int,
        attributes: Attributes,
        *,
        error: str | None = None,
        events: Sequence[Event] = (),
    ) -> trace_api.SpanContext:
        context = self.span_context(span_id)
        if error is not None:
            attributes[A.ERROR_TYPE] = error
        self.spans.append(
            ReadableSpan(
                name=name,
                context=context,
                parent=parent,
                resource=self.setup.resource,
                attributes=attributes,
                events=tuple(events),
                kind=kind,
                status=Status(StatusCode.ERROR) if error is not None else Status(StatusCode.UNSET),
                start_time=start_ns,
                end_time=max(end_ns, start_ns),
                instrumentation_scope=self.setup.scope,
            )
        )
        return context

    def model_attributes(self, name: str) -> Attributes:
        info = self.facts.models.get(name)
        attributes: Attributes = {A.MODEL: name, A.REQUEST_MODEL: name}
        if info is not None:
            attributes[A.REQUEST_MODEL] = info.upstream_model
            attributes[A.PROVIDER] = info.provider
        return attributes

    # ------------------------------------------------------------------ request span

    def request(self) -> trace_api.SpanContext:
        facts, ctx = self.facts, self.ctx
        parent = None
        if ctx.parent is not None:
            parent = trace_api.SpanContext(
                ctx.trace_id,
                ctx.parent.span_id,
                is_remote=True,
                trace_flags=trace_api.TraceFlags(ctx.parent.flags),
            )
        attributes: Attributes = {
            A.REQUEST_ID: facts.request_id,
            A.HTTP_STATUS: facts.status_code,
        }
        if facts.stream:
            attributes[A.STREAM] = True
        if facts.key_id is not None:
            attributes[A.KEY_ID] = facts.key_id
        if facts.time_to_first_token_ms is not None:
            attributes[A.TTFT_MS] = facts.time_to_first_token_ms
        trace = facts.trace
        if facts.mode == "episode":
            name = facts.profile or (trace.profile if trace is not None else "router")
            attributes.update({A.OPERATION: A.OP_AGENT, A.AGENT_NAME: name, A.PROFILE: name})
            attributes[A.REQUEST_MODEL] = name
            span_name = f"{A.OP_AGENT} {name}"
            if trace is not None:
                attributes.update(_episode_totals(trace))
        else:
            model = facts.model or "unknown"
            attributes.update(self.model_attributes(model))
            attributes[A.OPERATION] = A.OP_CHAT
            span_name = f"{A.OP_CHAT} {model}"
        error = None
        if facts.status_code >= 500:
            error = facts.error_type or str(facts.status_code)
        if facts.upstream is not None:
            attributes.update(_call_attributes(facts.upstream))
            if facts.upstream.status not in SUCCEEDED and error is None:
                error = facts.upstream.status
        start = _ns(facts.started_at)
        end = start + _ms(facts.duration_ms)
        events = []
        if self.setup.include_content:
            answer = trace.answer if trace is not None else None
            if facts.upstream is not None:
                answer = facts.upstream.reply_text
            events.append(_content_event(end, prompt=facts.question, output=[("text", answer)]))
        return self.add(
            span_name,
            ctx.span_id,
            parent,
            SpanKind.SERVER,
            start,
            end,
            attributes,
            error=error,
            events=events,
        )

    # ------------------------------------------------------------------ episode children

    def steps(self, parent: trace_api.SpanContext, trace: RouterTrace) -> None:
        base = _ns(trace.started_at or self.facts.started_at)
        policy = trace.policy_model
        provider = self.facts.policy_provider
        ends = [s.started_ms for s in trace.steps[1:]] + [trace.totals.total_ms]
        for step, end_ms in zip(trace.steps, ends, strict=True):
            if step.action == "fallback":  # the profile's fallback model: no policy turn
                if step.upstream_started_ms is not None and step.model is not None:
                    self.step_call(parent, base, step)
                continue
            attributes: Attributes = {
                A.OPERATION: A.OP_COMPLETION,
                A.REQUEST_MODEL: policy,
                A.STEP_INDEX: step.index,
                A.ACTION: step.action,
                A.INPUT_TOKENS: step.policy_prompt_tokens,
                A.OUTPUT_TOKENS: step.policy_completion_tokens,
                A.LATENCY_MS: step.policy_latency_ms,
                A.COST: step.cost_usd,
            }
            if step.policy_cost_usd != step.cost_usd:  # its upstream call cost something
                attributes[A.POLICY_COST] = step.policy_cost_usd
            if provider is not None:
                attributes[A.PROVIDER] = provider
            if step.cached_tokens is not None:
                attributes[A.CACHED_INPUT_TOKENS] = step.cached_tokens
            if step.written_model is not None:
                attributes[A.WRITTEN_MODEL] = step.written_model
            called = step.upstream_started_ms is not None and step.model is not None
            if not called:  # otherwise its call's span says them
                if step.model is not None:
                    attributes[A.MODEL] = step.model
                if step.upstream_status is not None:
                    attributes[A.UPSTREAM_STATUS] = step.upstream_status
            start, end = base + _ms(step.started_ms), base + _ms(end_ms)
            events = []
            if self.setup.include_content:
                output = [("reasoning", step.think), ("text", step.query)]
                events.append(_content_event(end, output=output))
            turn = self.add(
                f"{A.OP_COMPLETION} {policy}",
                self.ctx.child_span_id("turn", step.index),
                parent,
                SpanKind.CLIENT,
                start,
                end,
                attributes,
                events=events,
            )
            if called:
                self.step_call(turn, base, step)

    def step_call(self, parent: trace_api.SpanContext, base: int, step: RouteStep) -> None:
        model = step.model or "unknown"
        status = step.upstream_status or "unknown"
        attributes = self.model_attributes(model)
        attributes.update(
            {
                A.OPERATION: A.OP_CHAT,
                A.STEP_INDEX: step.index,
                A.UPSTREAM_STATUS: status,
                A.INPUT_TOKENS: step.upstream_prompt_tokens,
                A.OUTPUT_TOKENS: step.upstream_completion_tokens,
                A.COST: step.upstream_cost_usd,
            }
        )  # its latency is the span's duration
        if step.cached:
            attributes[A.CACHED] = True
        if step.upstream_attempts > 1:  # retried (one attempt is the rule: not written)
            attributes[A.ATTEMPTS] = step.upstream_attempts
        start = base + _ms(step.upstream_started_ms or 0.0)
        end = start + _ms(step.upstream_latency_ms)
        events = []
        if self.setup.include_content:
            events.append(
                _content_event(end, prompt=step.query, output=[("text", step.reply_excerpt)])
            )
        self.add(
            f"{A.OP_CHAT} {model}",
            self.ctx.child_span_id("upstream", step.index),
            parent,
            SpanKind.CLIENT,
            start,
            end,
            attributes,
            error=None if status in SUCCEEDED else status,
            events=events,
        )


def _call_attributes(call: UpstreamCall) -> Attributes:
    """A passthrough request's upstream call, on its request span (the span's duration is
    the latency). Each attribute costs export CPU: ``upstream_status`` is written unless
    ``ok`` (``cached``, or the failure), ``attempts`` only for a call that was retried."""
    attributes: Attributes = {
        A.INPUT_TOKENS: call.prompt_tokens,
        A.OUTPUT_TOKENS: call.completion_tokens,
        A.COST: call.cost_usd,
    }
    if call.status != "ok":
        attributes[A.UPSTREAM_STATUS] = call.status
    if call.attempts > 1:
        attributes[A.ATTEMPTS] = call.attempts
    if call.deployment is not None:
        attributes[A.DEPLOYMENT] = call.deployment
    if call.response_model is not None:
        attributes[A.RESPONSE_MODEL] = call.response_model
    if call.finish_reason is not None:
        attributes[A.FINISH_REASONS] = (call.finish_reason,)
    return attributes


def _episode_totals(trace: RouterTrace) -> Attributes:
    totals = trace.totals
    return {
        A.OUTCOME: trace.outcome,
        A.ROUTES: totals.routes,
        A.MODELS: tuple(totals.models),
        A.COST: totals.cost_usd,
        A.POLICY_COST: totals.policy_cost_usd,
        A.UPSTREAM_COST: totals.upstream_cost_usd,
        A.OVERHEAD_MS: totals.overhead_ms,
        A.INPUT_TOKENS: totals.policy_prompt_tokens + totals.upstream_prompt_tokens,
        A.OUTPUT_TOKENS: totals.policy_completion_tokens + totals.upstream_completion_tokens,
    }


def build_spans(facts: RequestFacts, setup: SpanSetup) -> list[ReadableSpan]:
    """The request's spans, the request span first, then each turn and its upstream call."""
    builder = _Builder(facts, setup)
    request = builder.request()
    if facts.trace is not None:
        builder.steps(request, facts.trace)
    return builder.spans
