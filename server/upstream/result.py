"""What a passthrough call returned, and token usage read from an upstream reply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_json(cls, value: Any) -> Usage | None:
        """``usage`` of an OpenAI response, or ``None`` when absent or unusable."""
        if not isinstance(value, dict):
            return None
        prompt = _count(value.get("prompt_tokens"))
        completion = _count(value.get("completion_tokens"))
        if prompt is None and completion is None:
            return None
        return cls(prompt_tokens=prompt or 0, completion_tokens=completion or 0)


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


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
