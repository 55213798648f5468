"""API keys through the official SDK: 401, 429 with Retry-After, 402, open mode."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import openai
import pytest

from tests.fakes.vllm_server import FakeVLLM
from tests.server.api.conftest import GatewayFactory
from tests.server.operations.conftest import (
    ADMIN_KEY,
    ANSWER,
    KEY_A,
    KEY_B,
    QUESTION,
    ROUTE_QWEN,
    key_entry,
    keys_json,
    one_request_budget,
)


def answers(n: int) -> FakeVLLM:
    return FakeVLLM([ANSWER] * n)


async def test_a_wrong_key_is_401(gateway: GatewayFactory) -> None:
    async with gateway(answers(1), api_keys=keys_json(key_entry("team-a", KEY_A))) as gw:
        with pytest.raises(openai.AuthenticationError) as info:
            await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert info.value.code == "invalid_api_key"
        response = await gw.http.post(
            "/v1/chat/completions", json={"model": "router-r1", "messages": QUESTION}
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "missing_api_key"
        assert response.headers["www-authenticate"] == "Bearer"
        models = await gw.http.get("/v1/models")
        assert models.status_code == 401
        client = gw.client.with_options(api_key=KEY_A)
        completion = await client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert completion.choices[0].message.content == "Leo Tolstoy"
        assert (await client.models.list()).data


async def test_open_mode_accepts_anyone(gateway: GatewayFactory) -> None:
    async with gateway(answers(1)) as gw:
        completion = await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert completion.choices[0].message.content == "Leo Tolstoy"
        usage = (await gw.http.get("/v1/router/usage")).json()
        assert usage["key"] == "anonymous"


async def test_requests_per_minute_is_429_with_retry_after(gateway: GatewayFactory) -> None:
    keys = keys_json(key_entry("team-a", KEY_A, requests_per_minute=2))
    async with gateway(answers(3), api_keys=keys) as gw:
        client = gw.client.with_options(api_key=KEY_A)
        for _ in range(2):
            await client.chat.completions.create(model="router-r1", messages=QUESTION)
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert info.value.code == "rate_limit_exceeded"
        assert "2 requests per minute" in info.value.message
        assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
        assert len(gw.engine.completions) == 2  # the refused request never reached the policy


async def test_tokens_per_minute_is_429(gateway: GatewayFactory) -> None:
    keys = keys_json(key_entry("team-a", KEY_A, tokens_per_minute=10))
    async with gateway(answers(2), api_keys=keys) as gw:
        client = gw.client.with_options(api_key=KEY_A)
        await client.chat.completions.create(model="router-r1", messages=QUESTION)
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert "10 tokens per minute" in info.value.message


async def test_a_spent_budget_is_402(gateway: GatewayFactory) -> None:
    budget = one_request_budget()  # admission reserves a request's worst case
    keys = keys_json(key_entry("team-a", KEY_A, budget_usd=budget, budget_period="day"))
    async with gateway(FakeVLLM([ROUTE_QWEN, ANSWER, ANSWER]), api_keys=keys) as gw:
        client = gw.client.with_options(api_key=KEY_A)
        first = await client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert first.usage is not None
        assert first.usage.model_extra["cost"] > 0  # what is left cannot cover another
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert info.value.status_code == 402
        assert info.value.code == "budget_exceeded"
        assert int(info.value.response.headers["retry-after"]) >= 1


async def test_an_admin_key_is_a_key_too(gateway: GatewayFactory) -> None:
    keys = keys_json(key_entry("ops", ADMIN_KEY, admin=True))
    async with gateway(answers(1), api_keys=keys) as gw:
        client = gw.client.with_options(api_key=ADMIN_KEY)
        completion = await client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert completion.choices[0].message.content == "Leo Tolstoy"


async def test_a_key_added_to_the_file_works_without_a_restart(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(keys_json(key_entry("team-a", KEY_A)))
    settings = {"api_keys_file": path, "api_keys_reload_interval_s": 0.05}
    async with gateway(answers(2), **settings) as gw:
        team_b = gw.client.with_options(api_key=KEY_B)
        with pytest.raises(openai.AuthenticationError):
            await team_b.chat.completions.create(model="router-r1", messages=QUESTION)
        path.write_text(keys_json(key_entry("team-a", KEY_A), key_entry("team-b", KEY_B)))
        os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
        for _ in range(200):
            ready = (await gw.http.get("/ready")).json()
            if ready["auth"]["reload"]["reloads"]:
                break
            await asyncio.sleep(0.02)
        assert ready["auth"]["keys"] == 2
        completion = await team_b.chat.completions.create(model="router-r1", messages=QUESTION)
        assert completion.choices[0].message.content == "Leo Tolstoy"
