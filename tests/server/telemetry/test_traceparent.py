"""W3C traceparent/tracestate parsing and formatting, and the request context's ids."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, DEFAULT_ON, ParentBasedTraceIdRatio

from server.telemetry import (
    RequestTraceContext,
    format_traceparent,
    forwarded_headers,
    parse_traceparent,
    parse_tracestate,
)

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
VALID = f"00-{TRACE}-{SPAN}-01"


def test_a_valid_traceparent_parses() -> None:
    parent = parse_traceparent(VALID)
    assert parent is not None
    assert (parent.trace_id, parent.span_id, parent.sampled) == (
        int(TRACE, 16),
        int(SPAN, 16),
        True,
    )
    unsampled = parse_traceparent(f"00-{TRACE}-{SPAN}-00")
    assert unsampled is not None
    assert not unsampled.sampled


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}",  # no flags
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{TRACE.upper()}-{SPAN}-01",  # uppercase hex
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE[:-1]}-{SPAN}-01",
    ],
)
def test_invalid_traceparents_are_ignored(header: str | None) -> None:
    assert parse_traceparent(header) is None


def test_a_later_version_may_append_fields() -> None:
    parent = parse_traceparent(f"01-{TRACE}-{SPAN}-01-what-comes-next")
    assert parent is not None
    assert parent.trace_id == int(TRACE, 16)


def test_format_round_trips() -> None:
    assert format_traceparent(int(TRACE, 16), int(SPAN, 16), 1) == VALID
    assert format_traceparent(1, 2, 0) == f"00-{1:032x}-{2:016x}-00"


def test_tracestate_is_kept_only_when_valid() -> None:
    assert parse_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE") == (
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    )
    assert parse_tracestate(None) is None
    assert parse_tracestate("not a valid member") is None


def test_forwarded_headers_pass_the_clients_own_through() -> None:
    assert forwarded_headers(VALID, "rojo=1") == {"traceparent": VALID, "tracestate": "rojo=1"}
    assert forwarded_headers("garbage", "rojo=1") == {}


def test_a_context_joins_the_clients_trace() -> None:
    ctx = RequestTraceContext.start(VALID, "rojo=1")
    assert ctx.trace_id == int(TRACE, 16)
    assert ctx.parent is not None
    assert ctx.parent.span_id == int(SPAN, 16)
    assert ctx.span_id not in (0, int(SPAN, 16))
    assert ctx.sampled
    assert ctx.headers() == {
        "traceparent": f"00-{TRACE}-{ctx.span_id:016x}-01",
        "tracestate": "rojo=1",
    }


def test_without_a_traceparent_a_new_trace_starts() -> None:
    a, b = RequestTraceContext.start(None), RequestTraceContext.start("garbage", "rojo=1")
    assert a.parent is None
    assert b.parent is None
    assert b.tracestate is None  # a tracestate without a valid traceparent is dropped
    assert a.trace_id != b.trace_id
    assert a.sampled


def test_child_span_ids_are_stable_and_distinct() -> None:
    ctx = RequestTraceContext.start(None)
    turn0 = ctx.child_span_id("turn", 0)
    assert ctx.child_span_id("turn", 0) == turn0
    ids = {ctx.span_id, turn0, ctx.child_span_id("upstream", 0), ctx.child_span_id("turn", 1)}
    assert len(ids) == 4
    assert ctx.traceparent(turn0) == f"00-{ctx.trace_id:032x}-{turn0:016x}-01"


def test_sampling_follows_the_parent_and_the_sampler() -> None:
    unsampled = RequestTraceContext.start(f"00-{TRACE}-{SPAN}-00", sampler=DEFAULT_ON)
    assert not unsampled.sampled
    assert unsampled.traceparent().endswith("-00")  # callees are told not to sample
    assert not RequestTraceContext.start(None, sampler=ALWAYS_OFF).sampled
    assert RequestTraceContext.start(VALID, sampler=DEFAULT_ON).sampled
    ratio = ParentBasedTraceIdRatio(1.0)  # the SDK's own sampler, handed the remote parent
    assert not RequestTraceContext.start(f"00-{TRACE}-{SPAN}-00", sampler=ratio).sampled
    assert RequestTraceContext.start(VALID, sampler=ratio).sampled
    assert RequestTraceContext.start(None, sampler=ParentBasedTraceIdRatio(0.0)).sampled is False
