"""Keys that may use only some profiles and models: 403 for the others, /v1/models filtered."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.api.conftest import GatewayFactory
from tests.server.operations.conftest import (
    ANSWER,
    KEY_A,
    KEY_B,
    QUESTION,
    QWEN,
    key_entry,
    keys_json,
)

PASSTHROUGH = "Qwen2.5-7B-Instruct"
OTHER = "Gemma-2-27B-Instruct"


def keys(**team_a: Any) -> str:
    return keys_json(key_entry("team-a", KEY_A, **team_a), key_entry("team-b", KEY_B))


async def test_a_key_limited_to_a_profile_gets_403_for_a_model(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({QWEN: UpstreamScript(reply="hi")})
    registry_keys = keys(profiles=["router-r1"], models=[])
    async with gateway(FakeVLLM([ANSWER]), upstream, api_keys=registry_keys) as gw:
        a = gw.client.with_options(api_key=KEY_A)
        completion = await a.chat.completions.create(model="router-r1", messages=QUESTION)
        assert completion.choices[0].message.content == "Leo Tolstoy"
        with pytest.raises(openai.PermissionDeniedError) as info:
            await a.chat.completions.create(model=PASSTHROUGH, messages=QUESTION)
        assert info.value.status_code == 403
        assert info.value.code == "model_not_allowed"
        error = info.value.body
        assert isinstance(error, dict)
        assert error["type"] == "permission_error"
        assert error["param"] == "model"
        assert upstream.calls_to(QWEN) == []
        # another key without lists may use it
        b = gw.client.with_options(api_key=KEY_B)
        reply = await b.chat.completions.create(model=PASSTHROUGH, messages=QUESTION)
        assert reply.choices[0].message.content == "hi"


async def test_models_lists_only_what_the_key_may_use(gateway: GatewayFactory) -> None:
    async with gateway(api_keys=keys(profiles=[], models=[PASSTHROUGH])) as gw:
        a = gw.client.with_options(api_key=KEY_A)
        assert [card.id for card in (await a.models.list()).data] == [PASSTHROUGH]
        assert (await a.models.retrieve(PASSTHROUGH)).id == PASSTHROUGH
        with pytest.raises(openai.PermissionDeniedError):
            await a.models.retrieve("router-r1")
        with pytest.raises(openai.PermissionDeniedError):
            await a.chat.completions.create(model="router-r1", messages=QUESTION)
        with pytest.raises(openai.NotFoundError):  # unknown stays unknown
            await a.models.retrieve("no-such-model")
        b = gw.client.with_options(api_key=KEY_B)
        listed = {card.id for card in (await b.models.list()).data}
        assert {"router-r1", PASSTHROUGH, OTHER} <= listed


async def test_a_refused_model_does_not_count_against_the_key_limits(
    gateway: GatewayFactory,
) -> None:
    async with gateway(FakeVLLM([ANSWER]), api_keys=keys(models=[], requests_per_minute=1)) as gw:
        a = gw.client.with_options(api_key=KEY_A)
        with pytest.raises(openai.PermissionDeniedError):
            await a.chat.completions.create(model=PASSTHROUGH, messages=QUESTION)
        completion = await a.chat.completions.create(model="router-r1", messages=QUESTION)
        assert completion.choices[0].message.content == "Leo Tolstoy"
