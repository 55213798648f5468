"""Tracing wired into the running gateway: each request's span tree (built after it, with its
real times), the client's ``traceparent`` honoured and propagated to every engine and
upstream call, content only when allowed, and nothing at all while tracing is off."""

from __future__ import annotations

import json
import random
import time

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from server.telemetry import parse_traceparent
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.telemetry.gateway import (
    ANSWER,
    QUESTION,
    QWEN,
    ROUTE_QWEN,
    TracedGateway,
    traced_gateway,
)

POLICY = "ulab-ai/Router-R1-Qwen2.5-3B-Instruct"


def client_traceparent() -> tuple[str, int, int]:
    trace_id, span_id = random.getrandbits(128) | 1, random.getrandbits(64) | 1
    return f"00-{trace_id:032x}-{span_id:016x}-01", trace_id, span_id


def spans_by_name(gw: TracedGateway) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in gw.spans.get_finished_spans():
        named.setdefault(span.name, []).append(span)
    return named


def upstream_parent_ids(upstream: FakeUpstream) -> list[tuple[int, int]]:
    parents = [parse_traceparent(call.headers.get("traceparent")) for call in upstream.calls]
    assert all(p is not None for p in parents), upstream.calls
    return [(p.trace_id, p.span_id) for p in parents if p is not None]


def qwen_upstream() -> FakeUpstream:
    return FakeUpstream({QWEN: UpstreamScript(reply="Leo Tolstoy wrote it.")})


async def test_an_episode_is_a_span_tree_under_the_clients_span() -> None:
    traceparent, trace_id, client_span = client_traceparent()
    before = time.time()
    async with traced_gateway(FakeVLLM([ROUTE_QWEN, ANSWER]), qwen_upstream()) as gw:
        completion = await gw.client.chat.completions.create(
            model="router-r1", messages=QUESTION, extra_headers={"traceparent": traceparent}
        )
        assert completion.choices[0].message.content == "Leo Tolstoy"
    after = time.time()
    named = spans_by_name(gw)
    (request,) = named["invoke_agent router-r1"]
    turns = sorted(
        named[f"text_completion {POLICY}"],
        key=lambda s: int(str((s.attributes or {})["router_r1.step.index"])),
    )
    (call,) = named["chat Qwen2.5-7B-Instruct"]
    assert len(turns) == 2
    assert len(gw.spans.get_finished_spans()) == 4

    # the tree: client span -> request -> turns -> the upstream call of turn 0
    assert request.context is not None
    assert request.parent is not None
    assert request.context.trace_id == trace_id
    assert request.parent.span_id == client_span
    assert all(t.parent is not None and t.parent.span_id == request.context.span_id for t in turns)
    assert call.parent is not None
    assert turns[0].context is not None
    assert call.parent.span_id == turns[0].context.span_id

    # real times, in order, within the request
    assert request.start_time is not None
    assert request.end_time is not None
    assert before * 1e9 <= request.start_time <= request.end_time <= after * 1e9
    for span in (*turns, call):
        assert span.start_time is not None
        assert span.end_time is not None
        assert request.start_time <= span.start_time <= span.end_time <= request.end_time
    assert turns[0].end_time is not None
    assert turns[1].start_time is not None
    assert turns[0].end_time <= turns[1].start_time

    attrs = dict(request.attributes or {})
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert (attrs["router_r1.profile"], attrs["router_r1.outcome"]) == ("router-r1", "answer")
    assert attrs["router_r1.routes"] == 1
    assert completion.id == f"chatcmpl-{attrs['router_r1.request_id']}"
    assert attrs["http.response.status_code"] == 200
    turn0 = dict(turns[0].attributes or {})
    assert turn0["router_r1.action"] == "route"
    assert turn0["gen_ai.provider.name"] == "vllm"
    assert int(str(turn0["gen_ai.usage.input_tokens"])) > 0
    called = dict(call.attributes or {})
    assert called["gen_ai.request.model"] == QWEN
    assert called["router_r1.upstream_status"] == "ok"

    # content capture is off by default: no events, no prompt or reply anywhere
    spans = gw.spans.get_finished_spans()
    assert all(not s.events for s in spans)
    dumped = json.dumps([dict(s.attributes or {}) for s in spans])
    assert "War and Peace" not in dumped
    assert "Leo Tolstoy" not in dumped

    # propagated: every engine call and the upstream call carry the trace, under their span
    sent = [parse_traceparent(tp) for tp in gw.engine_log.traceparents()]
    assert sent
    assert all(p is not None and p.trace_id == trace_id for p in sent)
    span_ids = {s.context.span_id for s in spans if s.context is not None}
    assert {p.span_id for p in sent if p is not None} <= span_ids
    turn_ids = {t.context.span_id for t in turns if t.context is not None}
    assert turn_ids <= {p.span_id for p in sent if p is not None}
    assert call.context is not None
    assert upstream_parent_ids(gw.upstream) == [(trace_id, call.context.span_id)]


async def test_a_streamed_episode_records_its_time_to_first_token() -> None:
    async with traced_gateway(FakeVLLM([ROUTE_QWEN, ANSWER]), qwen_upstream()) as gw:
        stream = await gw.client.chat.completions.create(
            model="router-r1", messages=QUESTION, stream=True
        )
        async for _ in stream:
            pass
    (request,) = spans_by_name(gw)["invoke_agent router-r1"]
    attrs = dict(request.attributes or {})
    assert attrs["router_r1.stream"] is True
    assert float(str(attrs["router_r1.time_to_first_token_ms"])) > 0
    assert request.parent is None  # no client traceparent: the request span is a root


async def test_without_a_client_header_calls_carry_a_fresh_trace() -> None:
    episodes = FakeVLLM([ROUTE_QWEN, ANSWER] * 2)
    async with traced_gateway(episodes, qwen_upstream(), cache_enabled=False) as gw:
        await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
        await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
    requests = spans_by_name(gw)["invoke_agent router-r1"]
    trace_ids = {r.context.trace_id for r in requests if r.context is not None}
    assert len(trace_ids) == 2  # one new trace per request
    sent = {p.trace_id for p in map(parse_traceparent, gw.engine_log.traceparents()) if p}
    assert sent == trace_ids
    assert {trace_id for trace_id, _ in upstream_parent_ids(gw.upstream)} == trace_ids


async def test_a_passthrough_is_one_span_and_its_call_carries_the_trace() -> None:
    traceparent, trace_id, client_span = client_traceparent()
    upstream = FakeUpstream({QWEN: UpstreamScript(reply="Paris.")})
    async with traced_gateway(FakeVLLM([]), upstream) as gw:
        await gw.client.chat.completions.create(
            model="Qwen2.5-7B-Instruct",
            messages=[{"role": "user", "content": "Capital of France?"}],
            extra_headers={"traceparent": traceparent, "tracestate": "vendor=abc"},
        )
    (span,) = gw.spans.get_finished_spans()
    assert span.name == "chat Qwen2.5-7B-Instruct"
    assert span.parent is not None
    assert span.parent.span_id == client_span
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.request.model"] == QWEN
    assert attrs["gen_ai.provider.name"] == "nim"  # the registry endpoint's name
    assert "router_r1.upstream_status" not in attrs  # ok: the span's status says it
    assert "router_r1.attempts" not in attrs  # not retried
    assert span.context is not None
    assert upstream_parent_ids(upstream) == [(trace_id, span.context.span_id)]
    assert upstream.calls[0].headers["tracestate"] == "vendor=abc"


async def test_an_unsampled_client_trace_exports_nothing_and_says_so() -> None:
    _, trace_id, span_id = client_traceparent()
    unsampled = f"00-{trace_id:032x}-{span_id:016x}-00"
    async with traced_gateway(FakeVLLM([ROUTE_QWEN, ANSWER]), qwen_upstream()) as gw:
        await gw.client.chat.completions.create(
            model="router-r1", messages=QUESTION, extra_headers={"traceparent": unsampled}
        )
    assert gw.spans.get_finished_spans() == ()
    sent = [parse_traceparent(tp) for tp in gw.engine_log.traceparents()]
    assert sent
    assert all(p is not None and not p.sampled for p in sent)


async def test_content_goes_into_events_only_when_allowed() -> None:
    async with traced_gateway(
        FakeVLLM([ROUTE_QWEN, ANSWER]), qwen_upstream(), telemetry_capture_content=True
    ) as gw:
        await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
    named = spans_by_name(gw)
    (request,) = named["invoke_agent router-r1"]
    (event,) = request.events
    assert event.name == "gen_ai.client.inference.operation.details"
    assert "War and Peace" in str((event.attributes or {})["gen_ai.input.messages"])
    (call,) = named["chat Qwen2.5-7B-Instruct"]
    assert "Leo Tolstoy wrote it." in str(call.events[0].attributes or {})


async def test_tracing_off_adds_no_header_and_no_middleware(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    traceparent, _, _ = client_traceparent()
    async with traced_gateway(FakeVLLM([ROUTE_QWEN, ANSWER]), qwen_upstream(), traced=False) as gw:
        await gw.client.chat.completions.create(
            model="router-r1", messages=QUESTION, extra_headers={"traceparent": traceparent}
        )
        state = gw.app.state.router_r1
        assert state.telemetry is None
        assert all(
            m.cls.__name__ != "TraceContextMiddleware"  # type: ignore[attr-defined]
            for m in gw.app.user_middleware
        )
    assert gw.engine_log.traceparents()
    assert all(tp is None for tp in gw.engine_log.traceparents())
    assert all("traceparent" not in call.headers for call in gw.upstream.calls)
