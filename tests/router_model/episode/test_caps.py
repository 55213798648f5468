"""Per-request caps: the rules, how a client lowers them, and the loop not executing a route."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from router_model.episode import EpisodeRunner, PolicyOverrides, RouteFinished, resolve_settings
from router_model.episode.caps import (
    RequestCaps,
    worst_case_call_usd,
    worst_case_prompt_tokens,
)
from router_model.protocol.observation import format_observation
from router_model.protocol.prompt import render_upstream_prompt
from router_model.registry import Pricing
from server.engines import VLLMEngine
from tests.fakes.registry import default_registry, router_profile
from tests.fakes.route_caller import FakeRouteCaller
from tests.fakes.vllm_server import FakeVLLM

QWEN = "Qwen2.5-7B-Instruct"
LLAMA70 = "LLaMA-3.1-70B-Instruct"
QUERY_1, QUERY_2 = "capital of France", "river in Paris"
TURNS = [
    f"<think>a</think>\n<search> {QWEN}:{QUERY_1} </search>",
    f"<think>b</think>\n<search> {LLAMA70}:{QUERY_2} </search>",
    "<think>c</think>\n<answer> Paris </answer>",
]


def test_no_caps_refuse_nothing() -> None:
    assert RequestCaps().refusal(spent_usd=1e9, calls_made=10**6, worst_case_usd=1e9) is None


def test_the_call_cap_counts_the_call_about_to_be_made() -> None:
    caps = RequestCaps(max_upstream_calls=2)
    assert caps.refusal(spent_usd=0, calls_made=1, worst_case_usd=0) is None
    assert caps.refusal(spent_usd=0, calls_made=2, worst_case_usd=0) == "call_cap"
    assert RequestCaps(max_upstream_calls=0).refusal(
        spent_usd=0, calls_made=0, worst_case_usd=0
    ) == ("call_cap")


def test_the_cost_cap_takes_the_worst_case_of_the_call() -> None:
    caps = RequestCaps(max_cost_usd=0.01)
    assert caps.refusal(spent_usd=0.004, calls_made=0, worst_case_usd=0.006) is None  # exactly
    assert caps.refusal(spent_usd=0.004, calls_made=0, worst_case_usd=0.0061) == "cost_cap"
    both = RequestCaps(max_cost_usd=0.0, max_upstream_calls=0)
    assert both.refusal(spent_usd=0, calls_made=0, worst_case_usd=1) == "call_cap"


def test_a_client_can_only_lower_a_cap() -> None:
    profile = RequestCaps(max_cost_usd=0.05, max_upstream_calls=4)
    assert profile.lowered(0.01, 2) == RequestCaps(0.01, 2)
    assert profile.lowered(1.0, 10) == profile
    assert profile.lowered(None, None) == profile
    assert profile.lowered(-1.0, -1) == profile
    assert RequestCaps().lowered(0.5, 3) == RequestCaps(0.5, 3)


def test_the_worst_case_is_above_the_usual_estimate() -> None:
    prompt = "x" * 300
    assert worst_case_prompt_tokens(prompt) == 100 + 16
    pricing = Pricing(input_per_1m=1.0, output_per_1m=2.0)
    assert worst_case_call_usd(pricing, prompt, 50) == pytest.approx((116 + 100) / 1e6)


def test_resolve_settings_combines_profile_and_client_caps() -> None:
    registry = default_registry()
    profile = router_profile(registry, max_cost_usd=0.02, max_upstream_calls=3)
    caps = resolve_settings(profile, PolicyOverrides(max_cost_usd=0.5, max_upstream_calls=1)).caps
    assert caps == RequestCaps(max_cost_usd=0.02, max_upstream_calls=1)
    assert resolve_settings(router_profile(registry), PolicyOverrides()).caps == RequestCaps()


Run = Callable[..., Any]


@pytest.fixture
async def play() -> AsyncIterator[Run]:
    async with AsyncExitStack() as stack:

        async def run(overrides: PolicyOverrides | None = None, **limits: Any) -> Any:
            fake = FakeVLLM(TURNS)
            client = await stack.enter_async_context(fake.client())
            engine = VLLMEngine(client, base_url=fake.base_url, model=fake.model)
            caller = FakeRouteCaller({QWEN: "It is Paris.", LLAMA70: "The Seine."})
            registry = default_registry()
            runner = EpisodeRunner(engine, caller, registry, router_profile(registry, **limits))
            events = [event async for event in runner.run("where", overrides)]
            return caller, events, events[-1].result

        yield run


async def test_a_route_past_the_call_cap_is_not_executed_and_the_policy_gets_none(
    play: Run,
) -> None:
    caller, events, result = await play(max_upstream_calls=1)
    assert [call.model for call in caller.calls] == [QWEN]
    first, second, _ = result.trace.steps
    assert (first.upstream_status, second.upstream_status) == ("ok", "call_cap")
    assert (second.model, second.upstream_attempts, second.upstream_cost_usd) == (LLAMA70, 0, 0.0)
    assert second.upstream_started_ms is None
    finished = [event for event in events if isinstance(event, RouteFinished)]
    assert finished[1].observation == format_observation(None)
    assert result.answer_text == "Paris"  # the episode goes on
    assert result.trace.totals.models == [QWEN]
    assert result.trace.totals.upstream_calls == 1
    assert result.trace.totals.routes == 2


async def test_a_route_whose_worst_case_passes_the_cost_cap_is_not_executed(play: Run) -> None:
    registry = default_registry()
    qwen, llama = registry.model(QWEN), registry.model(LLAMA70)
    assert qwen is not None
    assert llama is not None
    first_worst = worst_case_call_usd(qwen.pricing, render_upstream_prompt(QUERY_1), 512)
    second_worst = worst_case_call_usd(llama.pricing, render_upstream_prompt(QUERY_2), 512)
    cap = first_worst + second_worst / 2  # room for the first call, not for the second
    caller, _, result = await play(PolicyOverrides(max_cost_usd=cap))
    assert [call.model for call in caller.calls] == [QWEN]
    assert [step.upstream_status for step in result.trace.steps[:2]] == ["ok", "cost_cap"]
    assert result.trace.totals.cost_usd <= cap


async def test_within_the_caps_every_route_runs(play: Run) -> None:
    caller, _, result = await play(max_cost_usd=1.0, max_upstream_calls=2)
    assert [call.model for call in caller.calls] == [QWEN, LLAMA70]
    assert result.trace.totals.upstream_calls == 2
