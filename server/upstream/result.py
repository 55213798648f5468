"""What a passthrough call returned (its usage is the core's one :class:`Usage` type)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from router_model.usage import Usage

# Upstream response headers worth handing to the HTTP layer (plus every ``x-ratelimit-*``).
FORWARDED_HEADERS = frozenset(
    {"content-type", "x-request-id", "openai-processing-ms", "retry-after", "request-id"}
)


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers worth forwarding; a repeated one (in a multi-dict) joined by ", "."""
    forwarded: dict[str, str] = {}
    for key, value in headers.items():
        name = key.lower()
        if name in FORWARDED_HEADERS or name.startswith("x-ratelimit-"):
            seen = forwarded.get(name)
            forwarded[name] = value if seen is None else f"{seen}, {value}"
    return forwarded


@dataclass(frozen=True)
class UpstreamResult:
    """A successful (2xx) non-streamed passthrough reply."""

    model: str  # registry name
    status_code: int
    body: dict[str, Any]  # parsed upstream JSON (its "model" is the upstream id)
    content: bytes  # the raw upstream body, to return verbatim without re-serialising
    headers: dict[str, str]  # subset: content-type, request ids, rate-limit headers
    latency_s: float
    attempts: int = 1
    usage: Usage | None = None  # None: the upstream reported none
    cost_usd: float = 0.0
    deployment: str | None = None  # which of the model's deployments answered
