"""Spend is recorded for every request: plain, streamed, failed midway, passthrough."""

from __future__ import annotations

import openai
import pytest

from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM, ScriptedTurn
from tests.server.api.conftest import GatewayFactory
from tests.server.operations.conftest import (
    ANSWER,
    KEY_A,
    QUESTION,
    QWEN,
    ROUTE_QWEN,
    key_entry,
    keys_json,
    spend_of,
)

KEYS = keys_json(key_entry("team-a", KEY_A, budget_usd=100.0))
REPLY = UpstreamScript(reply="Leo Tolstoy wrote it, in the 1860s.")


async def test_a_completed_episode_is_charged_its_cost(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({QWEN: REPLY})
    async with gateway(FakeVLLM([ROUTE_QWEN, ANSWER]), upstream, api_keys=KEYS) as gw:
        client = gw.client.with_options(api_key=KEY_A)
        completion = await client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert completion.usage is not None
        cost = completion.usage.model_extra["cost"]
        assert cost > 0
        assert await spend_of(gw, KEY_A) == pytest.approx(cost)


async def test_a_streamed_episode_is_charged_its_cost(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({QWEN: REPLY})
    async with gateway(FakeVLLM([ROUTE_QWEN, ANSWER]), upstream, api_keys=KEYS) as gw:
        client = gw.client.with_options(api_key=KEY_A)
        stream = await client.chat.completions.create(
            model="router-r1",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
        costs = [chunk.usage.model_extra["cost"] async for chunk in stream if chunk.usage]
        assert len(costs) == 1
        assert costs[0] > 0
        assert await spend_of(gw, KEY_A) == pytest.approx(costs[0])


async def test_an_episode_failing_midway_is_charged_what_it_spent(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({QWEN: REPLY})
    engine = FakeVLLM([ROUTE_QWEN, ScriptedTurn(status=500)])
    async with gateway(engine, upstream, api_keys=KEYS) as gw:
        client = gw.client.with_options(api_key=KEY_A)
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert len(upstream.calls_to(QWEN)) == 1
        prompt = len(upstream.calls[0].body["messages"][0]["content"].split())
        completion = len(REPLY.reply.split())
        assert await spend_of(gw, KEY_A) == pytest.approx((prompt + completion) * 0.3 / 1e6)


async def test_a_stream_failing_midway_is_charged_what_it_spent(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({QWEN: REPLY})
    engine = FakeVLLM([ROUTE_QWEN, ScriptedTurn(status=500)])
    async with gateway(engine, upstream, api_keys=KEYS) as gw:
        response = await gw.http.post(
            "/v1/chat/completions",
            json={"model": "router-r1", "messages": QUESTION, "stream": True},
            headers={"authorization": f"Bearer {KEY_A}"},
        )
        assert response.status_code == 200
        assert '"error"' in response.text  # the failure travelled in the stream
        assert await spend_of(gw, KEY_A) > 0


async def test_passthrough_plain_and_streamed_are_charged(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({QWEN: REPLY})
    async with gateway(FakeVLLM([]), upstream, api_keys=KEYS) as gw:
        client = gw.client.with_options(api_key=KEY_A)
        plain = await client.chat.completions.create(model="Qwen2.5-7B-Instruct", messages=QUESTION)
        assert plain.usage is not None
        plain_cost = plain.usage.model_extra["cost"]
        assert await spend_of(gw, KEY_A) == pytest.approx(plain_cost)
        stream = await client.chat.completions.create(
            model="Qwen2.5-7B-Instruct",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
        costs = [chunk.usage.model_extra["cost"] async for chunk in stream if chunk.usage]
        assert costs[-1] > 0
        assert await spend_of(gw, KEY_A) == pytest.approx(plain_cost + costs[-1])
