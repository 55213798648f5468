"""W3C Trace Context headers: parsing a client's ``traceparent``/``tracestate`` and formatting
the ``traceparent`` sent on the calls the gateway makes within a request.

https://www.w3.org/TR/trace-context/: ``version-trace_id-parent_id-flags`` in lowercase hex;
an all-zero trace or parent id, version ``ff`` or malformed text make the header invalid, and
an invalid header is ignored (the request starts a new trace), never an error. A version above
``00`` may append fields: they are ignored, as the spec asks. ``tracestate`` is kept only when
it parses (at most 32 ``key=value`` members) and is forwarded unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opentelemetry.trace.span import TraceState

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
SAMPLED_FLAG = 0x01

_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)


@dataclass(frozen=True)
class TraceParent:
    """A valid ``traceparent``: the caller's trace and its span (our request span's parent)."""

    trace_id: int
    span_id: int
    flags: int

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED_FLAG)


def parse_traceparent(header: str | None) -> TraceParent | None:
    """The header's fields, or None when it is absent or invalid."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip())
    if match is None:
        return None
    version = match["version"]
    if version == "ff" or (version == "00" and match["rest"] is not None):
        return None
    trace_id, span_id = int(match["trace_id"], 16), int(match["span_id"], 16)
    if trace_id == 0 or span_id == 0:
        return None
    return TraceParent(trace_id=trace_id, span_id=span_id, flags=int(match["flags"], 16))


def format_traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """A version-00 ``traceparent`` naming ``span_id`` as the parent of the callee's spans
    (only the sampled bit of ``flags`` is defined by version 00; others go out as given)."""
    return f"00-{trace_id:032x}-{span_id:016x}-{flags & 0xFF:02x}"


def parse_tracestate(header: str | None) -> str | None:
    """The header re-serialised when it holds valid members, else None."""
    if not header:
        return None
    state = TraceState.from_header([header])
    return state.to_header() if len(state) else None


def forwarded_headers(traceparent: str | None, tracestate: str | None) -> dict[str, str]:
    """The client's trace headers, validated, to forward unchanged while telemetry is off (so
    an engine's own spans still join the client's trace)."""
    parent = parse_traceparent(traceparent)
    if parent is None:
        return {}
    headers = {TRACEPARENT: format_traceparent(parent.trace_id, parent.span_id, parent.flags)}
    state = parse_tracestate(tracestate)
    if state is not None:
        headers[TRACESTATE] = state
    return headers
