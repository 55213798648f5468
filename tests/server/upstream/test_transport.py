"""The transport seam, settings arithmetic, Retry-After parsing and the error classes."""

from __future__ import annotations

import asyncio
import email.utils
import time

import aiohttp
import httpx
import pytest
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

from server.upstream import (
    UpstreamHTTPError,
    UpstreamPool,
    UpstreamSettings,
    UpstreamTimeoutError,
    build_client,
)
from server.upstream.failures import retry_after_s as _retry_after_s
from tests.server.upstream.helpers import FAST, StubServer, completion, make_registry


async def test_default_client_sends_through_aiohttp(stub: StubServer) -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response(completion())

    stub.handler = ok
    registry = make_registry(stub.base_url)
    pool = UpstreamPool(lambda: registry, FAST)
    transport = pool.client._transport
    assert isinstance(transport, AiohttpTransport)
    assert pool.uses_aiohttp
    reply = await pool.route_call(registry.model("Qwen2.5-7B-Instruct"), "q", max_tokens=4)  # type: ignore[arg-type]
    assert reply.status == "ok"
    session = transport.client
    assert isinstance(session, aiohttp.ClientSession)  # created on the first request
    assert session.connector is not None
    assert session.connector.limit == FAST.max_connections_total
    await pool.aclose()
    assert session.closed


async def test_injected_transport_is_used() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    client = build_client(UpstreamSettings(), transport)
    assert client._transport is transport
    registry = make_registry()
    pool = UpstreamPool(lambda: registry, transport=transport)
    assert not pool.uses_aiohttp
    await pool.aclose()
    await client.aclose()


async def test_pool_closes_without_any_request() -> None:
    registry = make_registry()
    async with UpstreamPool(lambda: registry) as pool:
        transport = pool.client._transport
        assert isinstance(transport, AiohttpTransport)
        assert not isinstance(transport.client, aiohttp.ClientSession)  # made on first use
    assert pool.client.is_closed
    assert not isinstance(transport.client, aiohttp.ClientSession)  # closing made none


async def test_stream_consumer_cancelled_mid_stream_closes_upstream(stub: StubServer) -> None:
    first_sent = asyncio.Event()
    handler_done = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        try:
            await response.write(b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n')
            first_sent.set()
            await asyncio.sleep(5)
        finally:
            handler_done.set()
        return response

    stub.handler = endless
    registry = make_registry(stub.base_url, max_connections=1)
    model = registry.model("Qwen2.5-7B-Instruct")
    assert model is not None
    async with UpstreamPool(lambda: registry, FAST) as pool:
        stream = await pool.chat_stream(model, {"messages": [], "stream": True})
        received = asyncio.Event()

        async def consume() -> None:
            async with stream:
                async for _event in stream:
                    received.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first_sent.wait(), 2)
        await asyncio.wait_for(received.wait(), 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(handler_done.wait(), 2)
        assert [s.in_flight for s in pool.deployments.slots(model)] == [0]
        assert not pool.deployments.slots(model)[0].semaphore.locked()
        assert stream.usage_estimated  # never $0: estimated from what was streamed
        assert stream.usage is not None
        assert stream.usage.completion_tokens == 1


def test_backoff_grows_and_is_capped() -> None:
    settings = UpstreamSettings(backoff_base_s=0.25, backoff_cap_s=2.0)
    assert settings.backoff_s(1, 0.0) == pytest.approx(0.125)
    assert settings.backoff_s(1, 0.999999) == pytest.approx(0.25)
    assert settings.backoff_s(3, 0.999999) == pytest.approx(1.0)
    assert settings.backoff_s(10, 0.999999) == pytest.approx(2.0)


def test_settings_fall_back_to_the_endpoint() -> None:
    endpoint = make_registry(max_connections=7, read_timeout_s=9).endpoint("e")
    default = UpstreamSettings()
    assert (default.connect_timeout(endpoint), default.read_timeout(endpoint)) == (1.0, 9)
    assert default.model_limit(endpoint) == 7
    assert (default.total_timeout_s, default.max_retries) == (60.0, 2)
    assert default.breaker_policy().failures == 5
    custom = UpstreamSettings(connect_timeout_s=2, read_timeout_s=3, max_connections_per_model=4)
    assert (custom.connect_timeout(endpoint), custom.read_timeout(endpoint)) == (2, 3)
    assert custom.model_limit(endpoint) == 4


def test_retry_after_forms() -> None:
    assert _retry_after_s(httpx.Headers({"retry-after": "3"})) == 3.0
    assert _retry_after_s(httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert _retry_after_s(httpx.Headers({"retry-after": "soon"})) is None
    assert _retry_after_s(httpx.Headers({"retry-after": "-1"})) is None
    assert _retry_after_s(httpx.Headers({})) is None
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    parsed = _retry_after_s(httpx.Headers({"retry-after": date}))
    assert parsed is not None
    assert 25 < parsed <= 30


def test_error_status_codes() -> None:
    assert UpstreamHTTPError(400, "x").status_code == 400
    assert UpstreamHTTPError(429, "x").status_code == 429
    assert UpstreamHTTPError(429, "x").error_type == "rate_limit_error"
    assert UpstreamHTTPError(403, "x").status_code == 502
    assert UpstreamHTTPError(503, "x").status_code == 502
    assert UpstreamHTTPError(503, "x").upstream_status_code == 503
    error = UpstreamTimeoutError("slow\nupstream")
    assert (error.status_code, error.error_type, str(error)) == (
        504,
        "timeout_error",
        "slow upstream",
    )
    assert error.envelope()["error"]["type"] == "timeout_error"
