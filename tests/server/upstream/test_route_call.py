"""``UpstreamPool.route_call``: the Router-R1 sub-query, failures as values, retries, limits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from router_model.registry import ModelSpec, Registry, RetryPolicy
from server.upstream import RouteCaller, UpstreamPool, UpstreamSettings
from tests.server.upstream.helpers import (
    FAST,
    StubServer,
    closed_port,
    completion,
    json_response,
    make_registry,
)

QWEN = "Qwen2.5-7B-Instruct"
GEMMA = "Gemma-2-27B-Instruct"


class Recorder:
    """A MockTransport handler answering from a script of responses (the last one repeats)."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        index = min(len(self.requests), len(self.responses)) - 1
        return self.responses[index]

    def body(self, index: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(self.requests[index].content)
        return result


def spec(registry: Registry, name: str = QWEN) -> ModelSpec:
    model = registry.model(name)
    assert model is not None
    return model


def mock_pool(
    handler: Any, settings: UpstreamSettings = FAST, **registry_kwargs: Any
) -> tuple[UpstreamPool, Registry]:
    registry = make_registry(**registry_kwargs)
    pool = UpstreamPool(lambda: registry, settings, transport=httpx.MockTransport(handler))
    return pool, registry


async def test_success_with_usage_and_cost() -> None:
    recorder = Recorder(
        json_response(200, completion("Paris", {"prompt_tokens": 100, "completion_tokens": 20}))
    )
    pool, registry = mock_pool(recorder)
    caller: RouteCaller = pool
    async with pool:
        reply = await caller.route_call(spec(registry, QWEN), "Q: capital?", max_tokens=512)
    assert reply.status == "ok"
    assert reply.succeeded
    assert reply.text == "Paris"
    assert (reply.prompt_tokens, reply.completion_tokens) == (100, 20)
    assert reply.cost_usd == pytest.approx((100 * 0.3 + 20 * 0.6) / 1e6)
    assert reply.attempts == 1
    assert reply.error is None
    assert reply.finish_reason == "stop"
    assert not reply.usage_missing
    request = recorder.requests[0]
    assert str(request.url) == "http://upstream.test/v1/chat/completions"
    assert recorder.body() == {
        "model": "qwen/qwen2.5-7b-instruct",
        "messages": [{"role": "user", "content": "Q: capital?"}],
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": 512,
        "stream": False,
        "seed": 42,
    }
    assert "authorization" not in request.headers


async def test_sampling_defaults_come_from_the_registry() -> None:
    recorder = Recorder(json_response(200, completion()))
    pool, registry = mock_pool(recorder)
    async with pool:
        await pool.route_call(spec(registry, GEMMA), "q", max_tokens=64)
    body = recorder.body()
    assert (body["model"], body["temperature"], body["max_tokens"]) == (
        "google/gemma-2-27b-it",
        0.1,
        64,
    )


async def test_missing_usage_counts_zero_and_is_noted() -> None:
    pool, registry = mock_pool(Recorder(json_response(200, completion("x"))))
    async with pool:
        reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
    assert reply.status == "ok"
    assert (reply.prompt_tokens, reply.completion_tokens, reply.cost_usd) == (0, 0, 0.0)
    assert reply.usage_missing


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_5xx_is_not_retried_it_may_have_been_processed(status: int) -> None:
    recorder = Recorder(
        json_response(status, {"error": {"message": "boom"}}),
        json_response(200, completion("ok", {"prompt_tokens": 1, "completion_tokens": 1})),
    )
    pool, registry = mock_pool(recorder)
    async with pool:
        reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
    assert (reply.status, reply.http_status, reply.attempts) == ("http_error", status, 1)
    assert len(recorder.requests) == 1


async def test_503_is_retried_only_with_retry_after() -> None:
    without = Recorder(json_response(503, {"error": {"message": "busy"}}))
    pool, registry = mock_pool(without)
    async with pool:
        reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
    assert (reply.status, reply.attempts, len(without.requests)) == ("http_error", 1, 1)
    with_header = Recorder(
        json_response(503, {"error": {"message": "busy"}}, {"Retry-After": "0"}),
        json_response(200, completion("ok")),
    )
    pool, registry = mock_pool(with_header)
    async with pool:
        reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
    assert (reply.status, reply.attempts, len(with_header.requests)) == ("ok", 2, 2)


async def test_503_forever_gives_http_error_after_max_retries() -> None:
    recorder = Recorder(
        json_response(503, {"error": {"message": "overloaded\nnow"}}, {"Retry-After": "0"})
    )
    pool, registry = mock_pool(recorder)
    async with pool:
        reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
    assert reply.status == "http_error"
    assert reply.attempts == 3  # 1 + max_retries (2)
    assert reply.http_status == 503
    assert reply.text is None
    assert reply.error is not None
    assert "overloaded now" in reply.error
    assert "\n" not in reply.error


async def test_429_honours_retry_after() -> None:
    recorder = Recorder(
        json_response(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.04"}),
        json_response(200, completion()),
    )
    pool, registry = mock_pool(recorder)
    async with pool:
        started = time.perf_counter()
        reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
        elapsed = time.perf_counter() - started
    assert reply.status == "ok"
    assert reply.attempts == 2
    assert elapsed >= 0.035


async def test_429_with_retry_after_beyond_the_cap_is_not_retried() -> None:
    recorder = Recorder(json_response(429, {"error": {"message": "quota"}}, {"Retry-After": "30"}))
    pool, registry = mock_pool(recorder)
    async with pool:
        reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
    assert (reply.status, reply.http_status, reply.attempts) == ("http_error", 429, 1)


async def test_400_is_not_retried() -> None:
    recorder = Recorder(
        json_response(400, {"error": {"message": "bad max_tokens", "type": "invalid_request"}})
    )
    pool, registry = mock_pool(recorder)
    async with pool:
        reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
    assert (reply.status, reply.http_status, reply.attempts) == ("http_error", 400, 1)
    assert reply.error is not None
    assert "bad max_tokens" in reply.error
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    ("response", "needle"),
    [
        (httpx.Response(200, content=b"<html>gateway</html>"), "non-JSON"),
        (httpx.Response(200, content=b"[1, 2]"), "not a JSON object"),
        (json_response(200, {"id": "x", "choices": []}), "no choices"),
        (json_response(200, {"id": "x"}), "no choices"),
        (json_response(200, {"error": {"message": "model overloaded"}}), "model overloaded"),
        (
            json_response(200, {"choices": [{"message": {"role": "assistant", "content": None}}]}),
            "content is missing",
        ),
    ],
)
async def test_bad_bodies_are_bad_response(response: httpx.Response, needle: str) -> None:
    pool, registry = mock_pool(Recorder(response))
    async with pool:
        reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
    assert reply.status == "bad_response"
    assert reply.text is None
    assert reply.attempts == 1
    assert reply.error is not None
    assert needle in reply.error


async def test_api_key_comes_from_the_environment_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder(json_response(200, completion()))
    pool, registry = mock_pool(recorder, api_key_env="TEST_UPSTREAM_KEY")
    monkeypatch.delenv("TEST_UPSTREAM_KEY", raising=False)
    async with pool:
        model = spec(registry, QWEN)
        assert model is not None
        missing = await pool.route_call(model, "q", max_tokens=8)
        monkeypatch.setenv("TEST_UPSTREAM_KEY", "sk-test-123")
        present = await pool.route_call(model, "q", max_tokens=8)
    assert missing.status == present.status == "ok"
    assert "authorization" not in recorder.requests[0].headers
    assert recorder.requests[1].headers["authorization"] == "Bearer sk-test-123"


async def test_registry_is_read_on_every_call() -> None:
    recorder = Recorder(json_response(200, completion()))
    registries = [make_registry("http://one.test/v1")]
    pool = UpstreamPool(lambda: registries[-1], FAST, transport=httpx.MockTransport(recorder))
    async with pool:
        model = registries[0].model(QWEN)
        assert model is not None
        await pool.route_call(model, "q", max_tokens=8)
        registries.append(make_registry("http://two.test/v1"))
        await pool.route_call(model, "q", max_tokens=8)
    assert [r.url.host for r in recorder.requests] == ["one.test", "two.test"]


async def test_unknown_endpoint_is_a_value_not_an_exception() -> None:
    recorder = Recorder(json_response(200, completion()))
    pool, registry = mock_pool(recorder)
    model = spec(registry, QWEN)
    assert model is not None
    gone = model.deployments[0].model_copy(update={"endpoint": "gone"})
    async with pool:
        reply = await pool.route_call(
            model.model_copy(update={"deployments": (gone,)}), "q", max_tokens=8
        )
    assert reply.status == "connect_error"
    assert reply.error is not None
    assert "gone" in reply.error
    assert not recorder.requests


async def test_connect_error_after_retries_within_bound() -> None:
    registry = make_registry(f"http://127.0.0.1:{closed_port()}/v1")
    async with UpstreamPool(lambda: registry, FAST) as pool:
        assert pool.uses_aiohttp
        started = time.perf_counter()
        reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
        elapsed = time.perf_counter() - started
    assert reply.status == "connect_error"
    assert reply.attempts == 3
    assert elapsed < 2.0
    assert reply.error is not None


async def test_read_timeout_is_timeout_within_bound(stub: StubServer) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.wait_for(release.wait(), 5)
        return web.json_response(completion())

    stub.handler = slow
    registry = make_registry(stub.base_url, read_timeout_s=0.2)
    try:
        async with UpstreamPool(lambda: registry, FAST) as pool:
            started = time.perf_counter()
            reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
            elapsed = time.perf_counter() - started
    finally:
        release.set()
    assert reply.status == "timeout"
    assert reply.attempts == 1  # read timeouts are not retried by default
    assert 0.15 < elapsed < 1.5


async def test_total_timeout_bounds_the_whole_call(stub: StubServer) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.wait_for(release.wait(), 5)
        return web.json_response(completion())

    stub.handler = slow
    registry = make_registry(stub.base_url, read_timeout_s=30)
    settings = FAST.model_copy(update={"total_timeout_s": 0.3})
    try:
        async with UpstreamPool(lambda: registry, settings) as pool:
            started = time.perf_counter()
            reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
            elapsed = time.perf_counter() - started
    finally:
        release.set()
    assert reply.status == "timeout"
    assert reply.error is not None
    assert "0.3 s" in reply.error
    assert 0.25 < elapsed < 1.0


async def test_retry_that_would_overrun_the_total_is_not_made() -> None:
    recorder = Recorder(json_response(500, {"error": {"message": "x"}}))
    settings = UpstreamSettings(backoff_base_s=5, backoff_cap_s=10, total_timeout_s=1)
    pool, registry = mock_pool(recorder, settings)
    async with pool:
        started = time.perf_counter()
        reply = await pool.route_call(spec(registry, QWEN), "q", max_tokens=8)
    assert time.perf_counter() - started < 0.5
    assert (reply.status, reply.attempts) == ("http_error", 1)


async def test_success_over_the_aiohttp_transport(stub: StubServer) -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response(completion("Ré", {"prompt_tokens": 3, "completion_tokens": 2}))

    stub.handler = ok
    registry = make_registry(stub.base_url)
    async with UpstreamPool(lambda: registry, FAST) as pool:
        replies = await asyncio.gather(
            *(pool.route_call(spec(registry, QWEN), "q", max_tokens=8) for _ in range(5))
        )
    assert {(r.status, r.text, r.completion_tokens) for r in replies} == {("ok", "Ré", 2)}
    assert stub.requests[0]["model"] == "qwen/qwen2.5-7b-instruct"


async def test_cancellation_propagates_and_frees_the_slot() -> None:
    entered = asyncio.Event()
    never = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        entered.set()
        await never.wait()
        return json_response(200, completion())

    pool, registry = mock_pool(hang, max_connections=1)
    model = spec(registry, QWEN)
    assert model is not None
    async with pool:
        task = asyncio.create_task(pool.route_call(model, "q", max_tokens=8))
        await asyncio.wait_for(entered.wait(), 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == {asyncio.current_task()}
        # The single slot of this model is free again.
        (slot,) = pool.deployments.slots(model)
        assert not slot.semaphore.locked()
        assert slot.in_flight == 0


async def test_cancellation_closes_the_in_flight_request(stub: StubServer) -> None:
    entered = asyncio.Event()
    handler_cancelled = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        entered.set()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            handler_cancelled.set()
            raise
        return web.json_response(completion())

    stub.handler = hang
    registry = make_registry(stub.base_url)
    async with UpstreamPool(lambda: registry, FAST) as pool:
        task = asyncio.create_task(pool.route_call(spec(registry, QWEN), "q", max_tokens=8))
        await asyncio.wait_for(entered.wait(), 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The server sees the connection go away (aiohttp cancels its handler).
        await asyncio.wait_for(handler_cancelled.wait(), 2)


async def test_per_model_concurrency_limit() -> None:
    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        model = orjson.loads(request.content)["model"]
        in_flight[model] = in_flight.get(model, 0) + 1
        peak[model] = max(peak.get(model, 0), in_flight[model])
        await asyncio.sleep(0.01)
        in_flight[model] -= 1
        return json_response(200, completion())

    pool, registry = mock_pool(handler, max_connections=2)
    async with pool:
        calls = [
            pool.route_call(spec(registry, name), "q", max_tokens=8)
            for name in (QWEN, GEMMA)
            for _ in range(8)
        ]
        replies = await asyncio.gather(*calls)
    assert all(r.status == "ok" for r in replies)
    assert peak == {"qwen/qwen2.5-7b-instruct": 2, "google/gemma-2-27b-it": 2}


async def test_settings_override_the_per_model_limit() -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return json_response(200, completion())

    settings = FAST.model_copy(update={"max_connections_per_model": 1})
    pool, registry = mock_pool(handler, settings, max_connections=50)
    async with pool:
        await asyncio.gather(
            *(pool.route_call(spec(registry, QWEN), "q", max_tokens=8) for _ in range(5))
        )
    assert peak == 1


class Flaky:
    """Raises ``error`` for the first ``failures`` requests, then answers 200."""

    def __init__(self, error: Exception, failures: int = 1) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return json_response(200, completion())


async def test_read_timeout_is_not_retried_by_default() -> None:
    flaky = Flaky(httpx.ReadTimeout("slow"))
    pool, registry = mock_pool(flaky)
    async with pool:
        reply = await pool.route_call(spec(registry), "q", max_tokens=8)
    assert (reply.status, reply.attempts, flaky.calls) == ("timeout", 1, 1)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
    ],
)
async def test_failures_after_sending_are_retried_only_when_the_model_opts_in(
    error: Exception,
) -> None:
    flaky = Flaky(error, failures=2)
    pool, registry = mock_pool(flaky)
    async with pool:
        reply = await pool.route_call(spec(registry), "q", max_tokens=8)
    assert (reply.attempts, flaky.calls) == (1, 1)
    assert reply.error is not None
    assert "ConnectTimeout" not in reply.error
    opted_in = spec(registry).model_copy(update={"retry": RetryPolicy(unsafe=True)})
    flaky = Flaky(error, failures=2)
    pool, registry = mock_pool(flaky)
    async with pool:
        reply = await pool.route_call(opted_in, "q", max_tokens=8)
    assert (reply.status, reply.attempts, flaky.calls) == ("ok", 3, 3)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.WriteError("broken pipe while sending"),
    ],
)
async def test_connect_failures_are_retried(error: Exception) -> None:
    flaky = Flaky(error, failures=2)
    pool, registry = mock_pool(flaky)
    async with pool:
        reply = await pool.route_call(spec(registry), "q", max_tokens=8)
    assert (reply.status, reply.attempts) == ("ok", 3)
