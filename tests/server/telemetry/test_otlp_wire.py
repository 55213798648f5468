"""server/telemetry/otlp_wire.py writes the message the SDK's encoder writes, for every kind
of span, attribute value, event, link, status, resource and scope an exporter can be given
(decoded and compared field for field; for the gateway's own spans, byte for byte)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from server.telemetry import RequestTraceContext, build_spans
from server.telemetry.otlp_wire import encode_export_request
from tests.server.telemetry.test_spans import episode, setup

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
VALUES: list[object] = [
    "text",
    "",
    "é ü 🚀 \u2028",
    "x" * 300,  # a length over one varint byte
    True,
    False,
    0,
    1,
    127,
    128,
    2**40,
    -1,
    -(2**63),
    2**63 - 1,
    0.0,
    -2.5,
    1e-300,
    float("inf"),
    b"\x00\xff",
    None,
    ("a", "b"),
    (1, 2, 3),
    (0.5, True),
    (),
    ["list", 2],
    {"nested": {"k": 1}, "other": "v"},
]


def _context(span_id: int, *, remote: bool = False, state: TraceState | None = None) -> SpanContext:
    return SpanContext(
        TRACE_ID, span_id, is_remote=remote, trace_flags=TraceFlags(1), trace_state=state
    )


def _span(name: str, span_id: int, **fields: object) -> ReadableSpan:
    defaults: dict[str, object] = {
        "context": _context(span_id),
        "resource": Resource({"service.name": "t"}),
        "instrumentation_scope": InstrumentationScope("scope", "1.0"),
        "start_time": 1_700_000_000_000_000_000,
        "end_time": 1_700_000_000_500_000_000,
        "kind": SpanKind.INTERNAL,
    }
    defaults.update(fields)
    return ReadableSpan(name=name, **defaults)  # type: ignore[arg-type]


def _same(spans: list[ReadableSpan]) -> None:
    ours = ExportTraceServiceRequest.FromString(encode_export_request(spans))
    assert ours == encode_spans(spans)


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_every_attribute_value_kind(value: object) -> None:
    _same([_span("s", 1, attributes={"key": value, "after": "still here"})])


def test_every_span_field() -> None:
    resource = Resource({"service.name": "gw", "n": 3}, schema_url="https://schema/1")
    scope = InstrumentationScope("router_r1", "0.1.0", "https://scope/1", {"a": "b"})
    spans = [
        _span(
            "request",
            1,
            context=_context(1, state=TraceState([("vendor", "v1"), ("other", "x")])),
            parent=_context(99, remote=True),
            kind=SpanKind.SERVER,
            resource=resource,
            instrumentation_scope=scope,
            attributes={"http.response.status_code": 500, "k": "v"},
            events=(
                Event("exception", {"exception.type": "E", "n": 2}, 1_700_000_000_100_000_000),
                Event("bare", None, 1_700_000_000_200_000_000),
            ),
            links=(Link(_context(7, remote=True), {"why": "fan-in"}), Link(_context(8))),
            status=Status(StatusCode.ERROR, "upstream failed"),
        ),
        _span("child", 2, parent=_context(1), kind=SpanKind.CLIENT, status=Status(StatusCode.OK)),
        _span("producer", 3, kind=SpanKind.PRODUCER, status=Status(StatusCode.ERROR)),
        _span("consumer", 4, kind=SpanKind.CONSUMER, start_time=None, end_time=None),
        _span("no scope", 5, instrumentation_scope=None),
    ]
    _same(spans)


def test_grouping_by_resource_and_scope_as_the_sdk_does() -> None:
    one, other = Resource({"service.name": "a"}), Resource({"service.name": "b"})
    equal_to_one = Resource({"service.name": "a"})  # a distinct object, the same resource
    scope_a, scope_b = InstrumentationScope("a"), InstrumentationScope("b")
    spans = [
        _span("1", 1, resource=one, instrumentation_scope=scope_a),
        _span("2", 2, resource=other, instrumentation_scope=scope_a),
        _span("3", 3, resource=one, instrumentation_scope=scope_b),
        _span("4", 4, resource=equal_to_one, instrumentation_scope=InstrumentationScope("a")),
        _span("5", 5, resource=other, instrumentation_scope=scope_a),
    ]
    _same(spans)
    decoded = ExportTraceServiceRequest.FromString(encode_export_request(spans))
    assert len(decoded.resource_spans) == 2


def test_spans_from_the_sdks_own_tracer() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "sdk"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t", "2.0")
    with tracer.start_as_current_span("outer", attributes={"a": [1, 2], "b": 0.25}) as outer:
        outer.add_event("e", {"x": "y"})
        with tracer.start_as_current_span("inner", kind=SpanKind.CLIENT) as inner:
            inner.set_status(Status(StatusCode.ERROR, "boom"))
            inner.set_attribute("flag", False)
    spans = list(exporter.get_finished_spans())
    assert len(spans) == 2
    _same(spans)


def test_the_gateways_own_spans_byte_for_byte() -> None:
    spans = build_spans(episode(RequestTraceContext.start(None)), setup(include_content=True))
    assert len(spans) > 3
    assert encode_export_request(spans) == encode_spans(spans).SerializePartialToString()


def test_a_value_otlp_cannot_carry_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    span = _span("s", 1, attributes={"bad": object(), "good": 1})
    with caplog.at_level(logging.WARNING, logger="router_r1.telemetry"):
        decoded = ExportTraceServiceRequest.FromString(encode_export_request([span]))
    (sent,) = decoded.resource_spans[0].scope_spans[0].spans
    assert [kv.key for kv in sent.attributes] == ["good"]
    assert "bad" in caplog.text


def test_an_empty_batch() -> None:
    assert encode_export_request([]) == b""
