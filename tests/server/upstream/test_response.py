"""The pool's direct aiohttp path (its default transport) against a real server: the same
wire request and the same results as through httpx."""

from __future__ import annotations

import gzip

import httpx
import orjson
import pytest
from aiohttp import web

from server.upstream import UpstreamPool, UpstreamSettings
from server.upstream.response import AiohttpResponse
from server.upstream.result import forwarded_headers
from server.upstream.sender import Sender
from server.upstream.transport import build_aiohttp_transport
from tests.server.upstream.helpers import FAST, StubServer, completion, make_registry

QWEN = "Qwen2.5-7B-Instruct"
USAGE = {"prompt_tokens": 10, "completion_tokens": 4}


async def test_default_pool_calls_aiohttp_directly(
    stub: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response(completion("Paris", USAGE), headers={"x-request-id": "up-1"})

    stub.handler = ok
    monkeypatch.setenv("UPSTREAM_TEST_KEY", "sk-test")
    registry = make_registry(stub.base_url, api_key_env="UPSTREAM_TEST_KEY")
    model = registry.model(QWEN)
    assert model is not None
    async with UpstreamPool(lambda: registry, FAST) as pool:
        assert pool.calls_aiohttp_directly
        result = await pool.chat(model, {"messages": [{"role": "user", "content": "q"}]})
    assert result.body["choices"][0]["message"]["content"] == "Paris"
    assert result.headers["x-request-id"] == "up-1"
    assert result.cost_usd > 0
    sent = {k.lower(): v for k, v in stub.headers[0].items()}
    assert sent["content-type"] == "application/json"
    assert sent["accept"] == "application/json"
    assert sent["accept-encoding"] == "gzip, deflate"
    assert sent["authorization"] == "Bearer sk-test"
    assert sent["user-agent"].startswith("python-httpx/")  # as the client sent it before


async def test_gzip_bodies_are_decoded(stub: StubServer) -> None:
    async def zipped(request: web.Request) -> web.StreamResponse:
        body = gzip.compress(orjson.dumps(completion("Rome", USAGE)))
        return web.Response(
            body=body, headers={"content-type": "application/json", "content-encoding": "gzip"}
        )

    stub.handler = zipped
    registry = make_registry(stub.base_url)
    model = registry.model(QWEN)
    assert model is not None
    async with UpstreamPool(lambda: registry, FAST) as pool:
        result = await pool.chat(model, {"messages": [{"role": "user", "content": "q"}]})
        reply = await pool.route_call(model, "q", max_tokens=4)
    assert result.body["choices"][0]["message"]["content"] == "Rome"
    assert orjson.loads(result.content) == result.body
    assert (reply.status, reply.text) == ("ok", "Rome")


async def test_errors_and_retry_after_read_from_aiohttp_headers(stub: StubServer) -> None:
    async def limited(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"error": {"message": "slow down", "type": "rate_limit"}},
            status=429,
            headers={"Retry-After": "0.01"},
        )

    stub.handler = limited
    registry = make_registry(stub.base_url)
    model = registry.model(QWEN)
    assert model is not None
    settings = UpstreamSettings(max_retries=1, backoff_base_s=0.001, total_timeout_s=5)
    async with UpstreamPool(lambda: registry, settings) as pool:
        reply = await pool.route_call(model, "q", max_tokens=4)
    assert (reply.status, reply.http_status, reply.attempts) == ("http_error", 429, 2)
    assert reply.error is not None
    assert "slow down" in reply.error


async def test_repeated_headers_are_joined_as_httpx_does(stub: StubServer) -> None:
    async def twice(request: web.Request) -> web.StreamResponse:
        response = web.json_response(completion())
        response.headers.add("x-ratelimit-remaining", "1")
        response.headers.add("X-RateLimit-Remaining", "2")
        return response

    stub.handler = twice
    transport = build_aiohttp_transport(FAST)
    sender = Sender(FAST, transport, {}, direct=True)
    assert sender.direct
    try:
        opened = await sender.send(
            make_registry(stub.base_url).endpoint("e"),
            b"{}",
            {"content-type": "application/json"},
            {"connect": 1.0, "read": 1.0},
        )
        assert isinstance(opened, AiohttpResponse)
        try:
            direct = forwarded_headers(opened.headers)
        finally:
            await opened.aclose()
    finally:
        await transport.aclose()
    through_httpx = forwarded_headers(
        httpx.Headers([("x-ratelimit-remaining", "1"), ("X-RateLimit-Remaining", "2")])
    )
    assert direct["x-ratelimit-remaining"] == through_httpx["x-ratelimit-remaining"] == "1, 2"
