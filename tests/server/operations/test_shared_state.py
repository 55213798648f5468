"""Two gateway replicas sharing one real Redis: limits, spend, cache and traces are shared,
and a Redis outage never stops requests (slow: starts redis-server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import openai
import pytest

from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.api.conftest import Gateway, running_gateway
from tests.server.operations.conftest import (
    ANSWER,
    KEY_A,
    QUESTION,
    QWEN,
    ROUTE_QWEN,
    key_entry,
    keys_json,
    one_request_budget,
    spend_of,
)
from tests.servers.redis_server import RedisServer

pytestmark = pytest.mark.slow


def route_then_answer(prompt: str) -> str:
    """Route once, then answer (after a route the prompt ends with its observation)."""
    return ANSWER if prompt.rstrip().endswith("</information>") else ROUTE_QWEN


@asynccontextmanager
async def replicas(
    redis: RedisServer, keys: str, *, n: int = 2, **settings: Any
) -> AsyncIterator[list[Gateway]]:
    async with AsyncExitStack() as stack:
        gateways = [
            await stack.enter_async_context(
                running_gateway(
                    FakeVLLM(route_then_answer),
                    FakeUpstream({QWEN: UpstreamScript(reply="Tolstoy.")}),
                    redis_url=redis.url,
                    api_keys=keys,
                    **{"redis_timeout_s": 1.0, "redis_retry_interval_s": 0.3, **settings},
                )
            )
            for _ in range(n)
        ]
        yield gateways


async def ask(gw: Gateway, key: str = KEY_A, **extra: Any) -> Any:
    client = gw.client.with_options(api_key=key)
    return await client.chat.completions.create(model="router-r1", messages=QUESTION, **extra)


async def test_the_request_limit_holds_across_replicas(redis_server: RedisServer) -> None:
    keys = keys_json(key_entry("team-a", KEY_A, requests_per_minute=10))
    async with replicas(redis_server, keys) as (one, two):
        results = await asyncio.gather(
            *(ask(one if i % 2 else two) for i in range(30)), return_exceptions=True
        )
    ok = [r for r in results if not isinstance(r, BaseException)]
    limited = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(ok) == 10
    assert len(limited) == 20


async def test_spend_cache_and_traces_are_shared(redis_server: RedisServer) -> None:
    keys = keys_json(key_entry("team-a", KEY_A, budget_usd=100.0))
    async with replicas(redis_server, keys) as (one, two):
        first = await ask(one, extra_headers={"x-request-id": "shared-1"})
        assert len(one.upstream.calls) == 1
        second = await ask(two)  # the same sub-query: a hit in the shared cache
        assert two.upstream.calls == []
        assert second.model_extra["router"]["steps"][0]["cached"] is True
        cost = first.usage.model_extra["cost"]
        assert cost > 0
        assert await spend_of(one, KEY_A) == pytest.approx(cost)
        assert await spend_of(two, KEY_A) == pytest.approx(cost)
        trace = await two.http.get(
            "/v1/router/traces/shared-1", headers={"authorization": f"Bearer {KEY_A}"}
        )
        assert trace.status_code == 200
        assert trace.json()["steps"][0]["cached"] is False


async def test_concurrent_spend_on_two_replicas_adds_up(redis_server: RedisServer) -> None:
    keys = keys_json(key_entry("team-a", KEY_A, budget_usd=100.0))
    async with replicas(redis_server, keys, cache_enabled=False) as (one, two):
        results = await asyncio.gather(*(ask(one if i % 2 else two) for i in range(20)))
        total = sum(r.usage.model_extra["cost"] for r in results)
        assert total > 0
        assert await spend_of(one, KEY_A) == pytest.approx(total)


async def test_a_budget_spent_on_one_replica_is_spent_on_the_other(
    redis_server: RedisServer,
) -> None:
    keys = keys_json(key_entry("team-a", KEY_A, budget_usd=one_request_budget()))
    async with replicas(redis_server, keys, cache_enabled=False) as (one, two):
        await ask(one)
        with pytest.raises(openai.APIStatusError) as info:
            await ask(two)
        assert info.value.status_code == 402


async def test_requests_keep_flowing_when_redis_is_killed(redis_server: RedisServer) -> None:
    keys = keys_json(key_entry("team-a", KEY_A, requests_per_minute=1000, budget_usd=100.0))
    async with replicas(redis_server, keys, n=1, redis_timeout_s=0.2) as (gw,):
        await ask(gw)
        redis_server.kill()
        latencies = []
        for _ in range(10):
            started = time.perf_counter()
            completion = await ask(gw)
            latencies.append(time.perf_counter() - started)
            assert completion.choices[0].message.content == "Leo Tolstoy"
        # bounded, never a hang: a few 0.2 s Redis waits at most (generous for a loaded CI machine)
        assert max(latencies) < 10
        metrics = (await gw.http.get("/metrics")).text
        assert "router_r1_store_errors_total" in metrics
        ready = (await gw.http.get("/ready")).json()
        assert ready["store"] == {"backend": "redis", "up": False}
        redis_server.start()  # an empty Redis comes back: limits and spend work again
        await asyncio.sleep(0.4)
        await ask(gw)
        assert await spend_of(gw, KEY_A) > 0


async def test_fail_closed_refuses_with_503_while_redis_is_down(
    redis_server: RedisServer,
) -> None:
    keys = keys_json(key_entry("team-a", KEY_A, requests_per_minute=1000))
    async with replicas(redis_server, keys, n=1, limits_fail_open=False) as (gw,):
        await ask(gw)
        redis_server.kill()
        with pytest.raises(openai.InternalServerError) as info:
            await ask(gw)
        assert info.value.status_code == 503
        assert info.value.response.headers["retry-after"] == "1"
