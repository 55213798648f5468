"""Spans exported over OTLP (http/protobuf and gRPC, configured by OTEL_* variables only) to a
real Phoenix, read back through its REST API: the tree, the times, the attributes and the
client's ``traceparent`` as the request span's parent; last, from a running gateway."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from server.telemetry import ModelInfo, RequestFacts, TraceExporter
from tests.fakes.traces import LLAMA, POLICY_MODEL, QWEN, three_step_trace
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.telemetry.gateway import ANSWER, QUESTION, ROUTE_QWEN, traced_gateway
from tests.server.telemetry.gateway import QWEN as GATEWAY_QWEN
from tests.servers.phoenix_server import PhoenixServer

pytestmark = pytest.mark.slow

MODELS = {
    QWEN: ModelInfo("qwen/qwen2.5-7b-instruct", "nvidia"),
    LLAMA: ModelInfo("meta/llama-3.1-8b-instruct", "nvidia"),
}


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    server = PhoenixServer(tmp_path_factory.mktemp("phoenix")).start()
    print(f"phoenix started in {server.started_in_s:.1f} s")
    try:
        yield server
    finally:
        server.stop()


def client_traceparent() -> tuple[str, str, str]:
    trace_id, span_id = f"{random.getrandbits(128):032x}", f"{random.getrandbits(64):016x}"
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def export_one(include_content: bool) -> tuple[str, str, RequestFacts]:
    """One three-turn episode's spans, exported as the gateway would (then flushed)."""
    traceparent, trace_id, parent_span = client_traceparent()
    exporter = TraceExporter.from_environ(include_content=include_content)
    assert exporter.enabled
    context = exporter.start(traceparent, "rojo=00f067aa0ba902b7")
    assert context is not None
    started = time.time() - 5
    facts = RequestFacts(
        context=context,
        request_id=f"chatcmpl-{trace_id[:8]}",
        mode="episode",
        status_code=200,
        started_at=started - 0.002,
        duration_ms=3104.0,
        key_id="alice",
        profile="router-r1",
        trace=three_step_trace(started_at=started),
        policy_provider="vllm",
        question="Who wrote War and Peace?",
        models=MODELS,
    )
    exporter.export(facts)
    exporter.shutdown()
    return trace_id, parent_span, facts


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def check_tree(
    spans: list[dict[str, Any]], trace_id: str, parent_span: str, facts: RequestFacts
) -> None:
    assert facts.trace is not None
    by_id = {s["context"]["span_id"]: s for s in spans}
    (request,) = [s for s in spans if s["name"] == "invoke_agent router-r1"]
    assert request["parent_id"] == parent_span  # the client's span, from its traceparent
    assert all(s["context"]["trace_id"] == trace_id for s in spans)
    turns = sorted(
        (s for s in spans if s["name"] == f"text_completion {POLICY_MODEL}"),
        key=lambda s: s["attributes"]["router_r1.step.index"],
    )
    calls = [s for s in spans if s["name"].startswith("chat ")]
    assert [t["parent_id"] for t in turns] == [request["context"]["span_id"]] * 3
    assert sorted(by_id[c["parent_id"]]["attributes"]["router_r1.step.index"] for c in calls) == [
        0,
        1,
    ]
    assert {c["name"] for c in calls} == {f"chat {QWEN}", f"chat {LLAMA}"}

    attrs = request["attributes"]
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert (attrs["router_r1.profile"], attrs["router_r1.outcome"]) == ("router-r1", "answer")
    assert attrs["router_r1.routes"] == 2
    assert attrs["router_r1.cost_usd"] == pytest.approx(0.0022)
    assert attrs["router_r1.key_id"] == "alice"
    turn0 = turns[0]["attributes"]
    assert (turn0["router_r1.action"], turn0["gen_ai.usage.input_tokens"]) == ("route", 120)
    assert turns[1]["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 150
    qwen = next(c for c in calls if c["name"] == f"chat {QWEN}")
    assert qwen["attributes"]["gen_ai.request.model"] == "qwen/qwen2.5-7b-instruct"
    assert qwen["attributes"]["router_r1.attempts"] == 2
    llama = next(c for c in calls if c["name"] == f"chat {LLAMA}")
    assert llama["status_code"] == "ERROR"
    assert llama["attributes"]["error.type"] == "timeout"

    # real times: the turns and calls sit where the trace put them
    base = facts.trace.started_at
    assert _unix(turns[1]["start_time"]) == pytest.approx(base + 1.4, abs=1e-3)
    assert _unix(turns[1]["end_time"]) == pytest.approx(base + 2.8, abs=1e-3)
    assert _unix(qwen["start_time"]) == pytest.approx(base + 0.3, abs=1e-3)
    assert _unix(qwen["end_time"]) == pytest.approx(base + 1.3, abs=1e-3)


def test_spans_over_http_protobuf(phoenix: PhoenixServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix.otlp_http_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "router-r1-test")
    trace_id, parent_span, facts = export_one(include_content=False)
    spans = phoenix.wait_for_spans(trace_id, 6)
    assert len(spans) == 6
    check_tree(spans, trace_id, parent_span, facts)
    assert all(not s["events"] for s in spans)  # content capture is off by default
    text = json.dumps(spans)
    assert "Who wrote War and Peace?" not in text
    assert "I should ask who wrote it." not in text


def test_spans_over_grpc_with_content(
    phoenix: PhoenixServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix.otlp_grpc_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    trace_id, parent_span, facts = export_one(include_content=True)
    spans = phoenix.wait_for_spans(trace_id, 6)
    check_tree(spans, trace_id, parent_span, facts)
    (request,) = [s for s in spans if s["name"] == "invoke_agent router-r1"]
    (event,) = request["events"]
    assert event["name"] == "gen_ai.client.inference.operation.details"
    messages = json.loads(event["attributes"]["gen_ai.input.messages"])
    assert messages[0]["parts"][0]["content"] == "Who wrote War and Peace?"


async def test_a_gateway_episode_read_back_from_phoenix(
    phoenix: PhoenixServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The running gateway, configured by OTEL_* alone (its own batch processor and OTLP
    exporter), an episode through the official SDK; the lifespan's exit flushes the spans."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix.otlp_http_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "router-r1-gateway-test")
    traceparent, trace_id, parent_span = client_traceparent()
    upstream = FakeUpstream({GATEWAY_QWEN: UpstreamScript(reply="Leo Tolstoy wrote it.")})
    async with traced_gateway(FakeVLLM([ROUTE_QWEN, ANSWER]), upstream, traced=False) as gw:
        assert gw.app.state.router_r1.telemetry is not None  # on from the environment
        completion = await gw.client.chat.completions.create(
            model="router-r1", messages=QUESTION, extra_headers={"traceparent": traceparent}
        )
    spans = phoenix.wait_for_spans(trace_id, 4)
    assert len(spans) == 4
    by_id = {s["context"]["span_id"]: s for s in spans}
    (request,) = [s for s in spans if s["name"] == "invoke_agent router-r1"]
    assert request["parent_id"] == parent_span
    attrs = request["attributes"]
    assert completion.id == f"chatcmpl-{attrs['router_r1.request_id']}"
    assert (attrs["router_r1.outcome"], attrs["router_r1.routes"]) == ("answer", 1)
    turns = [s for s in spans if s["name"].startswith("text_completion ")]
    assert len(turns) == 2
    assert {t["parent_id"] for t in turns} == {request["context"]["span_id"]}
    (call,) = [s for s in spans if s["name"] == "chat Qwen2.5-7B-Instruct"]
    assert by_id[call["parent_id"]]["attributes"]["router_r1.step.index"] == 0
    assert call["attributes"]["gen_ai.request.model"] == GATEWAY_QWEN
    # the upstream saw the call's own span as its parent
    sent = upstream.calls[0].headers["traceparent"]
    assert sent == f"00-{trace_id}-{call['context']['span_id']}-01"
    assert _unix(request["start_time"]) <= _unix(call["start_time"])
    assert _unix(call["end_time"]) <= _unix(request["end_time"])
