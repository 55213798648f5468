"""``UpstreamPool.chat`` and ``chat_stream``: the passthrough for ``model=<registry model>``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from router_model.registry import ModelSpec
from server.upstream import (
    UpstreamBadResponseError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamPool,
    UpstreamTimeoutError,
    Usage,
)
from tests.server.upstream.helpers import (
    FAST,
    StubServer,
    closed_port,
    completion,
    json_response,
    make_registry,
)

QWEN = "Qwen2.5-7B-Instruct"
SSE = {"content-type": "text/event-stream"}

CHUNKS = [
    b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Caf\xc3\xa9"}}]}\n\n',
    b": keep-alive\n\n",
    b'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
    b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5}}\n\n',
    b"data: [DONE]\n\n",
]
WIRE = b"".join(CHUNKS)


def pool_for(handler: Any) -> tuple[UpstreamPool, ModelSpec]:
    registry = make_registry()
    model = registry.model(QWEN)
    assert model is not None
    return UpstreamPool(lambda: registry, FAST, transport=httpx.MockTransport(handler)), model


def sse_response(wire: bytes, piece: int = 7) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(wire), piece):
            yield wire[i : i + piece]
            await asyncio.sleep(0)

    return httpx.Response(200, headers=SSE, content=body())


# ------------------------------------------------------------------------------ chat


async def test_chat_forwards_the_body_with_only_the_model_replaced() -> None:
    seen: list[httpx.Request] = []
    upstream_body = completion("hi", {"prompt_tokens": 10, "completion_tokens": 4})

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_response(200, upstream_body, {"x-request-id": "req-1", "server": "x"})

    client_body = {
        "model": QWEN,
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        "temperature": 0.7,
        "logit_bias": {"50256": -100},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "x_vendor_flag": True,
    }
    pool, model = pool_for(handler)
    async with pool:
        result = await pool.chat(model, client_body)
    assert orjson.loads(seen[0].content) == {**client_body, "model": "qwen/qwen2.5-7b-instruct"}
    assert client_body["model"] == QWEN  # the caller's dict is untouched
    assert result.status_code == 200
    assert result.body == upstream_body
    assert orjson.loads(result.content) == upstream_body
    assert result.usage == Usage(10, 4)
    assert result.cost_usd == pytest.approx((10 * 0.3 + 4 * 0.6) / 1e6)
    assert result.headers["x-request-id"] == "req-1"
    assert "server" not in result.headers
    assert result.attempts == 1


async def test_chat_refuses_stream_requests() -> None:
    pool, model = pool_for(lambda request: json_response(200, completion()))
    async with pool:
        with pytest.raises(ValueError, match="chat_stream"):
            await pool.chat(model, {"messages": [], "stream": True})


@pytest.mark.parametrize(
    ("response", "error_type", "status", "message"),
    [
        (
            json_response(
                400,
                {"error": {"message": "max_tokens too big", "type": "invalid_request_error"}},
            ),
            UpstreamHTTPError,
            400,
            "max_tokens too big",
        ),
        (
            json_response(
                404, {"object": "error", "message": "no such model", "type": "NotFoundError"}
            ),
            UpstreamHTTPError,
            404,
            "no such model",
        ),
        (json_response(429, {"error": {"message": "rate"}}), UpstreamHTTPError, 429, "rate"),
        (json_response(401, {"error": {"message": "bad key"}}), UpstreamHTTPError, 502, "bad key"),
        (httpx.Response(500, content=b"Internal Server Error"), UpstreamHTTPError, 502, "500"),
        (httpx.Response(200, content=b"not json"), UpstreamBadResponseError, 502, "non-JSON"),
    ],
)
async def test_chat_maps_upstream_errors(
    response: httpx.Response, error_type: type[UpstreamError], status: int, message: str
) -> None:
    pool, model = pool_for(lambda request: response)
    async with pool:
        with pytest.raises(error_type) as caught:
            await pool.chat(model, {"messages": [{"role": "user", "content": "u"}]})
    assert caught.value.status_code == status
    assert message in str(caught.value)
    assert "error" in caught.value.envelope()


async def test_chat_http_error_keeps_the_upstream_envelope() -> None:
    envelope = {"error": {"message": "bad", "type": "invalid_request_error", "param": "n"}}
    pool, model = pool_for(lambda request: json_response(400, envelope))
    async with pool:
        with pytest.raises(UpstreamHTTPError) as caught:
            await pool.chat(model, {"messages": []})
    error = caught.value
    assert (error.status_code, error.upstream_status_code) == (400, 400)
    assert error.error_type == "invalid_request_error"
    assert error.body == envelope
    assert error.envelope() == envelope
    assert error.attempts == 1


async def test_chat_does_not_retry_a_5xx_it_may_have_processed() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return json_response(502, {"error": {"message": "bad gateway upstream"}})

    pool, model = pool_for(handler)
    async with pool:
        with pytest.raises(UpstreamHTTPError) as caught:
            await pool.chat(model, {"messages": []})
    assert calls == 1
    assert (caught.value.status_code, caught.value.upstream_status_code) == (502, 502)
    assert caught.value.attempts == 1


async def test_chat_connect_error() -> None:
    registry = make_registry(f"http://127.0.0.1:{closed_port()}/v1")
    model = registry.model(QWEN)
    assert model is not None
    async with UpstreamPool(lambda: registry, FAST) as pool:
        with pytest.raises(UpstreamConnectionError) as caught:
            await pool.chat(model, {"messages": []})
    assert caught.value.status_code == 502
    assert caught.value.attempts == 3


async def test_chat_timeout_is_504(stub: StubServer) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.wait_for(release.wait(), 5)
        return web.json_response(completion())

    stub.handler = slow
    registry = make_registry(stub.base_url, read_timeout_s=0.2)
    model = registry.model(QWEN)
    assert model is not None
    try:
        async with UpstreamPool(lambda: registry, FAST) as pool:
            with pytest.raises(UpstreamTimeoutError) as caught:
                await pool.chat(model, {"messages": []})
    finally:
        release.set()
    assert caught.value.status_code == 504


# ------------------------------------------------------------------------------ chat_stream


async def test_stream_passes_events_verbatim_and_accounts_usage() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sse_response(WIRE)

    body = {"messages": [{"role": "user", "content": "u"}], "stream": True, "n": 1}
    pool, model = pool_for(handler)
    async with pool:
        stream = await pool.chat_stream(model, body)
        async with stream:
            events = [event async for event in stream]
    sent = orjson.loads(seen[0].content)
    assert sent == {
        **body,
        "model": "qwen/qwen2.5-7b-instruct",
        "stream_options": {"include_usage": True},
    }
    assert "stream_options" not in body
    assert seen[0].headers["accept"] == "text/event-stream"
    assert not stream.client_requested_usage
    assert stream.injected_usage
    # Verbatim, except the usage-only chunk the client did not ask for.
    assert events == [c for c in CHUNKS if b'"usage"' not in c]
    assert stream.usage == Usage(12, 5)
    assert not stream.usage_estimated
    assert stream.cost_usd == pytest.approx((12 * 0.3 + 5 * 0.6) / 1e6)
    assert stream.done
    assert stream.completed
    assert stream.error is None


async def test_stream_keeps_usage_chunk_the_client_asked_for() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sse_response(WIRE, piece=3)

    body = {
        "messages": [],
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": False},
    }
    pool, model = pool_for(handler)
    async with pool, await pool.chat_stream(model, body) as stream:
        events = [event async for event in stream]
    assert orjson.loads(seen[0].content)["stream_options"] == body["stream_options"]
    assert stream.client_requested_usage
    assert b"".join(events) == WIRE
    assert stream.usage == Usage(12, 5)


async def test_stream_without_usage_is_estimated_not_free() -> None:
    wire = b"".join(c for c in CHUNKS if b'"usage"' not in c)
    pool, model = pool_for(lambda request: sse_response(wire))
    async with pool, await pool.chat_stream(model, {"messages": [], "stream": True}) as stream:
        events = [event async for event in stream]
    assert b"".join(events) == wire
    assert stream.usage_estimated
    assert stream.usage is not None
    assert stream.usage.completion_tokens == 3  # data events other than [DONE]
    assert stream.usage.prompt_tokens > 0
    assert stream.cost_usd > 0


async def test_stream_errors_before_the_first_byte_raise() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return json_response(503, {"error": {"message": "warming up"}}, {"Retry-After": "0"})
        return json_response(400, {"error": {"message": "bad stream_options"}})

    pool, model = pool_for(handler)
    async with pool:
        with pytest.raises(UpstreamHTTPError) as caught:
            await pool.chat_stream(model, {"messages": [], "stream": True})
    assert calls == 2  # the 503 (with Retry-After) was retried, the 400 was not
    assert caught.value.status_code == 400
    assert "bad stream_options" in str(caught.value)


async def test_stream_answered_with_json_is_a_bad_response() -> None:
    pool, model = pool_for(lambda request: json_response(200, completion()))
    async with pool:
        with pytest.raises(UpstreamBadResponseError):
            await pool.chat_stream(model, {"messages": [], "stream": True})


async def test_stream_broken_mid_way_raises_from_the_iteration() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield CHUNKS[0]
        yield CHUNKS[1][:10]
        raise httpx.ReadError("connection reset")

    pool, model = pool_for(lambda request: httpx.Response(200, headers=SSE, content=body()))
    async with pool:
        stream = await pool.chat_stream(model, {"messages": [], "stream": True})
        events: list[bytes] = []

        async def consume() -> None:
            async with stream:
                async for event in stream:
                    events.append(event)

        with pytest.raises(UpstreamConnectionError):
            await consume()
    assert events == [CHUNKS[0]]
    assert isinstance(stream.error, UpstreamConnectionError)
    assert not stream.completed


async def test_stream_holds_the_model_slot_until_closed() -> None:
    pool, model = pool_for(lambda request: sse_response(WIRE))
    async with pool:
        stream = await pool.chat_stream(model, {"messages": [], "stream": True})
        (slot,) = pool.deployments.slots(model)
        semaphore = slot.semaphore
        assert semaphore._value == 99  # the endpoint allows 100 connections
        assert slot.in_flight == 1
        stream.events()
        with pytest.raises(RuntimeError, match="only once"):
            stream.events()
        await stream.aclose()
        await stream.aclose()  # idempotent
        assert semaphore._value == 100
        assert slot.in_flight == 0


async def test_stream_over_the_aiohttp_transport(stub: StubServer) -> None:
    async def stream_handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE)
        await response.prepare(request)
        for i in range(0, len(WIRE), 11):
            await response.write(WIRE[i : i + 11])
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    stub.handler = stream_handler
    registry = make_registry(stub.base_url)
    model = registry.model(QWEN)
    assert model is not None
    async with UpstreamPool(lambda: registry, FAST) as pool:
        assert pool.uses_aiohttp
        async with await pool.chat_stream(model, {"messages": [], "stream": True}) as stream:
            events = [event async for event in stream.events(drop_injected_usage=False)]
    assert b"".join(events) == WIRE
    assert len(events) == len(CHUNKS)
    assert stream.usage == Usage(12, 5)
    assert stub.requests[0]["stream_options"] == {"include_usage": True}
