"""server/telemetry/otlp_http.py: the SDK's OTLP/HTTP exporter with the gateway's encoder
sends what the SDK would (to a real HTTP receiver, with the SDK's headers and path), fails a
batch the receiver refuses, and falls back to the SDK's export on an unexpected SDK."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult

from server.telemetry import RequestTraceContext, build_spans
from server.telemetry.otlp_http import FastOTLPSpanExporter
from tests.server.telemetry.test_spans import episode, setup


class _Receiver:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.bodies.append((self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Receiver]:
    found = _Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", found.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=eu")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    yield found
    found.close()


def test_it_sends_what_the_sdk_would(receiver: _Receiver) -> None:
    spans = build_spans(episode(RequestTraceContext.start(None)), setup())
    exporter = FastOTLPSpanExporter()
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    ((path, headers, body),) = receiver.bodies
    assert path == "/v1/traces"
    assert headers["x-tenant"] == "eu"
    assert {k.lower(): v for k, v in headers.items()}["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceRequest.FromString(body) == encode_spans(spans)


def test_a_refused_batch_is_a_failure(receiver: _Receiver) -> None:
    receiver.status = 400  # not retryable: one try
    exporter = FastOTLPSpanExporter()
    try:
        spans = build_spans(episode(RequestTraceContext.start(None)), setup())
        assert exporter.export(spans) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    assert exporter.export(spans) is SpanExportResult.FAILURE  # after shutdown: nothing sent
    assert len(receiver.bodies) == 1


def test_an_unexpected_sdk_gets_its_own_export(
    receiver: _Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("server.telemetry.otlp_http._SDK_PARTS", ("_no_such_part",))
    exporter = FastOTLPSpanExporter()
    spans = build_spans(episode(RequestTraceContext.start(None)), setup())
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    ((_, _, body),) = receiver.bodies
    assert ExportTraceServiceRequest.FromString(body) == encode_spans(spans)
