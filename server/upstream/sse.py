"""A byte-level server-sent-events splitter for passthrough streams.

Events are handed on verbatim (the concatenation of everything :meth:`SSESplitter.feed` and
:meth:`SSESplitter.flush` return is exactly the input), so nothing is re-serialised. Only events
that carry a ``"usage": {...}`` object are JSON-parsed; the others cost a byte search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from router_model.usage import Usage

# A blank line: two line terminators in a row; a terminator is CRLF, a lone CR or LF.
_BOUNDARY = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_DONE = b"[DONE]"


class SSESplitter:
    """Cuts a byte stream into complete SSE events (each with its terminating blank line)."""

    __slots__ = ("_buffer", "_saw_cr", "_scan_from")

    def __init__(self) -> None:
        self._buffer = b""
        self._scan_from = 0
        self._saw_cr = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """The events completed by ``chunk``, in order; the rest is kept for the next feed."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._saw_cr and b"\r" in chunk:
            self._saw_cr = True
        events: list[bytes] = []
        start = 0
        position = self._scan_from
        if not self._saw_cr:  # the common case: LF only
            while (index := buffer.find(b"\n\n", position)) >= 0:
                end = index + 2
                events.append(buffer[start:end])
                start = position = end
        else:
            while (match := _BOUNDARY.search(buffer, position)) is not None:
                end = match.end()
                if end == len(buffer) and buffer.endswith(b"\r"):
                    break  # the CR may be the first half of a CRLF still in flight
                events.append(buffer[start:end])
                start = position = end
        self._buffer = buffer[start:] if start else buffer
        # A boundary is at most 4 bytes: resume the scan just before the kept tail's end.
        self._scan_from = max(len(self._buffer) - 3, 0)
        return events

    def flush(self) -> bytes | None:
        """What is left at end of stream (an unterminated event), or ``None``."""
        rest, self._buffer, self._scan_from = self._buffer, b"", 0
        return rest or None


def event_data(event: bytes) -> bytes | None:
    """The event's data (``data:`` lines joined by LF), or ``None`` for comments-only events."""
    if (
        event.startswith(b"data: ")
        and event.endswith(b"\n\n")
        and b"\n" not in event[6:-2]
        and b"\r" not in event
    ):
        return event[6:-2]
    parts: list[bytes] = []
    for line in _LINE_BREAK.split(event):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if name != b"data":
            continue
        parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts) if parts else None


def is_done(event: bytes) -> bool:
    """Whether the event is the ``data: [DONE]`` sentinel."""
    if _DONE not in event:
        return False
    data = event_data(event)
    return data is not None and data.strip() == _DONE


def is_comment(event: bytes) -> bool:
    """Whether the event has no data at all (keep-alive comments, blank lines)."""
    return event_data(event) is None


@dataclass(frozen=True)
class UsageEvent:
    usage: Usage
    usage_only: bool  # no choices: the extra chunk ``stream_options.include_usage`` adds


def usage_event(event: bytes) -> UsageEvent | None:
    """The usage an event reports, parsing JSON only when it holds a ``"usage": {`` object."""
    if _USAGE_OBJECT.search(event) is None:
        return None
    data = event_data(event)
    if data is None:
        return None
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    usage = Usage.from_json(payload.get("usage"))
    if usage is None:
        return None
    return UsageEvent(usage=usage, usage_only=not payload.get("choices"))
