"""Passthrough (``model=<registry model>``) against an upstream that misbehaves, plain and
streamed, over a real socket where timing matters. Before the first byte a failure is the
OpenAI envelope with its status; after it, one error event and ``[DONE]``; the metrics
count the status; the key pays what the upstream reported (nothing for a call that failed
before a reply); no traceback is logged."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx2
import pytest

from tests.fakes.misbehaving_upstream import (
    Behaviour,
    Garbage,
    Hang,
    MisbehavingUpstream,
    Reply,
    Reset,
    Status,
    TruncatedJson,
)
from tests.reliability.harness import (
    BOUND_S,
    QUESTION,
    QWEN,
    Harness,
    assert_clean_log,
    faulty_gateway,
    upstream_spend,
)

pytestmark = pytest.mark.timeout(60)
NOTE = "café €"


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def chat(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": QWEN, "messages": QUESTION, "stream": stream, **extra}


async def post(h: Harness, body: dict[str, Any]) -> httpx2.Response:
    async with asyncio.timeout(BOUND_S):
        return await h.http.post("/v1/chat/completions", json=body)


def events(text: str) -> list[Any]:
    """The data of each SSE event (``[DONE]`` as the string)."""
    found: list[Any] = []
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                data = line[6:]
                found.append(data if data == "[DONE]" else json.loads(data))
    return found


def stream_error(text: str) -> dict[str, Any]:
    """The one error event a broken stream ends with, right before ``[DONE]``."""
    data = events(text)
    assert data[-1] == "[DONE]", text[-500:]
    errors = [d for d in data[:-1] if isinstance(d, dict) and "error" in d]
    assert len(errors) == 1, text[-800:]
    assert data[-2] is errors[0]
    error: dict[str, Any] = errors[0]["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# ---------------------------------------------------------------------------- before any reply


@pytest.mark.parametrize(
    ("behaviour", "status", "error_type"),
    [
        (Status(500), 502, "server_error"),
        (Status(429, retry_after="1"), 429, "rate_limit_error"),
        (Reset(before_request=True), 502, "upstream_error"),
        (Reset(before_request=False), 502, "upstream_error"),
        (Garbage(), 502, "upstream_error"),
        (TruncatedJson(), 502, "upstream_error"),
    ],
    ids=["500", "429-retry-after", "reset-before", "reset-after", "garbage", "truncated-json"],
)
@pytest.mark.parametrize("tcp", [False, True], ids=["in-process", "tcp"])
async def test_a_failed_plain_call_is_its_envelope_and_costs_nothing(
    behaviour: Behaviour,
    status: int,
    error_type: str,
    tcp: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = MisbehavingUpstream().script(behaviour)
    async with faulty_gateway(upstream, tcp_upstream=tcp) as h:
        response = await post(h, chat())
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == error_type
        if status == 429:
            assert response.headers["retry-after"] == "1"
        assert h.statuses() == {f"passthrough/{QWEN}/{status}": 1}
        assert await h.spend() == 0
        assert upstream_spend(upstream) == 0
        assert h.in_flight == 0
    assert_clean_log(caplog)


async def test_a_hung_upstream_is_504_within_the_passthrough_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = MisbehavingUpstream().script(Hang(), Hang())
    async with faulty_gateway(upstream, tcp_upstream=True, upstream_passthrough_timeout_s=1) as h:
        for stream in (False, True):
            started = time.monotonic()
            response = await post(h, chat(stream))
            assert time.monotonic() - started < 1 + 2.0  # the bound, and some slack
            assert response.status_code == 504
            assert response.json()["error"]["type"] == "timeout_error"
        assert h.statuses() == {f"passthrough/{QWEN}/504": 2}
        assert h.metric("router_r1_request_errors_total", profile="passthrough", kind="timeout")
        assert await h.spend() == 0
    assert_clean_log(caplog)


# ---------------------------------------------------------------------------- after the headers


async def test_a_stream_that_stalls_after_its_headers_ends_with_a_timeout_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = MisbehavingUpstream().script(Reply(cut_after=0, end="stall"))
    async with faulty_gateway(upstream, tcp_upstream=True, upstream_stream_idle_timeout_s=0.5) as h:
        started = time.monotonic()
        response = await post(h, chat(True))
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        error = stream_error(response.text)
        assert error["type"] == "timeout_error"
        assert "stalled" in error["message"]
        assert 0.5 <= elapsed < 0.5 + 2.0
        assert h.statuses() == {f"passthrough/{QWEN}/504": 1}
    assert_clean_log(caplog)


async def test_a_dripping_stream_ends_at_the_passthrough_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A chunk every 0.4 s would go on for 40 s: the 2 s bound ends it, within one gap."""
    drip = Reply(text=" ".join(["tick"] * 100), chunk_interval_s=0.4)
    upstream = MisbehavingUpstream().script(drip, drip)
    async with faulty_gateway(upstream, tcp_upstream=True, upstream_passthrough_timeout_s=2) as h:
        started = time.monotonic()
        response = await post(h, chat(True))
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        error = stream_error(response.text)
        assert error["type"] == "timeout_error"
        assert "2 s bound" in error["message"]
        ticks = sum(1 for d in events(response.text) if isinstance(d, dict) and "choices" in d)
        assert 1 < ticks < 10
        assert elapsed < 2 + 0.4 + 1.0  # the bound, one chunk gap, and slack
        started = time.monotonic()
        plain = await post(h, chat(False))  # the same drip as a plain reply's body
        assert plain.status_code == 504
        assert time.monotonic() - started < 2 + 0.4 + 1.0
        assert h.statuses() == {f"passthrough/{QWEN}/504": 2}
    assert_clean_log(caplog)


@pytest.mark.parametrize("include_usage", [False, True])
async def test_a_stream_ending_without_done_or_finish_reason_is_an_error(
    include_usage: bool, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = MisbehavingUpstream().script(Reply(end="eof"))
    async with faulty_gateway(upstream, tcp_upstream=True) as h:
        body = chat(True, stream_options={"include_usage": include_usage})
        response = await post(h, body)
        assert response.status_code == 200
        error = stream_error(response.text)
        assert error["type"] == "upstream_error"
        assert "ended before its end" in error["message"]
        contents = [
            d["choices"][0]["delta"].get("content")
            for d in events(response.text)
            if isinstance(d, dict) and d.get("choices")
        ]
        assert "".join(c for c in contents if c) == "Leo Tolstoy wrote War and Peace."
        assert h.statuses() == {f"passthrough/{QWEN}/502": 1}
        # the upstream reported no usage: what it produced is charged, as an estimate
        spend = await h.spend()
        assert spend > 0
        assert upstream.received[0].reported_usage is None
    assert_clean_log(caplog)


async def test_a_stream_reset_midway_ends_with_an_error_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = MisbehavingUpstream().script(Reply(cut_after=3, end="reset"))
    async with faulty_gateway(upstream, tcp_upstream=True) as h:
        response = await post(h, chat(True))
        assert response.status_code == 200
        error = stream_error(response.text)
        assert error["type"] == "upstream_error"
        assert "broke" in error["message"]
        assert "Leo " in response.text
        assert h.statuses() == {f"passthrough/{QWEN}/502": 1}
    assert_clean_log(caplog)


# ---------------------------------------------------------------------------- good replies


@pytest.mark.parametrize("tcp", [False, True], ids=["in-process", "tcp"])
async def test_a_non_latin1_header_is_relayed_as_the_same_bytes(
    tcp: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """``x-ratelimit-note: café €`` (UTF-8 bytes) turned a paid 200 into a 500 before."""
    reply = Reply(headers={"x-ratelimit-note": NOTE})
    upstream = MisbehavingUpstream(reply)
    async with faulty_gateway(upstream, tcp_upstream=tcp) as h:
        for stream in (False, True):
            response = await post(h, chat(stream))
            assert response.status_code == 200, response.text
            raw = dict(response.headers.raw)
            assert raw[b"x-ratelimit-note"] == NOTE.encode("utf-8")
        assert h.statuses() == {f"passthrough/{QWEN}/200": 2}
        assert await h.spend() == pytest.approx(upstream_spend(upstream))
    assert_clean_log(caplog)


async def test_a_good_stream_is_charged_what_the_upstream_reported() -> None:
    upstream = MisbehavingUpstream(Reply(prompt_tokens=40, completion_tokens=7))
    async with faulty_gateway(upstream, tcp_upstream=True) as h:
        for include_usage in (False, True):
            body = chat(True, stream_options={"include_usage": include_usage})
            response = await post(h, body)
            assert events(response.text)[-1] == "[DONE]"
            assert not [d for d in events(response.text) if isinstance(d, dict) and "error" in d]
        assert all(r.reported_usage is not None for r in upstream.received)
        assert await h.spend() == pytest.approx(2 * 47 * 0.3 / 1e6)
        assert await h.spend() == pytest.approx(upstream_spend(upstream))
