"""The gateway's OTLP trace exporter: one per process, a no-op when tracing is off.

Lifecycle (the gateway wires it): :meth:`TraceExporter.from_environ` at startup;
:meth:`~TraceExporter.start` when a request arrives (its ids and the ``traceparent`` to send
on the request's engine and upstream calls; None when off); :meth:`~TraceExporter.export`
after the request with its :class:`~.facts.RequestFacts` (spans are built then and handed to
a ``BatchSpanProcessor``, whose thread sends them: the request never waits on the backend);
:meth:`~TraceExporter.shutdown` at exit (flushes, bounded).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib import metadata

from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from server.telemetry.config import TelemetryConfig
from server.telemetry.context import RequestTraceContext
from server.telemetry.facts import RequestFacts
from server.telemetry.spans import SpanSetup, build_spans

logger = logging.getLogger("router_r1.telemetry")

DEFAULT_SERVICE_NAME = "router-r1-proxy"
SCOPE_NAME = "router_r1"
SHUTDOWN_TIMEOUT_S = 5.0


def _version() -> str:
    try:
        return metadata.version("router-r1-proxy")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0+unknown"


def otlp_span_exporter(config: TelemetryConfig) -> SpanExporter:
    """The SDK's OTLP exporter for ``config.protocol``, configured by the ``OTEL_EXPORTER_OTLP_*``
    variables of the process environment (imported here: nothing is loaded when off)."""
    if config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter()
    from server.telemetry.otlp_http import FastOTLPSpanExporter

    return FastOTLPSpanExporter()


def service_resource() -> Resource:
    """``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` as the SDK reads them; the service
    is named ``router-r1-proxy`` when they name none."""
    resource = Resource.create({SERVICE_VERSION: _version()})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


class TraceExporter:
    """Builds each finished request's spans and queues them for export."""

    def __init__(
        self,
        config: TelemetryConfig,
        *,
        processor: SpanProcessor | None = None,
        resource: Resource | None = None,
    ) -> None:
        """``processor`` defaults to a ``BatchSpanProcessor`` over the OTLP exporter (tests pass
        a ``SimpleSpanProcessor`` over an in-memory exporter)."""
        self.config = config
        self._processor: SpanProcessor | None = None
        self._setup: SpanSetup | None = None
        if not config.enabled:
            return
        if processor is None:
            processor = BatchSpanProcessor(otlp_span_exporter(config))
        self._processor = processor
        scope = InstrumentationScope(SCOPE_NAME, _version())
        self._setup = SpanSetup(resource or service_resource(), scope, config.include_content)

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, *, include_content: bool = False
    ) -> TraceExporter:
        """The exporter the environment asks for (raises ``TelemetryConfigError``)."""
        env = os.environ if environ is None else environ
        return cls(TelemetryConfig.from_environ(env, include_content=include_content))

    @property
    def enabled(self) -> bool:
        return self._processor is not None

    def start(
        self, traceparent: str | None = None, tracestate: str | None = None
    ) -> RequestTraceContext | None:
        """A new request's trace context (None when tracing is off)."""
        if self._processor is None:
            return None
        return RequestTraceContext.start(traceparent, tracestate, sampler=self.config.sampler)

    def export(self, facts: RequestFacts) -> None:
        """Queue the request's spans; never raises (a span lost is logged, not an error)."""
        processor, setup = self._processor, self._setup
        if processor is None or setup is None or not facts.context.sampled:
            return
        try:
            for span in build_spans(facts, setup):
                processor.on_end(span)
        except Exception:  # the request is served: its telemetry must not fail it
            logger.exception("spans of request %s not exported", facts.request_id)

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Send what is queued (waiting at most ``timeout_s``) and stop the export thread."""
        processor, self._processor = self._processor, None
        if processor is None:
            return
        if not processor.force_flush(int(timeout_s * 1000)):
            logger.warning("spans still queued after %.1f s were dropped at shutdown", timeout_s)
        processor.shutdown()
