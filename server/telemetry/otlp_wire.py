"""OTLP/protobuf bytes of a batch of spans, written directly: the ``ExportTraceServiceRequest``
the SDK's ``encode_spans(spans).SerializePartialToString()`` sends, without building the
protobuf objects first.

Why: the SDK encoder builds one Python protobuf object per span, attribute and value; at
about 100 µs a span on a CI-class core, exporting cost a passthrough request more CPU than
serving it did (bench/bench_tracing.py). Attribute keys and resource/scope blocks repeat in
every batch and are encoded once here (keys are cached). The message is the SDK's, field
for field (tests/server/telemetry/test_otlp_wire.py decodes both and compares them, for
every value kind OTLP has): same grouping by resource and scope, same flags, an empty
``status`` for an unset one, a ``None`` attribute as an empty ``AnyValue``.

Wire format (https://protobuf.dev/programming-guides/encoding/): a field is a varint key
``(number << 3) | type`` then its value: a varint (type 0), 8 little-endian bytes (1), a
length-prefixed payload (2: strings, bytes, nested messages) or 4 bytes (5). Proto3 leaves
out scalar fields at their default, and sends a oneof member (an ``AnyValue``'s) even when
it is the default.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind

logger = logging.getLogger("router_r1.telemetry")

_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")
_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_HAS_IS_REMOTE = 0x100  # SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_EMPTY_STATUS = b"\x7a\x00"  # field 15, length 0: the SDK always sets a status


_ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if value < 0:  # int64: two's complement, always 10 bytes
        value += 1 << 64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(key: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its key byte(s), the length, the payload."""
    return key + _varint(len(payload)) + payload


@lru_cache(maxsize=4096)
def _key_field(key: str) -> bytes:
    """``KeyValue.key`` (field 1), cached: a process writes the same attribute keys."""
    return _field(b"\x0a", key.encode("utf-8", "surrogatepass"))


def _any_value(value: Any) -> bytes:
    """An ``AnyValue``'s payload, by the SDK's order of type checks."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode("utf-8", "surrogatepass"))
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        items = b"".join(_field(b"\x0a", _any_value(item)) for item in value)
        return _field(b"\x2a", items)
    if isinstance(value, Mapping):
        pairs = b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _field(b"\x32", pairs)
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _key_value(key: str, value: Any) -> bytes:
    return _key_field(key) + _field(b"\x12", _any_value(value))


def _attributes(field_key: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Repeated ``KeyValue`` fields (a value OTLP cannot carry is left out, as the SDK does).
    The common value types are written inline: this loop is most of the encoder's time."""
    if not attributes:
        return b""
    out = []
    varint, pack, one = _varint, _DOUBLE.pack, _ONE_BYTE
    for key, value in attributes.items():
        kind = type(value)
        if kind is str:
            raw = value.encode("utf-8", "surrogatepass")
            size = len(raw)
            encoded = b"\x0a" + (one[size] if size < 0x80 else varint(size)) + raw
        elif kind is int:
            encoded = b"\x18" + (one[value] if 0 <= value < 0x80 else varint(value))
        elif kind is float:
            encoded = b"\x21" + pack(value)
        else:
            try:
                encoded = _any_value(value)
            except TypeError as error:
                logger.warning("attribute %s left out of the export: %s", key, error)
                continue
        size = len(encoded)
        pair = _key_field(key) + b"\x12" + (one[size] if size < 0x80 else varint(size)) + encoded
        size = len(pair)
        out.append(field_key + (one[size] if size < 0x80 else varint(size)) + pair)
    return b"".join(out)


def _flags(parent: SpanContext | None) -> int:
    if parent is not None and parent.is_remote:
        return _HAS_IS_REMOTE | _IS_REMOTE
    return _HAS_IS_REMOTE


def _count(key: bytes, value: int) -> bytes:
    return key + _varint(value) if value else b""


def _string(key: bytes, value: str | None) -> bytes:
    return _field(key, value.encode("utf-8", "surrogatepass")) if value else b""


def _event(event: Event) -> bytes:
    return b"".join(
        (
            b"\x09" + _FIXED64.pack(event.timestamp) if event.timestamp else b"",
            _string(b"\x12", event.name),
            _attributes(b"\x1a", event.attributes),
            _count(b"\x20", event.dropped_attributes),
        )
    )


def _link(link: Link) -> bytes:
    context = link.context
    return b"".join(
        (
            _field(b"\x0a", context.trace_id.to_bytes(16, "big")),
            _field(b"\x12", context.span_id.to_bytes(8, "big")),
            _attributes(b"\x22", link.attributes),
            _count(b"\x28", link.dropped_attributes),
            b"\x35" + _FIXED32.pack(_flags(context)),
        )
    )


def _span(span: ReadableSpan) -> bytes:
    context = span.get_span_context()
    assert context is not None, "a finished span has a context"
    parent = span.parent
    parts = [
        _field(b"\x0a", context.trace_id.to_bytes(16, "big")),
        _field(b"\x12", context.span_id.to_bytes(8, "big")),
    ]
    if context.trace_state:
        state = ",".join(f"{key}={value}" for key, value in context.trace_state.items())
        parts.append(_string(b"\x1a", state))
    if parent is not None:
        parts.append(_field(b"\x22", parent.span_id.to_bytes(8, "big")))
    parts.append(_string(b"\x2a", span.name))
    parts.append(b"\x30" + _varint(_KIND[span.kind]))
    if span.start_time:
        parts.append(b"\x39" + _FIXED64.pack(span.start_time))
    if span.end_time:
        parts.append(b"\x41" + _FIXED64.pack(span.end_time))
    parts.append(_attributes(b"\x4a", span.attributes))
    parts.append(_count(b"\x50", span.dropped_attributes))
    parts.extend(_field(b"\x5a", _event(event)) for event in span.events)
    parts.append(_count(b"\x60", span.dropped_events))
    parts.extend(_field(b"\x6a", _link(link)) for link in span.links)
    parts.append(_count(b"\x70", span.dropped_links))
    status = span.status
    if status.status_code.value == 0 and not status.description:
        parts.append(_EMPTY_STATUS)
    else:
        payload = _string(b"\x12", status.description) + _count(b"\x18", status.status_code.value)
        parts.append(_field(b"\x7a", payload))
    parts.append(b"\x85\x01" + _FIXED32.pack(_flags(parent)))
    return b"".join(parts)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    return b"".join(
        (
            _string(b"\x0a", scope.name),
            _string(b"\x12", scope.version),
            _attributes(b"\x1a", scope.attributes),
        )
    )


class _Group:
    """The spans of one resource and scope, in arrival order."""

    def __init__(self, resource: Resource, scope: InstrumentationScope | None) -> None:
        self.resource, self.scope = resource, scope
        self.spans: list[bytes] = []


def encode_export_request(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` of ``spans`` (see the module docstring).

    Spans are grouped by resource, then by instrumentation scope, first seen first, as the
    SDK does; equal resources (or scopes) that are distinct objects share a group."""
    by_resource: dict[int, list[_Group]] = {}  # id(resource) -> its groups, by scope
    resources: list[list[_Group]] = []
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope or None
        groups = by_resource.get(id(resource))
        if groups is None:
            groups = next((g for g in resources if g[0].resource == resource), None)
            if groups is None:
                groups = []
                resources.append(groups)
            by_resource[id(resource)] = groups
        group = next((g for g in groups if g.scope is scope), None)
        if group is None:
            group = next((g for g in groups if g.scope == scope), None)
        if group is None:
            group = _Group(resource, scope)
            groups.append(group)
        group.spans.append(_span(span))
    out = []
    for groups in resources:
        resource = groups[0].resource
        parts = [_field(b"\x0a", _attributes(b"\x0a", resource.attributes))]
        for group in groups:
            scope_spans = b"".join(
                (
                    _field(b"\x0a", _scope(group.scope)),
                    *(_field(b"\x12", span) for span in group.spans),
                    _string(b"\x1a", group.scope.schema_url if group.scope else None),
                )
            )
            parts.append(_field(b"\x12", scope_spans))
        parts.append(_string(b"\x1a", resource.schema_url))
        out.append(_field(b"\x0a", b"".join(parts)))
    return b"".join(out)
