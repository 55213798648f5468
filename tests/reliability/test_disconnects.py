"""Clients that leave: before, during and after the body, during a plain episode or passthrough
call, and mid-stream. Every one is a 499 ``client_closed_request`` in the metrics and the
access line, with no ERROR line and no traceback; the work stops; what was spent is charged.
A body that stalls is a 408 (``ROUTER_R1_HTTP_BODY_TIMEOUT_S``), with ``connection: close``."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest

from tests.fakes.misbehaving_upstream import Hang, MisbehavingUpstream, Reply
from tests.fakes.vllm_server import FakeVLLM
from tests.reliability.harness import (
    ANSWER,
    BOUND_S,
    KEY,
    PROFILE,
    QUESTION,
    QWEN,
    ROUTE,
    Harness,
    access_lines,
    asgi_call,
    assert_clean_log,
    body_of,
    faulty_gateway,
    request_bytes,
    status_of,
)
from tests.servers.uvicorn_server import serving

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def slow_route_episode() -> FakeVLLM:
    return FakeVLLM([ROUTE, ANSWER])


def assert_499(h: Harness, caplog: pytest.LogCaptureFixture, *, profile: str, model: str) -> None:
    assert h.requests(499, profile, model) == 1
    assert h.statuses() == {f"{profile}/{model}/499": 1}
    assert h.metric("router_r1_request_errors_total", profile=profile, kind="cancelled") == 1
    assert h.in_flight == 0
    (line,) = access_lines(caplog)
    assert line["status"] == 499
    assert line["error"] == "client_closed_request"
    assert_clean_log(caplog)


async def test_leaving_a_plain_episode_is_499_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = MisbehavingUpstream().script(Hang())
    engine = slow_route_episode()
    async with faulty_gateway(upstream, engine) as h:
        sent = await asgi_call(h.app, [request_bytes()], leave_after_s=0.3)
        assert status_of(sent) in (None, 499)  # to nobody: the client had gone
        assert_499(h, caplog, profile=PROFILE, model="router")
        assert len(engine.completions) == 1  # the episode stopped at the hung route call
        # the route call was sent: its prompt is charged (estimated; no usage came back)
        spend = await h.spend()
        assert spend > 0
    assert upstream.received[0].finished is False


async def test_leaving_a_plain_passthrough_is_499(caplog: pytest.LogCaptureFixture) -> None:
    upstream = MisbehavingUpstream().script(Hang())
    async with faulty_gateway(upstream) as h:
        body = json.dumps({"model": QWEN, "messages": QUESTION}).encode()
        sent = await asgi_call(h.app, [body], leave_after_s=0.3)
        assert status_of(sent) in (None, 499)
        assert_499(h, caplog, profile="passthrough", model=QWEN)


async def test_leaving_while_sending_the_body_is_499(caplog: pytest.LogCaptureFixture) -> None:
    """Starlette's ``ClientDisconnect`` from the body read (a 500 with a traceback before)."""
    engine = FakeVLLM([ANSWER])
    async with faulty_gateway(engine=engine) as h:
        raw = request_bytes()
        sent = await asgi_call(h.app, [raw[:20]], then="leave")
        assert status_of(sent) in (None, 499)
        assert h.requests(499, "none", "none") == 1
        assert h.statuses() == {"none/none/499": 1}
        assert engine.completions == []
        assert h.in_flight == 0
        assert_clean_log(caplog)


async def test_leaving_before_any_body_is_499(caplog: pytest.LogCaptureFixture) -> None:
    async with faulty_gateway() as h:
        await asgi_call(h.app, [], then="leave")
        assert h.statuses() == {"none/none/499": 1}
        assert_clean_log(caplog)


async def test_a_stalled_body_is_408_and_closes_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FakeVLLM([ANSWER])
    async with faulty_gateway(engine=engine, http_body_timeout_s=0.3) as h:
        raw = request_bytes()
        sent = await asgi_call(h.app, [raw[:20]], then="stall")
        assert status_of(sent) == 408
        start = next(m for m in sent if m["type"] == "http.response.start")
        assert (b"connection", b"close") in start["headers"]
        error = json.loads(body_of(sent))["error"]
        assert error["type"] == "invalid_request_error"
        assert error["code"] == "request_timeout"
        assert "0.3 s" in error["message"]
        assert h.statuses() == {"none/none/408": 1}
        assert h.metric("router_r1_request_errors_total", profile="none", kind="client_timeout")
        assert engine.completions == []
        assert_clean_log(caplog)


async def test_leaving_a_streamed_episode_mid_stream_is_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = MisbehavingUpstream().script(Hang())
    async with faulty_gateway(upstream, slow_route_episode()) as h:
        sent = await asgi_call(h.app, [request_bytes(stream=True)], leave_after_s=0.3)
        assert status_of(sent) == 200
        assert sent[-1].get("more_body") is True  # cut, not finished
        assert b"[DONE]" not in body_of(sent)
        assert_499(h, caplog, profile=PROFILE, model="router")
        trace = await h.trace(_request_id(sent))
        assert trace["outcome"] == "cancelled"
        assert trace["steps"][0]["upstream_status"] == "cancelled"


async def test_leaving_a_passthrough_stream_mid_stream_is_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = MisbehavingUpstream().script(Reply(cut_after=2, end="stall"))
    async with faulty_gateway(upstream, tcp_upstream=True) as h:
        body = json.dumps({"model": QWEN, "messages": QUESTION, "stream": True}).encode()
        sent = await asgi_call(h.app, [body], leave_after_s=0.3)
        assert status_of(sent) == 200
        assert b"Leo " in body_of(sent)
        assert_499(h, caplog, profile="passthrough", model=QWEN)


async def test_leaving_after_the_response_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with faulty_gateway(engine=FakeVLLM([ANSWER])) as h:
        sent = await asgi_call(h.app, [request_bytes()], leave_after_s=0.5)
        assert status_of(sent) == 200
        assert json.loads(body_of(sent))["choices"][0]["message"]["content"] == "Leo Tolstoy"
        assert h.statuses() == {f"{PROFILE}/router/200": 1}
        assert_clean_log(caplog)


# ---------------------------------------------------------------------------- over TCP


async def _raw_request(port: int, data: bytes, *, read_until: bytes | None = None) -> bytes:
    """Send ``data`` on a fresh connection; read until ``read_until`` appears, then close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(data)
        await writer.drain()
        if read_until is not None:
            while read_until not in received:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
    finally:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.close()
    return received


def _http_head(length: int) -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {KEY}\r\ncontent-length: {length}\r\n\r\n".encode()
    )


async def _until(condition: object, timeout_s: float = BOUND_S) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 (polls metrics)
            await asyncio.sleep(0.02)


async def test_over_tcp_a_client_closing_mid_body_or_mid_stream_is_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """uvicorn in front: a real socket closed half-way through the body, then one closed while
    its episode streams (the route call hangs)."""
    upstream = MisbehavingUpstream().script(Hang())
    async with faulty_gateway(upstream, slow_route_episode()) as h, serving(h.app) as port:
        raw = request_bytes()
        await _raw_request(port, _http_head(len(raw)) + raw[:25])
        await _until(lambda: h.requests(499, "none", "none") == 1)
        streamed = request_bytes(stream=True)
        received = await _raw_request(
            port, _http_head(len(streamed)) + streamed, read_until=b"route_started"
        )
        assert b"200 OK" in received
        await _until(lambda: h.requests(499, PROFILE, "router") == 1)
        await _until(lambda: h.in_flight == 0)
    assert h.statuses() == {"none/none/499": 1, f"{PROFILE}/router/499": 1}
    assert_clean_log(caplog)


def _request_id(sent: list[dict[str, object]]) -> str:
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = dict(start["headers"])  # type: ignore[call-overload]
    value: bytes = headers[b"x-request-id"]
    return value.decode()
