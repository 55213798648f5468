"""The exporter hands built spans to its processor; off, unsampled or broken, it does nothing
(and never raises)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server.telemetry import RequestFacts, TelemetryConfig, TraceExporter
from server.telemetry.exporter import service_resource
from tests.fakes.traces import three_step_trace


@pytest.fixture
def memory() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def exporter(memory: InMemorySpanExporter, **config: object) -> TraceExporter:
    return TraceExporter(
        TelemetryConfig(enabled=True, **config),  # type: ignore[arg-type]
        processor=SimpleSpanProcessor(memory),
        resource=Resource({"service.name": "test"}),
    )


def facts(exporter: TraceExporter, traceparent: str | None = None) -> RequestFacts:
    context = exporter.start(traceparent)
    assert context is not None
    return RequestFacts(
        context=context,
        request_id="chatcmpl-x",
        mode="episode",
        status_code=200,
        started_at=1_700_000_000.0,
        duration_ms=3100.0,
        profile="router-r1",
        trace=three_step_trace(),
    )


def test_export_sends_the_whole_tree(memory: InMemorySpanExporter) -> None:
    traces = exporter(memory)
    traces.export(facts(traces))
    spans = memory.get_finished_spans()
    assert len(spans) == 6
    assert spans[0].resource.attributes["service.name"] == "test"
    assert spans[0].instrumentation_scope is not None
    assert spans[0].instrumentation_scope.name == "router_r1"
    traces.shutdown()
    traces.export(facts(exporter(memory)))  # after shutdown: nothing, no error
    assert len(memory.get_finished_spans()) == 6


def test_an_unsampled_request_exports_nothing(memory: InMemorySpanExporter) -> None:
    traces = exporter(memory)
    traces.export(facts(traces, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"))
    assert memory.get_finished_spans() == ()


def test_a_failure_while_building_is_logged_not_raised(
    memory: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    traces = exporter(memory)
    broken = facts(traces)
    object.__setattr__(broken, "started_at", "not a number")
    traces.export(broken)
    assert memory.get_finished_spans() == ()
    assert "not exported" in caplog.text


def test_the_service_is_named_unless_the_environment_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert service_resource().attributes["service.name"] == "router-r1-proxy"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-eu")
    assert service_resource().attributes["service.name"] == "gateway-eu"
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    assert service_resource().attributes["service.name"] == "from-attributes"


def test_the_default_processor_batches_over_otlp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    for protocol in ("http/protobuf", "grpc"):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        traces = TraceExporter.from_environ()
        assert traces.enabled
        traces.export(facts(traces))
        traces.shutdown(timeout_s=0.2)  # bounded even when the collector is unreachable
        assert not traces.enabled
