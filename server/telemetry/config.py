"""When tracing is on and how spans leave the process: the standard ``OTEL_*`` variables only.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_SERVICE_NAME`` is set, unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``
(only ``otlp`` is supported as an exporter). The protocol is ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``
or ``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf`` (the default) or ``grpc``. The sampler is
``OTEL_TRACES_SAMPLER`` (+ ``OTEL_TRACES_SAMPLER_ARG``), ``parentbased_always_on`` by default.

Everything else (endpoint, headers, timeout, compression, certificates; the batch processor's
``OTEL_BSP_*``; ``OTEL_RESOURCE_ATTRIBUTES``) is read from the process environment by the SDK's
own exporter, processor and resource, exactly as for any OpenTelemetry program.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)

Protocol = Literal["http/protobuf", "grpc"]
PROTOCOLS: tuple[Protocol, ...] = ("http/protobuf", "grpc")
TURNED_ON_BY = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
)
_FIXED_SAMPLERS: dict[str, Sampler] = {
    "always_on": ALWAYS_ON,
    "always_off": ALWAYS_OFF,
    "parentbased_always_on": DEFAULT_ON,
    "parentbased_always_off": DEFAULT_OFF,
}


class TelemetryConfigError(ValueError):
    """An ``OTEL_*`` variable asks for something this gateway cannot do (a startup error)."""


@dataclass(frozen=True)
class TelemetryConfig:
    enabled: bool
    protocol: Protocol = "http/protobuf"
    sampler: Sampler = DEFAULT_ON
    include_content: bool = False

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], *, include_content: bool = False
    ) -> TelemetryConfig:
        """The configuration ``environ`` asks for; ``include_content`` is the project's own
        setting (prompts and replies as span events), off by default."""

        def get(name: str) -> str:
            return environ.get(name, "").strip()

        exporter = get("OTEL_TRACES_EXPORTER").lower()
        if exporter not in ("", "otlp", "none"):
            raise TelemetryConfigError(
                f"OTEL_TRACES_EXPORTER={exporter!r} is not supported: use otlp or none"
            )
        disabled = get("OTEL_SDK_DISABLED").lower() == "true" or exporter == "none"
        if disabled or not any(get(name) for name in TURNED_ON_BY):
            return cls(enabled=False)
        raw = (
            get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or get("OTEL_EXPORTER_OTLP_PROTOCOL")
        ).lower()
        protocol = raw or "http/protobuf"
        if protocol not in PROTOCOLS:
            raise TelemetryConfigError(
                f"OTLP protocol {raw!r} is not supported: use http/protobuf or grpc"
            )
        return cls(
            enabled=True,
            protocol="grpc" if protocol == "grpc" else "http/protobuf",
            sampler=_sampler(get("OTEL_TRACES_SAMPLER").lower(), get("OTEL_TRACES_SAMPLER_ARG")),
            include_content=include_content,
        )


def _sampler(name: str, arg: str) -> Sampler:
    if not name:
        return DEFAULT_ON
    if name in _FIXED_SAMPLERS:
        return _FIXED_SAMPLERS[name]
    if name in ("traceidratio", "parentbased_traceidratio"):
        try:
            rate = float(arg) if arg else 1.0
        except ValueError:
            raise TelemetryConfigError(f"OTEL_TRACES_SAMPLER_ARG={arg!r} is not a number") from None
        if not 0.0 <= rate <= 1.0:
            raise TelemetryConfigError(f"OTEL_TRACES_SAMPLER_ARG={arg!r} is not within [0, 1]")
        return TraceIdRatioBased(rate) if name == "traceidratio" else ParentBasedTraceIdRatio(rate)
    raise TelemetryConfigError(
        f"OTEL_TRACES_SAMPLER={name!r} is not supported: use always_on, always_off, "
        "traceidratio or their parentbased_ forms"
    )
