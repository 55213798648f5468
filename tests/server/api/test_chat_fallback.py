"""A router profile's fallback model answers when the episode cannot, streamed and not."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from router_model.registry import Registry, parse_registry
from tests.fakes.registry import PROFILE, REGISTRY_FILE
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM, ScriptedTurn
from tests.server.api.conftest import GatewayFactory

FALLBACK = "LLaMA-3.1-8B-Instruct"
FALLBACK_ID = "meta/llama-3.1-8b-instruct"
QWEN_ID = "qwen/qwen2.5-7b-instruct"
QUESTION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Who wrote the novel War and Peace?"},
]
THINK_ONLY = "<think>I am not sure what to do.</think>"  # no action: the turn is used up
ROUTE = "<think>Ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote it </search>"
ANSWER = "<think>Now I know.</think>\n<answer> Leo Tolstoy </answer>"
FALLBACK_REPLY = "Leo Tolstoy wrote War and Peace."


def registry(on: list[str] | None = None, **limits: Any) -> Registry:
    data = yaml.safe_load(REGISTRY_FILE.read_text())
    (profile,) = [p for p in data["profiles"] if p["name"] == PROFILE]
    profile["fallback"] = {"model": FALLBACK, **({"when": on} if on is not None else {})}
    profile["limits"] = {**profile["limits"], "max_routes": 1, **limits}
    return Registry(parse_registry(yaml.safe_dump(data), "<fallback>", environ={}))


def upstream(**scripts: UpstreamScript) -> FakeUpstream:
    return FakeUpstream(
        {
            FALLBACK_ID: scripts.get("fallback", UpstreamScript(reply=FALLBACK_REPLY)),
            QWEN_ID: scripts.get("qwen", UpstreamScript(reply="Maybe Tolstoy.")),
        }
    )


def router_of(completion: Any) -> dict[str, Any]:
    router: dict[str, Any] = completion.model_extra["router"]
    return router


async def metric_value(gw: Any, name: str) -> float:
    text = (await gw.http.get("/metrics")).text
    lines = [line for line in text.splitlines() if line.startswith(name)]
    return sum(float(line.rpartition(" ")[2]) for line in lines)


async def test_no_answer_is_answered_by_the_fallback_with_the_original_messages(
    gateway: GatewayFactory,
) -> None:
    up = upstream()
    async with gateway(FakeVLLM([ROUTE, THINK_ONLY]), up, registry=registry()) as gw:
        raw = await gw.client.chat.completions.with_raw_response.create(
            model="router-r1", messages=QUESTION, temperature=0.3, extra_body={"router": {}}
        )
        fallbacks = await metric_value(
            gw, 'router_r1_fallbacks_total{profile="router-r1",reason="no_answer"}'
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == FALLBACK_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert raw.headers["x-router-fallback"] == FALLBACK
    router = router_of(completion)
    assert router["outcome"] == "fallback"
    assert router["fallback"] == {
        "model": FALLBACK,
        "reason": "no_answer",
        "status": "ok",
        "detail": None,
    }
    route, think, last = router["steps"]
    assert (route["action"], think["action"], last["action"]) == ("route", "none", "fallback")
    assert (last["model"], last["upstream_status"]) == (FALLBACK, "ok")
    # the fallback got the client's request, as a passthrough would send it
    (call,) = up.calls_to(FALLBACK_ID)
    assert call.body["messages"] == QUESTION
    assert call.body["temperature"] == 0.3
    assert "router" not in call.body
    # everything spent: the route and the fallback
    totals = router["totals"]
    assert totals["models"] == ["Qwen2.5-7B-Instruct", FALLBACK]
    assert totals["upstream_calls"] == 2
    assert totals["cost_usd"] == pytest.approx(route["cost_usd"] + last["cost_usd"])
    assert last["cost_usd"] > 0
    assert completion.usage is not None
    assert completion.usage.model_extra["cost"] == pytest.approx(totals["cost_usd"])
    assert float(raw.headers["x-router-cost-usd"]) == pytest.approx(totals["cost_usd"], abs=1e-8)
    assert fallbacks == 1.0
    # the policy's reasoning is still shown
    assert THINK_ONLY in completion.choices[0].message.model_extra["reasoning_content"]


async def test_an_unavailable_engine_is_answered_by_the_fallback(gateway: GatewayFactory) -> None:
    engine = FakeVLLM([ScriptedTurn(status=503)])
    async with gateway(engine, upstream(), registry=registry()) as gw:
        completion = await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
    router = router_of(completion)
    assert completion.choices[0].message.content == FALLBACK_REPLY
    assert router["outcome"] == "fallback"
    assert router["fallback"]["reason"] == "engine_unavailable"
    assert "HTTP 503" in router["fallback"]["detail"]
    assert router["error"] is None


async def test_a_condition_not_listed_keeps_the_error(gateway: GatewayFactory) -> None:
    engine = FakeVLLM([ScriptedTurn(status=503)])
    up = upstream()
    async with gateway(engine, up, registry=registry(on=["no_answer"])) as gw:
        response = await gw.http.post(
            "/v1/chat/completions", json={"model": "router-r1", "messages": QUESTION}
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "policy_engine_unavailable"
    assert up.calls_to(FALLBACK_ID) == []


async def test_a_passed_deadline_is_answered_by_the_fallback(gateway: GatewayFactory) -> None:
    engine = FakeVLLM([ScriptedTurn(THINK_ONLY, delay_s=0.5)])
    async with gateway(engine, upstream(), registry=registry(deadline_s=0.05)) as gw:
        completion = await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
    router = router_of(completion)
    assert router["outcome"] == "fallback"
    assert router["fallback"]["reason"] == "deadline_exceeded"
    assert completion.choices[0].message.content == FALLBACK_REPLY


async def test_an_answer_needs_no_fallback(gateway: GatewayFactory) -> None:
    up = upstream()
    async with gateway(FakeVLLM([ANSWER]), up, registry=registry()) as gw:
        raw = await gw.client.chat.completions.with_raw_response.create(
            model="router-r1", messages=QUESTION
        )
    assert raw.parse().choices[0].message.content == "Leo Tolstoy"
    assert "x-router-fallback" not in raw.headers
    assert router_of(raw.parse())["fallback"] is None
    assert up.calls_to(FALLBACK_ID) == []


async def test_a_failing_fallback_leaves_the_episode_outcome(gateway: GatewayFactory) -> None:
    up = upstream(fallback=UpstreamScript(status=400))
    async with gateway(FakeVLLM([THINK_ONLY, THINK_ONLY]), up, registry=registry()) as gw:
        raw = await gw.client.chat.completions.with_raw_response.create(
            model="router-r1", messages=QUESTION
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == ""
    router = router_of(completion)
    assert router["outcome"] == "no_answer"
    assert router["fallback"]["status"] == "http_error"
    assert router["steps"][-1]["action"] == "fallback"
    assert "x-router-fallback" not in raw.headers


async def test_a_cap_stops_the_fallback_call(gateway: GatewayFactory) -> None:
    up = upstream()
    async with gateway(FakeVLLM([ROUTE, THINK_ONLY]), up, registry=registry()) as gw:
        completion = await gw.client.chat.completions.create(
            model="router-r1", messages=QUESTION, extra_body={"router": {"max_upstream_calls": 1}}
        )
        tripped = await metric_value(
            gw, 'router_r1_caps_tripped_total{cap="call_cap",profile="router-r1"}'
        )
    router = router_of(completion)
    assert router["outcome"] == "no_answer"
    assert router["fallback"]["status"] == "call_cap"
    assert router["steps"][-1]["upstream_status"] == "call_cap"
    assert up.calls_to(FALLBACK_ID) == []  # the route used the one call allowed
    assert len(up.calls_to(QWEN_ID)) == 1
    assert tripped == 1.0


def _sse(lines: list[str]) -> list[dict[str, Any]]:
    return [
        json.loads(line[len("data: ") :])
        for line in lines
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


async def _stream(gw: Any) -> tuple[Any, list[dict[str, Any]]]:
    body = {"model": "router-r1", "messages": QUESTION, "stream": True}
    async with gw.http.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line async for line in response.aiter_lines()]
    return response, _sse(lines)


def _content(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


async def test_a_streamed_no_answer_streams_the_fallback_after_the_reasoning(
    gateway: GatewayFactory,
) -> None:
    async with gateway(FakeVLLM([THINK_ONLY, THINK_ONLY]), upstream(), registry=registry()) as gw:
        response, chunks = await _stream(gw)
    assert response.status_code == 200
    deltas = [c["choices"][0]["delta"] if c["choices"] else {} for c in chunks]
    reasoning = [i for i, delta in enumerate(deltas) if delta.get("reasoning")]
    content = [i for i, delta in enumerate(deltas) if delta.get("content")]
    assert reasoning
    assert content
    assert max(reasoning) < min(content)  # the answer comes after the policy's reasoning
    assert _content(chunks).strip() == FALLBACK_REPLY
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["router"]["outcome"] == "fallback"
    assert last["router"]["fallback"]["reason"] == "no_answer"
    assert last["router"]["steps"][-1]["action"] == "fallback"


async def test_a_streamed_request_whose_engine_is_down_streams_the_fallback(
    gateway: GatewayFactory,
) -> None:
    engine = FakeVLLM([ScriptedTurn(status=503)])
    async with gateway(engine, upstream(), registry=registry()) as gw:
        response, chunks = await _stream(gw)
    assert response.status_code == 200
    assert response.headers["x-router-fallback"] == FALLBACK
    assert _content(chunks).strip() == FALLBACK_REPLY
    assert chunks[-1]["router"]["outcome"] == "fallback"
    assert chunks[-1]["router"]["fallback"]["reason"] == "engine_unavailable"


async def test_a_streamed_request_without_fallback_still_fails_with_the_engine(
    gateway: GatewayFactory,
) -> None:
    engine = FakeVLLM([ScriptedTurn(status=503)])
    async with gateway(engine, upstream(), registry=registry(on=["no_answer"])) as gw:
        response, _ = await _stream(gw)
    assert response.status_code == 503
