"""A model's enforced limits: per-minute requests and tokens (a refused call is never sent),
and its context length."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from router_model.registry import ModelLimits, ModelSpec, Registry
from server.operations.model_limits import ModelRateLimits
from server.store import MemoryStore
from server.upstream import (
    UpstreamContextTooLongError,
    UpstreamPool,
    UpstreamRateLimitedError,
)
from server.upstream.limits import context_overflow
from tests.server.upstream.helpers import FAST, completion, json_response, make_registry

QWEN = "Qwen2.5-7B-Instruct"
USAGE = {"prompt_tokens": 40, "completion_tokens": 10}
SSE = {"content-type": "text/event-stream"}


class Clock:
    def __init__(self, now: float = 6000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limited(**limits: Any) -> tuple[Registry, ModelSpec]:
    registry = make_registry()
    model = registry.model(QWEN)
    assert model is not None
    return registry, model.model_copy(update={"limits": ModelLimits(**limits)})


@dataclass(frozen=True)
class Ticket:
    allowed: bool
    retry_after_s: int = 0


@dataclass
class Counting:
    """A limiter fake: records what it was asked; refuses when told to."""

    refuse: bool = False
    acquired: list[int] = field(default_factory=list)
    finished_with: list[int] = field(default_factory=list)

    async def acquire(self, model: ModelSpec, tokens_estimate: int) -> Ticket:
        self.acquired.append(tokens_estimate)
        return Ticket(not self.refuse, 17 if self.refuse else 0)

    async def finished(self, ticket: Ticket, tokens: int) -> None:
        self.finished_with.append(tokens)


def pool_with(limiter: Any, handler: Any, registry: Registry) -> tuple[UpstreamPool, list[Any]]:
    seen: list[Any] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        response: httpx.Response = handler(request)
        return response

    pool = UpstreamPool(
        lambda: registry, FAST, transport=httpx.MockTransport(recording), limiter=limiter
    )
    return pool, seen


def ok(request: httpx.Request) -> httpx.Response:
    return json_response(200, completion("fine", USAGE))


# ----------------------------------------------------------------------------- the limiter


async def test_the_gateways_limiter_counts_requests_per_minute() -> None:
    clock = Clock(6030.0)
    limits = ModelRateLimits(MemoryStore(), clock=clock)
    _, model = limited(requests_per_minute=2)
    assert (await limits.acquire(model, 10)).allowed
    assert (await limits.acquire(model, 10)).allowed
    refused = await limits.acquire(model, 10)
    assert not refused.allowed
    assert 29 <= refused.retry_after_s <= 31  # until the minute ends
    clock.now = 6060.0  # the next minute
    assert (await limits.acquire(model, 10)).allowed


async def test_the_gateways_limiter_counts_tokens_and_corrects_the_estimate() -> None:
    limits = ModelRateLimits(MemoryStore(), clock=Clock())
    _, model = limited(tokens_per_minute=100)
    big = await limits.acquire(model, 500)
    assert big.allowed  # a minute with no tokens yet takes any call: it could never run
    assert not (await limits.acquire(model, 1)).allowed
    await limits.finished(big, 60)  # it used 60, not 500
    assert (await limits.acquire(model, 40)).allowed  # 60 + 40 fits
    assert not (await limits.acquire(model, 1)).allowed


async def test_through_the_pool_a_shared_store_limits_every_replica() -> None:
    store = MemoryStore()
    registry, model = limited(requests_per_minute=2)
    replicas = [
        UpstreamPool(
            lambda: registry,
            FAST,
            transport=httpx.MockTransport(ok),
            limiter=ModelRateLimits(store, clock=Clock()),
        )
        for _ in range(2)
    ]
    statuses = []
    for pool in (*replicas, *replicas):
        statuses.append((await pool.route_call(model, "q", max_tokens=8)).status)
        await pool.aclose()
    assert statuses == ["ok", "ok", "rate_limited", "rate_limited"]


def test_context_overflow() -> None:
    _, model = limited(context_tokens=100)
    assert context_overflow(model, 60, 40) is None
    message = context_overflow(model, 61, 40)
    assert message is not None
    assert "about 61 tokens" in message
    assert "context of 100 tokens" in message
    _, unlimited = limited()
    assert context_overflow(unlimited, 10**9, 10**9) is None


# ----------------------------------------------------------------------------- routed calls


async def test_a_rate_limited_sub_query_is_not_executed() -> None:
    registry, model = limited(requests_per_minute=1)
    limiter = Counting(refuse=True)
    pool, seen = pool_with(limiter, ok, registry)
    async with pool:
        reply = await pool.route_call(model, "q" * 400, max_tokens=50)
    assert not seen
    assert (reply.status, reply.text, reply.attempts, reply.cost_usd) == (
        "rate_limited",
        None,
        0,
        0,
    )
    assert reply.error is not None
    assert "retry in 17 s" in reply.error
    assert limiter.acquired == [100 + 50]  # the prompt estimate (400 bytes / 4) + max_tokens
    assert limiter.finished_with == []  # refused: nothing to correct


async def test_an_admitted_sub_query_corrects_its_estimate_with_the_real_tokens() -> None:
    registry, model = limited(tokens_per_minute=10_000)
    limiter = Counting()
    pool, seen = pool_with(limiter, ok, registry)
    async with pool:
        reply = await pool.route_call(model, "q" * 400, max_tokens=50)
    assert (reply.status, len(seen)) == ("ok", 1)
    assert limiter.finished_with == [40 + 10]


async def test_a_sub_query_too_long_for_the_context_is_not_executed() -> None:
    registry, model = limited(context_tokens=120)
    pool, seen = pool_with(None, ok, registry)
    async with pool:
        too_long = await pool.route_call(model, "q" * 400, max_tokens=50)
        fits = await pool.route_call(model, "q" * 200, max_tokens=50)
    assert (too_long.status, too_long.attempts) == ("context_too_long", 0)
    assert fits.status == "ok"
    assert len(seen) == 1


# ----------------------------------------------------------------------------- passthrough


async def test_a_rate_limited_passthrough_is_a_429_with_retry_after() -> None:
    registry, model = limited(requests_per_minute=5)
    limiter = Counting(refuse=True)
    pool, seen = pool_with(limiter, ok, registry)
    body = {"messages": [{"role": "user", "content": "x" * 100}], "max_tokens": 20}
    async with pool:
        with pytest.raises(UpstreamRateLimitedError) as caught:
            await pool.chat(model, body)
    assert not seen
    error = caught.value
    assert (error.status_code, error.code, error.retry_after_s) == (429, "rate_limit_exceeded", 17)
    assert error.envelope()["error"]["code"] == "rate_limit_exceeded"


async def test_passthrough_estimates_are_the_callers_or_measured() -> None:
    registry, model = limited(tokens_per_minute=10**6)
    limiter = Counting()
    pool, _ = pool_with(limiter, ok, registry)
    body = {"messages": [{"role": "user", "content": "x" * 400}]}
    async with pool:
        await pool.chat(model, body, prompt_tokens=7)
        await pool.chat(model, {**body, "max_completion_tokens": 3})
    default_max = model.defaults.max_tokens
    measured = len(b'[{"role":"user","content":"' + b"x" * 400 + b'"}]') // 4
    assert limiter.acquired == [7 + default_max, measured + 3]
    assert limiter.finished_with == [50, 50]


async def test_a_passthrough_too_long_for_the_context_is_refused() -> None:
    registry, model = limited(context_tokens=50)
    pool, seen = pool_with(None, ok, registry)
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 100}
    async with pool:
        with pytest.raises(UpstreamContextTooLongError) as caught:
            await pool.chat_stream(model, {**body, "stream": True})
        result = await pool.chat(model, {**body, "max_tokens": 10})
    assert (caught.value.status_code, caught.value.code) == (400, "context_length_exceeded")
    assert result.status_code == 200
    assert len(seen) == 1


async def test_a_stream_corrects_the_token_count_when_it_closes() -> None:
    registry, model = limited(tokens_per_minute=10**6)
    limiter = Counting()
    wire = (
        b'data: {"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}\n\n'
        b"data: [DONE]\n\n"
    )
    pool, _ = pool_with(
        limiter, lambda request: httpx.Response(200, headers=SSE, content=wire), registry
    )
    async with pool:
        stream = await pool.chat_stream(model, {"messages": [], "stream": True}, prompt_tokens=5)
        assert limiter.finished_with == []
        async with stream:
            async for _ in stream:
                pass
    assert limiter.finished_with == [11]
