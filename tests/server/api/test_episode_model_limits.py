"""Router episodes against a model's enforced limits: a refused route is not executed, its step
says why, and the policy sees the failed call's ``None`` observation."""

from __future__ import annotations

from typing import Any

from router_model.registry import ModelLimits, Registry
from tests.fakes.registry import default_registry
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.api.conftest import GatewayFactory

QWEN, QWEN_ID = "Qwen2.5-7B-Instruct", "qwen/qwen2.5-7b-instruct"
QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace?"}]
ROUTE = "<think>Ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote war and peace </search>"
ROUTE_AGAIN = "<think>Again.</think>\n<search> Qwen2.5-7B-Instruct:and in which year </search>"
ANSWER = "<think>Done.</think>\n<answer> Leo Tolstoy </answer>"


def limited(**limits: Any) -> Registry:
    registry = default_registry()
    models = tuple(
        m.model_copy(update={"limits": ModelLimits(**limits)}) if m.name == QWEN else m
        for m in registry.models
    )
    return Registry(registry.spec.model_copy(update={"models": models}))


async def test_a_route_over_the_models_minute_limit_is_not_executed(
    gateway: GatewayFactory,
) -> None:
    upstream = FakeUpstream({QWEN_ID: UpstreamScript(reply="Tolstoy.")})
    engine = FakeVLLM([ROUTE, ROUTE_AGAIN, ANSWER])
    async with gateway(engine, upstream, registry=limited(requests_per_minute=1)) as gw:
        completion = await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
    steps = completion.model_extra["router"]["steps"]
    assert [s["upstream_status"] for s in steps[:2]] == ["ok", "rate_limited"]
    refused = steps[1]
    assert (refused["upstream_attempts"], refused["upstream_cost_usd"]) == (0, 0.0)
    assert refused["reply_excerpt"] is None
    assert "per-minute" in refused["upstream_error"]
    assert steps[0]["deployment"] == "nim"
    assert len(upstream.calls_to(QWEN_ID)) == 1
    # the policy was shown the failed call's observation (the spec's None)
    assert "<information>None</information>" in engine.completions[-1].prompt_text


async def test_a_route_too_long_for_the_models_context_is_not_executed(
    gateway: GatewayFactory,
) -> None:
    upstream = FakeUpstream()
    engine = FakeVLLM([ROUTE, ANSWER])
    async with gateway(engine, upstream, registry=limited(context_tokens=64)) as gw:
        completion = await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
    step = completion.model_extra["router"]["steps"][0]
    assert (step["upstream_status"], step["upstream_attempts"]) == ("context_too_long", 0)
    assert not upstream.calls
