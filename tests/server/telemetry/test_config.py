"""Tracing is on only when the standard OTEL_* variables ask for it."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    DEFAULT_ON,
    ParentBasedTraceIdRatio,
    TraceIdRatioBased,
)

from server.telemetry import TelemetryConfig, TelemetryConfigError, TraceExporter

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},  # a protocol alone turns nothing on
        {"OTEL_SERVICE_NAME": ""},
        {**ENDPOINT, "OTEL_SDK_DISABLED": "true"},
        {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"},
    ],
)
def test_off_unless_an_endpoint_or_service_name_is_set(environ: dict[str, str]) -> None:
    config = TelemetryConfig.from_environ(environ)
    assert not config.enabled
    exporter = TraceExporter(config)
    assert not exporter.enabled
    assert exporter.start("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") is None
    exporter.shutdown()


@pytest.mark.parametrize(
    "environ",
    [
        ENDPOINT,
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
        {"OTEL_SERVICE_NAME": "router-r1"},
    ],
)
def test_on_with_an_endpoint_or_a_service_name(environ: dict[str, str]) -> None:
    config = TelemetryConfig.from_environ(environ, include_content=True)
    assert (config.enabled, config.protocol, config.include_content) == (
        True,
        "http/protobuf",
        True,
    )
    assert config.sampler is DEFAULT_ON


def test_the_protocol_is_read_traces_variable_first() -> None:
    grpc = {**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert TelemetryConfig.from_environ(grpc).protocol == "grpc"
    both = {**grpc, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
    assert TelemetryConfig.from_environ(both).protocol == "http/protobuf"


def test_samplers() -> None:
    def sampler(name: str, arg: str = "") -> object:
        environ = {**ENDPOINT, "OTEL_TRACES_SAMPLER": name, "OTEL_TRACES_SAMPLER_ARG": arg}
        return TelemetryConfig.from_environ(environ).sampler

    assert sampler("always_off") is ALWAYS_OFF
    assert isinstance(sampler("traceidratio", "0.25"), TraceIdRatioBased)
    assert isinstance(sampler("parentbased_traceidratio", "0.5"), ParentBasedTraceIdRatio)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/json"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "jaeger_remote"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "lots"}, "lots"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "[0, 1]"),
    ],
)
def test_unsupported_settings_are_clear_errors(extra: dict[str, str], message: str) -> None:
    with pytest.raises(TelemetryConfigError, match=message.replace("[", r"\[")):
        TelemetryConfig.from_environ({**ENDPOINT, **extra})
