"""Full Router-R1 episodes through the gateway against real llama-server processes.

Policy: SmolLM2-135M-Instruct with the action grammar (the plumbing profile,
``grammar: true``); pool: Qwen2.5-Coder-1.5B-Instruct and SmolLM2 behind llama-server's chat
endpoint. One batch of episodes (four at a time) is
played once per module; the tests check different properties of what it recorded: every
policy turn is a well-formed action, routes reach the real upstream servers, token counts
and costs add up to what the servers reported, and the token ids the engine received are
the training layout built piece by piece (spec section 1)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

from local_stack.stack import PLUMBING_PROFILE
from router_model.protocol.prompt import fill_policy_prompt, render_upstream_prompt
from router_model.protocol.turn import ActionKind, cut_turn, parse_action
from router_model.registry import Registry
from tests.integration.conftest import (
    GENERATE_PATH,
    QWEN,
    SMOLLM2,
    LlamaStack,
    live_gateway,
    policy_engine,
    with_limits,
)
from tests.integration.fidelity import (
    FidelityReport,
    LayoutLimits,
    check_training_layout,
    episodes_from_recording,
    upstream_model_resolver,
)
from tests.integration.recording import EPISODE, RecordingTransport

# the module's batch of episodes is played in the first test's setup
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

QUESTIONS = [
    "Who wrote the novel War and Peace?",
    "What is the capital city of Australia?",
    "Which planet is known as the red planet?",
    "What is the largest ocean on Earth?",
    "Who painted the Mona Lisa?",
    "What is the boiling point of water in Celsius?",
    "Which element has the chemical symbol O?",
    "How many continents are there?",
    "What language is spoken in Brazil?",
    "Who was the first president of the United States?",
]
CONCURRENCY = 4
# max_turn_tokens is above what the grammar allows (about 500 characters), so no turn is cut
LIMITS: dict[str, Any] = {
    "max_routes": 2,
    "upstream_max_tokens": 48,
    "max_turn_tokens": 700,
    "deadline_s": 900,  # no loaded CI machine reaches it
}


@dataclass
class Batch:
    registry: Registry
    completions: list[Any]
    seconds: list[float]
    engine_calls: RecordingTransport
    upstream_calls: RecordingTransport
    layout: FidelityReport

    @property
    def routers(self) -> list[dict[str, Any]]:
        return [c.model_extra["router"] for c in self.completions]


async def _play(stack: LlamaStack) -> Batch:
    registry = with_limits(stack, **LIMITS)
    profile = registry.profile(PLUMBING_PROFILE)
    assert profile is not None
    template = registry.policy_template(profile)
    async with live_gateway(registry) as gw:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def episode(index: int, question: str) -> tuple[Any, float]:
            EPISODE.set(str(index))  # this task's exchanges belong to episode ``index``
            async with slots:
                start = time.perf_counter()
                completion = await gw.client.chat.completions.create(
                    model=PLUMBING_PROFILE,
                    messages=[{"role": "user", "content": question}],
                    seed=index,
                )
                return completion, time.perf_counter() - start

        played = await asyncio.gather(*(episode(i, q) for i, q in enumerate(QUESTIONS)))
    async with policy_engine(stack) as engine:
        chat_ids = {
            str(i): await engine.chat_prompt_ids(fill_policy_prompt(template, q))
            for i, q in enumerate(QUESTIONS)
        }
        episodes = episodes_from_recording(
            gw.engine_calls.exchanges,
            gw.upstream_calls.exchanges,
            chat_ids,
            generate_path=GENERATE_PATH,
        )
        layout = await check_training_layout(
            episodes,
            engine.tokenize,
            upstream_model_resolver(registry, profile),
            LayoutLimits.of(profile.limits),
        )
    return Batch(
        registry,
        [c for c, _ in played],
        [s for _, s in played],
        gw.engine_calls,
        gw.upstream_calls,
        layout,
    )


@pytest.fixture(scope="module")
def batch(llama_stack: LlamaStack) -> Batch:
    return asyncio.run(_play(llama_stack))


def test_all_concurrent_episodes_complete(batch: Batch) -> None:
    assert len(batch.completions) == len(QUESTIONS)
    for router in batch.routers:
        assert router["outcome"] in ("answer", "no_answer"), router
        assert 1 <= len(router["steps"]) <= LIMITS["max_routes"] + 1
    answered = [c for c in batch.completions if c.model_extra["router"]["outcome"] == "answer"]
    assert all(c.choices[0].message.content.strip() for c in answered)


def test_every_policy_turn_is_a_well_formed_action(batch: Batch) -> None:
    """What the action grammar guarantees for every text the model could sample: a think
    block, then exactly one action tag closing the turn, and a search names a pool model. The
    grammar cannot keep the prompt's placeholder words (``LLM-name``...) out of a free-text
    query, so such a search is possible; the loop must then treat it as the spec's invalid
    route (an ``invalid`` step, no upstream call), which is what is asserted for it."""
    names = {m.name for m in batch.registry.pool(batch.registry.profile(PLUMBING_PROFILE))}  # type: ignore[arg-type]
    turns = batch.engine_calls.to(GENERATE_PATH)
    assert len(turns) >= len(QUESTIONS)
    for exchange in turns:
        assert exchange.request["grammar"].startswith("root ::=")
        text = exchange.completion_text()
        assert cut_turn(text) == text  # the turn ends at its action's closing tag
        assert text.lstrip().startswith("<think>"), text
        action = parse_action(text)
        assert action.kind in (
            ActionKind.SEARCH,
            ActionKind.ANSWER,
            ActionKind.INVALID_PLACEHOLDER,
        ), text
        if action.kind is not ActionKind.ANSWER:
            assert action.content.split(":", 1)[0].strip() in names, text
    for router in batch.routers:
        for step in router["steps"]:
            assert step["action"] in ("route", "answer", "invalid"), router
            if step["action"] == "invalid":
                assert step["upstream_status"] is None, step
                assert step["upstream_attempts"] == 0, step


def test_routes_reach_the_real_upstream_models(batch: Batch, llama_stack: LlamaStack) -> None:
    routes = [s for r in batch.routers for s in r["steps"] if s["upstream_status"] == "ok"]
    assert routes, "the policy never routed in the whole batch"
    calls = batch.upstream_calls.to("/v1/chat/completions")
    assert len(calls) == len(routes)
    ports = {llama_stack.port("qwen"): QWEN, llama_stack.port("smollm2"): SMOLLM2}
    for call in calls:
        assert call.status == 200
        assert call.url.port in ports
        model = batch.registry.model(ports[call.url.port])
        assert model is not None
        assert call.request["model"] == model.upstream_model  # the right model's server
        (message,) = call.request["messages"]
        assert message["role"] == "user"
        assert call.request["max_tokens"] == LIMITS["upstream_max_tokens"]
    queries = {render_upstream_prompt(s["query"]) for s in routes}
    assert queries == {c.request["messages"][0]["content"] for c in calls}
    for step in routes:
        assert step["reply_excerpt"], step
        assert step["upstream_completion_tokens"] > 0


def test_token_counts_and_costs_add_up(batch: Batch) -> None:
    registry = batch.registry
    profile = registry.profile(PLUMBING_PROFILE)
    assert profile is not None
    policy_price = profile.policy.pricing
    engine_usage = [e.completion_usage() for e in batch.engine_calls.to(GENERATE_PATH)]
    upstream_usage = [c.json()["usage"] for c in batch.upstream_calls.to("/v1/chat/completions")]
    steps = [s for r in batch.routers for s in r["steps"]]
    # the trace's token counts are the servers' own figures
    assert sum(s["policy_prompt_tokens"] for s in steps) == sum(
        u["prompt_tokens"] for u in engine_usage
    )
    assert sum(s["policy_completion_tokens"] for s in steps) == sum(
        u["completion_tokens"] for u in engine_usage
    )
    assert sum(s["upstream_prompt_tokens"] for s in steps) == sum(
        u["prompt_tokens"] for u in upstream_usage
    )
    assert sum(s["upstream_completion_tokens"] for s in steps) == sum(
        u["completion_tokens"] for u in upstream_usage
    )
    for completion in batch.completions:
        router = completion.model_extra["router"]
        expected_total = 0.0
        for step in router["steps"]:
            cost = policy_price.cost_usd(
                step["policy_prompt_tokens"], step["policy_completion_tokens"]
            )
            if step["model"] is not None and step["upstream_status"] == "ok":
                model = registry.model(step["model"])
                assert model is not None
                cost += model.pricing.cost_usd(
                    step["upstream_prompt_tokens"], step["upstream_completion_tokens"]
                )
            assert step["cost_usd"] == pytest.approx(cost, rel=1e-9, abs=1e-15)
            expected_total += cost
        assert router["totals"]["cost_usd"] == pytest.approx(expected_total, rel=1e-9)
        usage = completion.usage
        assert usage.prompt_tokens == sum(
            s["policy_prompt_tokens"] + s["upstream_prompt_tokens"] for s in router["steps"]
        )
        assert usage.completion_tokens == sum(
            s["policy_completion_tokens"] + s["upstream_completion_tokens"] for s in router["steps"]
        )


def test_engine_saw_the_training_layout_token_by_token(batch: Batch) -> None:
    """Turn k's prompt ids = chat-template ids + the ids of every earlier (cut) turn and its
    observation, each tokenized on its own (by an independent tokenize call here); each
    observation is the reply of its own upstream call (:mod:`tests.integration.fidelity`)."""
    layout = batch.layout
    assert layout.ok, layout.details()
    assert layout.episodes == len(QUESTIONS)
    assert layout.turns == len(batch.engine_calls.to(GENERATE_PATH))
    assert layout.multi_turn_episodes > 0, "no episode had more than one turn"


async def test_streaming_episode(llama_stack: LlamaStack) -> None:
    registry = with_limits(llama_stack, **{**LIMITS, "max_routes": 1})
    async with live_gateway(registry) as gw:
        stream = await gw.client.chat.completions.create(
            model=PLUMBING_PROFILE,
            messages=[{"role": "user", "content": "Who discovered penicillin?"}],
            stream=True,
            stream_options={"include_usage": True},  # the usage chunk, as OpenAI sends it
            seed=11,
        )
        chunks = [chunk async for chunk in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    content = "".join(d.content or "" for d in deltas)
    assert len(deltas) > 5  # streamed as it was generated, not in one piece
    assert reasoning.lstrip().startswith("<think>")
    last = chunks[-1]
    router = last.model_extra["router"]
    assert router["outcome"] in ("answer", "no_answer")
    if router["outcome"] == "answer":
        assert content.strip()
    assert last.usage is not None
    assert (
        last.usage.completion_tokens
        == router["totals"]["policy_completion_tokens"]
        + (router["totals"]["upstream_completion_tokens"])
    )
    turns = gw.engine_calls.to(GENERATE_PATH)
    assert turns
    assert all(t.request["stream"] for t in turns)
    assert (
        sum(t.completion_usage()["completion_tokens"] for t in turns)
        == (router["totals"]["policy_completion_tokens"])
    )
