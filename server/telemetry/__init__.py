"""OpenTelemetry traces of the gateway's requests, built after each request from its trace.

- :mod:`.traceparent`: W3C ``traceparent``/``tracestate`` parsing and formatting.
- :mod:`.context`: one request's trace and span ids, fixed at its start (the ``traceparent``
  its engine and upstream calls carry) and its sampling decision.
- :mod:`.facts`: what the builder needs to know about a finished request.
- :mod:`.spans`: the pure builder (request → policy turns → upstream calls), GenAI semantic
  conventions plus ``router_r1.*`` attributes (:mod:`.attributes`).
- :mod:`.config` / :mod:`.exporter`: configured by the standard ``OTEL_*`` variables only; a
  no-op when they ask for nothing, OTLP over http/protobuf or gRPC otherwise.
"""

from server.telemetry.config import TelemetryConfig, TelemetryConfigError
from server.telemetry.context import RequestTraceContext
from server.telemetry.exporter import TraceExporter
from server.telemetry.facts import ModelInfo, RequestFacts, UpstreamCall, model_catalog
from server.telemetry.spans import SpanSetup, build_spans
from server.telemetry.traceparent import (
    TRACEPARENT,
    TRACESTATE,
    TraceParent,
    format_traceparent,
    forwarded_headers,
    parse_traceparent,
    parse_tracestate,
)

__all__ = [
    "TRACEPARENT",
    "TRACESTATE",
    "ModelInfo",
    "RequestFacts",
    "RequestTraceContext",
    "SpanSetup",
    "TelemetryConfig",
    "TelemetryConfigError",
    "TraceExporter",
    "TraceParent",
    "UpstreamCall",
    "build_spans",
    "format_traceparent",
    "forwarded_headers",
    "model_catalog",
    "parse_traceparent",
    "parse_tracestate",
]
