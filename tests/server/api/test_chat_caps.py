"""A client's own caps on a router-profile request: the ``router`` field and the headers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.api.conftest import GatewayFactory

QWEN_ID = "qwen/qwen2.5-7b-instruct"
QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace?"}]
ROUTE = "<think>Ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote it </search>"
ANSWER = "<think>Now I know.</think>\n<answer> Leo Tolstoy </answer>"


@pytest.mark.parametrize(
    ("headers", "router"),
    [
        ({"x-router-max-upstream-calls": "0"}, None),
        ({}, {"max_upstream_calls": 0}),
        ({"x-router-max-cost-usd": "0.000001"}, None),
        ({"x-router-max-upstream-calls": "3"}, {"max_upstream_calls": 0}),  # the lower wins
        ({}, {"max_upstream_calls": 0, "cache": False}),  # with the cache opt-out
    ],
)
async def test_a_client_cap_keeps_a_route_from_running(
    gateway: GatewayFactory, headers: dict[str, str], router: dict[str, Any] | None
) -> None:
    upstream = FakeUpstream({QWEN_ID: UpstreamScript(reply="Tolstoy.")})
    body: dict[str, Any] = {"model": "router-r1", "messages": QUESTION}
    if router is not None:
        body["router"] = router
    async with gateway(FakeVLLM([ROUTE, ANSWER]), upstream) as gw:
        response = await gw.http.post("/v1/chat/completions", json=body, headers=headers)
        metrics = (await gw.http.get("/metrics")).text
    assert response.status_code == 200
    step = response.json()["router"]["steps"][0]
    cap = "cost_cap" if "x-router-max-cost-usd" in headers else "call_cap"
    assert step["upstream_status"] == cap
    assert upstream.calls_to(QWEN_ID) == []
    assert response.json()["choices"][0]["message"]["content"] == "Leo Tolstoy"
    assert f'router_r1_caps_tripped_total{{cap="{cap}",profile="router-r1"}} 1.0' in metrics


@pytest.mark.parametrize(
    ("headers", "router", "param"),
    [
        ({"x-router-max-cost-usd": "cheap"}, None, "x-router-max-cost-usd"),
        ({"x-router-max-upstream-calls": "-1"}, None, "x-router-max-upstream-calls"),
        ({}, {"max_cost_usd": -0.5}, "router.max_cost_usd"),
        ({}, {"max_upstream_calls": 1.5}, "router.max_upstream_calls"),
        ({}, "cheap", "router"),
    ],
)
async def test_an_invalid_cap_is_a_400_naming_it(
    gateway: GatewayFactory, headers: dict[str, str], router: Any, param: str
) -> None:
    body: dict[str, Any] = {"model": "router-r1", "messages": QUESTION}
    if router is not None:
        body["router"] = router
    async with gateway(FakeVLLM([ANSWER])) as gw:
        response = await gw.http.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
