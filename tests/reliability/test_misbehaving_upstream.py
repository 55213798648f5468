"""The misbehaving upstream itself, seen by a plain HTTP client: each behaviour does what it
says, over TCP and in-process, one scripted behaviour per request (F1's retry tests rely on
it)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.fakes.misbehaving_upstream import (
    Garbage,
    Hang,
    MisbehavingUpstream,
    Received,
    Reply,
    Reset,
    Status,
    TruncatedJson,
)

pytestmark = pytest.mark.timeout(30)
BODY = {"model": "m", "messages": [{"role": "user", "content": "q"}]}


async def test_scripted_behaviours_are_taken_in_order_per_model_then_the_default() -> None:
    upstream = MisbehavingUpstream(Reply(text="default"))
    upstream.script(Status(503, retry_after="2"), model="m").script(Garbage())
    async with upstream.served() as base, httpx.AsyncClient(base_url=base, timeout=5) as http:
        first = await http.post("/chat/completions", json=BODY)
        assert first.status_code == 503
        assert first.headers["retry-after"] == "2"
        assert first.json()["error"]["message"] == "scripted failure (503)"
        other = await http.post("/chat/completions", json={**BODY, "model": "other"})
        assert other.text.startswith("<html>")  # the any-model queue
        third = await http.post("/chat/completions", json=BODY)
        assert third.json()["choices"][0]["message"]["content"] == "default"
    assert [r.model for r in upstream.received] == ["m", "other", "m"]
    assert upstream.received[2].reported_usage == Reply(text="default").usage


async def test_a_rule_decides_per_request() -> None:
    def rule(request: Received) -> Status | None:
        return Status(429) if request.body.get("user") == "flooder" else None

    upstream = MisbehavingUpstream().rule(rule)
    async with upstream.served() as base, httpx.AsyncClient(base_url=base, timeout=5) as http:
        assert (
            await http.post("/chat/completions", json={**BODY, "user": "flooder"})
        ).status_code == 429
        assert (await http.post("/chat/completions", json=BODY)).status_code == 200


async def test_resets_over_tcp_and_in_process() -> None:
    upstream = MisbehavingUpstream().script(Reset(), Reset(before_request=True))
    async with upstream.served() as base, httpx.AsyncClient(base_url=base, timeout=5) as http:
        with pytest.raises(httpx.TransportError):
            await http.post("/chat/completions", json=BODY)
        with pytest.raises(httpx.TransportError):  # over TCP both are a reset (RST)
            await http.post("/chat/completions", json=BODY)
    in_process = MisbehavingUpstream().script(Reset(before_request=True), Reset())
    async with httpx.AsyncClient(transport=in_process.transport(), base_url="http://u") as http:
        with pytest.raises(httpx.ConnectError):
            await http.post("/v1/chat/completions", json=BODY)
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/v1/chat/completions", json=BODY)


async def test_stream_endings() -> None:
    upstream = MisbehavingUpstream().script(Reply(end="eof"), Reply(cut_after=1, end="reset"))
    stream = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    async with upstream.served() as base, httpx.AsyncClient(base_url=base, timeout=5) as http:
        eof = await http.post("/chat/completions", json=stream)
        assert eof.status_code == 200
        assert "[DONE]" not in eof.text
        assert '"finish_reason": "stop"' not in eof.text
        with pytest.raises(httpx.TransportError):
            await http.post("/chat/completions", json=stream)
        done = await http.post("/chat/completions", json=stream)
        assert done.text.endswith("data: [DONE]\n\n")
        assert '"usage"' in done.text
    assert upstream.received[0].reported_usage is None
    assert upstream.received[2].reported_usage is not None


async def test_timing_behaviours_over_tcp() -> None:
    upstream = MisbehavingUpstream().script(
        Hang(), Reply(end="stall", cut_after=0), Reply(text="a b c d", chunk_interval_s=0.2)
    )
    stream = {**BODY, "stream": True}
    async with upstream.served() as base, httpx.AsyncClient(base_url=base, timeout=5) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/chat/completions", json=BODY, timeout=0.3)
        async with http.stream("POST", "/chat/completions", json=stream, timeout=0.3) as response:
            assert response.status_code == 200  # the headers came
            with pytest.raises(httpx.ReadTimeout):
                async for _ in response.aiter_bytes():
                    pass
        started = time.monotonic()
        gaps = []
        async with http.stream("POST", "/chat/completions", json=stream) as response:
            async for _ in response.aiter_bytes():
                gaps.append(time.monotonic() - started)
        assert gaps[-1] >= 4 * 0.2  # four words, one every 0.2 s


async def test_raw_header_bytes_and_truncated_json() -> None:
    upstream = MisbehavingUpstream().script(
        Reply(headers={"x-ratelimit-note": "café €"}), TruncatedJson()
    )
    async with upstream.served() as base, httpx.AsyncClient(base_url=base, timeout=5) as http:
        noted = await http.post("/chat/completions", json=BODY)
        assert dict(noted.headers.raw)[b"x-ratelimit-note"] == "café €".encode()
        cut = await http.post("/chat/completions", json=BODY)
        with pytest.raises(json.JSONDecodeError):
            cut.json()
