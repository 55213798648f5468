"""The span tree built from a finished request: parents, real times, attributes, content."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

from server.telemetry import (
    ModelInfo,
    RequestFacts,
    RequestTraceContext,
    SpanSetup,
    UpstreamCall,
    build_spans,
)
from tests.fakes.traces import LLAMA, POLICY_MODEL, QWEN, three_step_trace

STARTED_AT = 1_700_000_000.0
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
MODELS = {
    QWEN: ModelInfo("qwen/qwen2.5-7b-instruct", "nvidia"),
    LLAMA: ModelInfo("meta/llama-3.1-8b-instruct", "nvidia"),
}


def setup(include_content: bool = False) -> SpanSetup:
    return SpanSetup(Resource({"service.name": "t"}), InstrumentationScope("t"), include_content)


def episode(context: RequestTraceContext, **extra: object) -> RequestFacts:
    fields: dict[str, object] = {
        "context": context,
        "request_id": "chatcmpl-test",
        "mode": "episode",
        "status_code": 200,
        "started_at": STARTED_AT - 0.005,  # the request arrived 5 ms before the episode began
        "duration_ms": 3110.0,
        "key_id": "alice",
        "profile": "router-r1",
        "trace": three_step_trace(started_at=STARTED_AT),
        "policy_provider": "vllm",
        "question": "Who wrote War and Peace?",
        "models": MODELS,
    }
    fields.update(extra)
    return RequestFacts(**fields)  # type: ignore[arg-type]


def ns(offset_ms: float) -> int:
    return int(STARTED_AT * 1e9) + round(offset_ms * 1e6)


@pytest.fixture
def context() -> RequestTraceContext:
    return RequestTraceContext.start(TRACEPARENT)


def by_name(spans: list[ReadableSpan]) -> Iterator[tuple[str, ReadableSpan]]:
    return ((s.name, s) for s in spans)


def test_the_tree_request_turns_and_calls(context: RequestTraceContext) -> None:
    spans = build_spans(episode(context), setup())
    names = [s.name for s in spans]
    assert names == [
        "invoke_agent router-r1",
        f"text_completion {POLICY_MODEL}",
        f"chat {QWEN}",
        f"text_completion {POLICY_MODEL}",
        f"chat {LLAMA}",
        f"text_completion {POLICY_MODEL}",
    ]
    request, turn0, call0, turn1, call1, turn2 = spans
    for span in spans:
        assert span.context is not None
        assert span.context.trace_id == int(CLIENT_TRACE, 16)
        assert span.context.trace_flags.sampled
    assert request.parent is not None
    assert request.parent.span_id == int(CLIENT_SPAN, 16)
    assert request.parent.is_remote
    assert request.context is not None
    for turn in (turn0, turn1, turn2):
        assert turn.parent == request.context
    assert call0.parent == turn0.context
    assert call1.parent == turn1.context
    # the ids handed out at the request's start (sent to the engines in traceparent)
    assert request.context.span_id == context.span_id
    assert turn1.context is not None
    assert turn1.context.span_id == context.child_span_id("turn", 1)
    assert call1.context is not None
    assert call1.context.span_id == context.child_span_id("upstream", 1)
    assert (request.kind, turn0.kind, call0.kind) == (
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.CLIENT,
    )


def test_times_come_from_the_trace(context: RequestTraceContext) -> None:
    request, turn0, call0, turn1, call1, turn2 = build_spans(episode(context), setup())
    arrived = int((STARTED_AT - 0.005) * 1e9)
    assert (request.start_time, request.end_time) == (arrived, arrived + 3110 * 10**6)
    assert (turn0.start_time, turn0.end_time) == (ns(10), ns(1400))  # to the next turn
    assert (call0.start_time, call0.end_time) == (ns(300), ns(1300))
    assert (turn1.start_time, turn1.end_time) == (ns(1400), ns(2800))
    assert (call1.start_time, call1.end_time) == (ns(1700), ns(2700))
    assert (turn2.start_time, turn2.end_time) == (ns(2800), ns(3100))  # to the episode's end


def test_request_attributes(context: RequestTraceContext) -> None:
    request = build_spans(episode(context), setup())[0]
    attrs = dict(request.attributes or {})
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.agent.name"] == "router-r1"
    assert attrs["router_r1.profile"] == "router-r1"
    assert attrs["router_r1.outcome"] == "answer"
    assert attrs["router_r1.routes"] == 2
    assert attrs["router_r1.models"] == (QWEN, LLAMA)
    assert attrs["router_r1.cost_usd"] == pytest.approx(0.0022)
    assert attrs["router_r1.request_id"] == "chatcmpl-test"
    assert attrs["router_r1.key_id"] == "alice"
    assert "router_r1.mode" not in attrs  # gen_ai.operation.name tells
    assert attrs["http.response.status_code"] == 200
    assert attrs["gen_ai.usage.input_tokens"] == 550
    assert attrs["gen_ai.usage.output_tokens"] == 75
    assert request.status.status_code is StatusCode.UNSET


def test_turn_and_call_attributes(context: RequestTraceContext) -> None:
    _, turn0, call0, turn1, call1, turn2 = build_spans(episode(context), setup())
    t0 = dict(turn0.attributes or {})
    assert t0["gen_ai.operation.name"] == "text_completion"
    assert t0["gen_ai.request.model"] == POLICY_MODEL
    assert t0["gen_ai.provider.name"] == "vllm"
    assert (t0["router_r1.step.index"], t0["router_r1.action"]) == (0, "route")
    assert (t0["gen_ai.usage.input_tokens"], t0["gen_ai.usage.output_tokens"]) == (120, 30)
    assert "gen_ai.usage.cache_read.input_tokens" not in t0  # the engine did not say
    assert dict(turn1.attributes or {})["gen_ai.usage.cache_read.input_tokens"] == 150
    assert dict(turn1.attributes or {})["router_r1.written_model"] == "llama-3.1-8b"
    assert dict(turn2.attributes or {})["router_r1.action"] == "answer"

    c0 = dict(call0.attributes or {})
    assert c0["gen_ai.operation.name"] == "chat"
    assert c0["gen_ai.request.model"] == "qwen/qwen2.5-7b-instruct"
    assert (c0["gen_ai.provider.name"], c0["router_r1.model"]) == ("nvidia", QWEN)
    assert (c0["gen_ai.usage.input_tokens"], c0["gen_ai.usage.output_tokens"]) == (40, 8)
    assert c0["router_r1.cost_usd"] == pytest.approx(0.001)
    assert (c0["router_r1.upstream_status"], c0["router_r1.attempts"]) == ("ok", 2)
    assert "router_r1.cached" not in c0  # written only for a cache hit
    assert "router_r1.upstream_status" not in t0  # on its call's span
    assert call0.status.status_code is StatusCode.UNSET

    c1 = dict(call1.attributes or {})
    assert (c1["router_r1.upstream_status"], c1["error.type"]) == ("timeout", "timeout")
    assert call1.status.status_code is StatusCode.ERROR


def test_no_content_unless_allowed(context: RequestTraceContext) -> None:
    spans = build_spans(episode(context), setup())
    assert all(not span.events for span in spans)
    text = json.dumps([dict(s.attributes or {}) for s in spans], default=str)
    for secret in ("Who wrote War and Peace?", "Leo Tolstoy", "ask who wrote", "is it Tolstoy"):
        assert secret not in text


def test_content_events_when_allowed(context: RequestTraceContext) -> None:
    request, turn0, call0, *_ = build_spans(episode(context), setup(include_content=True))
    (event,) = request.events
    assert event.name == "gen_ai.client.inference.operation.details"
    attrs = dict(event.attributes or {})
    assert json.loads(str(attrs["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Who wrote War and Peace?"}]}
    ]
    assert json.loads(str(attrs["gen_ai.output.messages"])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Leo Tolstoy"}]}
    ]
    (thought,) = turn0.events
    output = json.loads(str(dict(thought.attributes or {})["gen_ai.output.messages"]))
    assert output[0]["parts"] == [
        {"type": "reasoning", "content": "I should ask who wrote it."},
        {"type": "text", "content": "who wrote War and Peace?"},
    ]
    (call,) = call0.events
    call_attrs = dict(call.attributes or {})
    assert "who wrote War and Peace?" in str(call_attrs["gen_ai.input.messages"])
    assert "Leo Tolstoy wrote it." in str(call_attrs["gen_ai.output.messages"])


def test_a_root_request_without_a_client_traceparent() -> None:
    request = build_spans(episode(RequestTraceContext.start(None)), setup())[0]
    assert request.parent is None


def test_a_failed_episode_request_is_an_error() -> None:
    facts = episode(
        RequestTraceContext.start(None),
        status_code=503,
        error_type="engine_unavailable",
        trace=None,
    )
    (request,) = build_spans(facts, setup())
    assert request.status.status_code is StatusCode.ERROR
    assert dict(request.attributes or {})["error.type"] == "engine_unavailable"


def test_a_passthrough_request_is_one_span_with_its_call() -> None:
    context = RequestTraceContext.start(None)
    call = UpstreamCall(
        model=QWEN,
        status="ok",
        prompt_tokens=12,
        completion_tokens=34,
        cost_usd=0.0002,
        attempts=3,
        deployment="eu-1",
        response_model="qwen/qwen2.5-7b-instruct-0925",
        finish_reason="stop",
    )
    facts = RequestFacts(
        context=context,
        request_id="chatcmpl-pass",
        mode="passthrough",
        status_code=200,
        started_at=STARTED_AT,
        duration_ms=410.0,
        model=QWEN,
        upstream=call,
        stream=True,
        time_to_first_token_ms=120.0,
        models=MODELS,
    )
    (span,) = build_spans(facts, setup())
    assert (span.name, span.kind) == (f"chat {QWEN}", SpanKind.SERVER)
    assert span.context is not None
    assert span.context.span_id == context.span_id  # what the upstream call was told
    assert (span.start_time, span.end_time) == (ns(0), ns(410))
    attrs = dict(span.attributes or {})
    assert (attrs["gen_ai.operation.name"], attrs["router_r1.stream"]) == ("chat", True)
    assert attrs["router_r1.time_to_first_token_ms"] == 120.0
    assert attrs["gen_ai.request.model"] == "qwen/qwen2.5-7b-instruct"
    assert (attrs["router_r1.attempts"], attrs["router_r1.deployment"]) == (3, "eu-1")
    assert attrs["gen_ai.response.model"] == "qwen/qwen2.5-7b-instruct-0925"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (12, 34)
    assert attrs["router_r1.cost_usd"] == pytest.approx(0.0002)
    assert span.status.status_code is StatusCode.UNSET


def test_a_failed_passthrough_call_is_an_error() -> None:
    call = UpstreamCall(model=QWEN, status="timeout", attempts=2)
    facts = RequestFacts(
        context=RequestTraceContext.start(None),
        request_id="chatcmpl-pass",
        mode="passthrough",
        status_code=504,
        started_at=STARTED_AT,
        duration_ms=1001.0,
        model=QWEN,
        upstream=call,
        error_type="upstream_timeout",
    )
    (span,) = build_spans(facts, setup())
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "upstream_timeout"
