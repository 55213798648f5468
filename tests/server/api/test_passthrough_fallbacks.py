"""Passthrough fallbacks, model limits and breaker state through the gateway: which failures
hand the request to the next model, what the client and the trace are told, what is billed."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from router_model.registry import ModelLimits, Registry
from server.upstream.errors import (
    UpstreamBadResponseError,
    UpstreamConnectionError,
    UpstreamContextTooLongError,
    UpstreamHTTPError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from server.upstream.fallback import fallback_chain, falls_back
from tests.fakes.registry import default_registry
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.server.api.conftest import GatewayFactory

GEMMA, QWEN, MISTRAL = "Gemma-2-27B-Instruct", "Qwen2.5-7B-Instruct", "Mistral-7B-Instruct"
GEMMA_ID, QWEN_ID, MISTRAL_ID = (
    "google/gemma-2-27b-it",
    "qwen/qwen2.5-7b-instruct",
    "mistralai/mistral-7b-instruct-v0.3",
)
MESSAGES = [{"role": "user", "content": "Say hi"}]


def with_fallbacks(*fallbacks: str, **limits: Any) -> Registry:
    """The default registry with Gemma falling back to ``fallbacks`` (and given limits)."""
    registry = default_registry()
    models = []
    for model in registry.models:
        if model.name == GEMMA:
            update: dict[str, Any] = {"fallbacks": fallbacks}
            if limits:
                update["limits"] = ModelLimits(**limits)
            model = model.model_copy(update=update)
        models.append(model)
    return Registry(registry.spec.model_copy(update={"models": tuple(models)}))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (UpstreamConnectionError("refused"), True),
        (UpstreamTimeoutError("slow"), True),
        (UpstreamHTTPError(500, "x"), True),
        (UpstreamHTTPError(503, "x"), True),
        (UpstreamHTTPError(429, "x"), True),
        (UpstreamUnavailableError("open"), True),
        (UpstreamRateLimitedError("limit", retry_after_s=3), True),
        (UpstreamContextTooLongError("long"), True),
        (UpstreamHTTPError(400, "x"), False),
        (UpstreamHTTPError(404, "x"), False),
        (UpstreamHTTPError(422, "x"), False),
        (UpstreamBadResponseError("garbage"), False),
    ],
)
def test_which_failures_fall_back(error: Exception, expected: bool) -> None:
    assert falls_back(error) is expected  # type: ignore[arg-type]


def test_the_chain_is_the_model_then_its_known_fallbacks_in_order() -> None:
    registry = with_fallbacks(MISTRAL, QWEN)
    gemma = registry.model(GEMMA)
    assert gemma is not None
    assert [m.name for m in fallback_chain(registry, gemma)] == [GEMMA, MISTRAL, QWEN]
    # a reloaded registry without one of them: only those it defines are tried
    smaller = Registry(
        registry.spec.model_copy(
            update={"models": tuple(m for m in registry.models if m.name != MISTRAL)}
        )
    )
    assert [m.name for m in fallback_chain(smaller, gemma)] == [GEMMA, QWEN]


async def test_a_5xx_falls_back_to_the_next_model(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream(
        {GEMMA_ID: UpstreamScript(status=500), QWEN_ID: UpstreamScript(reply="hello from qwen")}
    )
    async with gateway(upstream=upstream, registry=with_fallbacks(QWEN, MISTRAL)) as gw:
        raw = await gw.client.chat.completions.with_raw_response.create(
            model=GEMMA, messages=MESSAGES
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == "hello from qwen"
    assert raw.headers["x-router-fallback"] == QWEN
    assert [c.model for c in upstream.calls] == [GEMMA_ID, QWEN_ID]  # Mistral never asked
    router = completion.model_extra["router"]
    assert router["model"] == GEMMA
    steps = router["steps"]
    assert [(s["model"], s["upstream_status"]) for s in steps] == [
        (GEMMA, "http_error"),
        (QWEN, "ok"),
    ]
    assert steps[0]["cost_usd"] == 0.0  # refused before any reply: not billed
    assert router["totals"]["models"] == [GEMMA, QWEN]
    assert router["totals"]["cost_usd"] == pytest.approx(steps[1]["cost_usd"])
    assert completion.usage is not None
    assert completion.usage.model_extra["cost"] == pytest.approx(steps[1]["cost_usd"])


async def test_a_4xx_caused_by_the_request_never_falls_back(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({GEMMA_ID: UpstreamScript(status=400)})
    async with gateway(upstream=upstream, registry=with_fallbacks(QWEN)) as gw:
        with pytest.raises(openai.BadRequestError):
            await gw.client.chat.completions.create(model=GEMMA, messages=MESSAGES)
    assert [c.model for c in upstream.calls] == [GEMMA_ID]


async def test_a_429_after_its_retries_falls_back(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({GEMMA_ID: UpstreamScript(status=429)})
    async with gateway(upstream=upstream, registry=with_fallbacks(QWEN)) as gw:
        raw = await gw.client.chat.completions.with_raw_response.create(
            model=GEMMA, messages=MESSAGES
        )
    assert raw.headers["x-router-fallback"] == QWEN
    assert [c.model for c in upstream.calls] == [GEMMA_ID] * 3 + [QWEN_ID]  # 1 + 2 retries


async def test_too_long_for_the_model_goes_to_a_fallback_unsent(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream()
    long = [{"role": "user", "content": "word " * 8000}]  # ~10k tokens by the estimate
    registry = with_fallbacks(QWEN, context_tokens=8192)
    async with gateway(upstream=upstream, registry=registry) as gw:
        raw = await gw.client.chat.completions.with_raw_response.create(model=GEMMA, messages=long)
        fits = await gw.client.chat.completions.with_raw_response.create(
            model=GEMMA, messages=MESSAGES
        )
    assert raw.headers["x-router-fallback"] == QWEN
    assert "x-router-fallback" not in fits.headers
    assert [c.model for c in upstream.calls] == [QWEN_ID, GEMMA_ID]
    step = raw.parse().model_extra["router"]["steps"][0]
    assert (step["upstream_status"], step["upstream_attempts"]) == ("context_too_long", 0)


async def test_too_long_without_a_fallback_is_a_400(gateway: GatewayFactory) -> None:
    long = [{"role": "user", "content": "word " * 8000}]
    async with gateway(registry=with_fallbacks(context_tokens=8192)) as gw:
        with pytest.raises(openai.BadRequestError) as info:
            await gw.client.chat.completions.create(model=GEMMA, messages=long)
    assert info.value.code == "context_length_exceeded"


async def test_when_every_model_fails_the_last_error_is_returned(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream(
        {
            GEMMA_ID: UpstreamScript(status=500),
            QWEN_ID: UpstreamScript(status=502),
            MISTRAL_ID: UpstreamScript(status=504),
        }
    )
    async with gateway(upstream=upstream, registry=with_fallbacks(QWEN, MISTRAL)) as gw:
        with pytest.raises(openai.InternalServerError) as info:
            await gw.client.chat.completions.create(model=GEMMA, messages=MESSAGES)
    assert info.value.status_code == 502
    assert "scripted 504" in str(info.value.message)
    assert [c.model for c in upstream.calls] == [GEMMA_ID, QWEN_ID, MISTRAL_ID]


async def test_a_stream_falls_back_before_its_first_byte(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream(
        {GEMMA_ID: UpstreamScript(status=503), QWEN_ID: UpstreamScript(reply="one two")}
    )
    async with gateway(upstream=upstream, registry=with_fallbacks(QWEN)) as gw:
        response = await gw.http.post(
            "/v1/chat/completions", json={"model": GEMMA, "messages": MESSAGES, "stream": True}
        )
    assert response.status_code == 200
    assert response.headers["x-router-fallback"] == QWEN
    assert response.headers["x-router-models"] == QWEN
    events = [e for e in response.text.split("\n\n") if e]
    final = json.loads(events[-2].removeprefix("data: "))
    steps = final["router"]["steps"]
    assert [(s["model"], s["upstream_status"]) for s in steps] == [
        (GEMMA, "http_error"),
        (QWEN, "ok"),
    ]
    assert final["router"]["totals"]["cost_usd"] == pytest.approx(steps[1]["cost_usd"])


async def test_a_models_per_minute_limit_answers_429_with_retry_after(
    gateway: GatewayFactory,
) -> None:
    upstream = FakeUpstream()
    async with gateway(upstream=upstream, registry=with_fallbacks(requests_per_minute=1)) as gw:
        await gw.client.chat.completions.create(model=GEMMA, messages=MESSAGES)
        refused = await gw.http.post(
            "/v1/chat/completions", json={"model": GEMMA, "messages": MESSAGES}
        )
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(upstream.calls) == 1


async def test_a_rate_limited_model_hands_over_to_its_fallback(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream()
    registry = with_fallbacks(QWEN, requests_per_minute=1)
    async with gateway(upstream=upstream, registry=registry) as gw:
        await gw.client.chat.completions.create(model=GEMMA, messages=MESSAGES)
        raw = await gw.client.chat.completions.with_raw_response.create(
            model=GEMMA, messages=MESSAGES
        )
    assert raw.headers["x-router-fallback"] == QWEN
    assert [c.model for c in upstream.calls] == [GEMMA_ID, QWEN_ID]


async def test_ready_shows_the_breakers(gateway: GatewayFactory) -> None:
    async with gateway() as gw:
        await gw.client.chat.completions.create(model=GEMMA, messages=MESSAGES)
        ready = await gw.http.get("/ready")
    assert ready.json()["upstream"]["breakers"] == {GEMMA: {"nim": "closed"}}
