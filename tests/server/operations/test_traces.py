"""``GET /v1/router/traces/{request_id}``: the key that made the request (or an admin) only."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.api.conftest import GatewayFactory
from tests.server.operations.conftest import (
    ADMIN_KEY,
    ANSWER,
    KEY_A,
    KEY_B,
    QUESTION,
    QWEN,
    ROUTE_QWEN,
    key_entry,
    keys_json,
)

KEYS = keys_json(
    key_entry("team-a", KEY_A), key_entry("team-b", KEY_B), key_entry("ops", ADMIN_KEY, admin=True)
)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_the_owner_and_an_admin_read_a_trace(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({QWEN: UpstreamScript(reply="Tolstoy.")})
    async with gateway(FakeVLLM([ROUTE_QWEN, ANSWER]), upstream, api_keys=KEYS) as gw:
        client = gw.client.with_options(api_key=KEY_A)
        completion = await client.chat.completions.create(
            model="router-r1", messages=QUESTION, extra_headers={"x-request-id": "req-42"}
        )
        served = completion.model_extra["router"]
        mine = await gw.http.get("/v1/router/traces/req-42", headers=bearer(KEY_A))
        assert mine.status_code == 200
        assert mine.json() == served
        assert mine.json()["steps"][0]["model"] == "Qwen2.5-7B-Instruct"
        admin = await gw.http.get("/v1/router/traces/req-42", headers=bearer(ADMIN_KEY))
        assert admin.status_code == 200
        assert admin.json()["request_id"] == "req-42"
        other = await gw.http.get("/v1/router/traces/req-42", headers=bearer(KEY_B))
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "trace_not_found"
        anonymous = await gw.http.get("/v1/router/traces/req-42")
        assert anonymous.status_code == 401
        missing = await gw.http.get("/v1/router/traces/nope", headers=bearer(ADMIN_KEY))
        assert missing.status_code == 404


async def test_streamed_episodes_keep_their_trace(gateway: GatewayFactory) -> None:
    async with gateway(FakeVLLM([ANSWER]), api_keys=KEYS) as gw:
        client = gw.client.with_options(api_key=KEY_A)
        stream = await client.chat.completions.create(
            model="router-r1",
            messages=QUESTION,
            stream=True,
            extra_headers={"x-request-id": "stream-1"},
        )
        async for _ in stream:
            pass
        trace = await gw.http.get("/v1/router/traces/stream-1", headers=bearer(KEY_A))
        assert trace.status_code == 200
        assert trace.json()["outcome"] == "answer"


async def test_traces_expire(gateway: GatewayFactory) -> None:
    async with gateway(FakeVLLM([ANSWER]), api_keys=KEYS, trace_ttl_s=0.2) as gw:
        client = gw.client.with_options(api_key=KEY_A)
        await client.chat.completions.create(
            model="router-r1", messages=QUESTION, extra_headers={"x-request-id": "short"}
        )
        assert (await gw.http.get("/v1/router/traces/short", headers=bearer(KEY_A))).is_success
        await asyncio.sleep(0.3)
        assert (await gw.http.get("/v1/router/traces/short", headers=bearer(KEY_A))).is_error


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_request_id_reused_by_another_key_keeps_both_traces_apart(
    gateway: GatewayFactory, backend: str, request: pytest.FixtureRequest
) -> None:
    settings: dict[str, Any] = {"api_keys": KEYS}
    if backend == "redis":
        settings["redis_url"] = request.getfixturevalue("redis_server").url
    upstream = FakeUpstream({QWEN: UpstreamScript(reply="Tolstoy.")})
    async with gateway(FakeVLLM([ROUTE_QWEN, ANSWER, ANSWER]), upstream, **settings) as gw:
        served = {}
        for key in (KEY_A, KEY_B):  # A's episode routes once, B's answers at once
            completion = await gw.client.with_options(api_key=key).chat.completions.create(
                model="router-r1", messages=QUESTION, extra_headers={"x-request-id": "same-id"}
            )
            served[key] = completion.model_extra["router"]
        assert served[KEY_A]["steps"] != served[KEY_B]["steps"]
        for key in (KEY_A, KEY_B):  # neither replaced nor reads the other's
            trace = await gw.http.get("/v1/router/traces/same-id", headers=bearer(key))
            assert trace.status_code == 200
            assert trace.json() == served[key]
        admin = await gw.http.get("/v1/router/traces/same-id", headers=bearer(ADMIN_KEY))
        assert admin.json() == served[KEY_B]  # an admin reads the newest
