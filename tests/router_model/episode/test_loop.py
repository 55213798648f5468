"""Deterministic Router-R1 episodes against the fake vLLM server and a fake route caller."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from router_model.episode import (
    AnswerDelta,
    EpisodeEvent,
    EpisodeFinished,
    EpisodeResult,
    EpisodeRunner,
    PolicyOverrides,
    ReasoningDelta,
    RouteFinished,
    RouteStarted,
    resolve_settings,
)
from router_model.episode.route import UpstreamReply
from router_model.protocol.observation import format_observation
from router_model.protocol.prompt import fill_policy_prompt, render_upstream_prompt
from router_model.registry import Registry, RouterProfile
from server.engines import EngineUnavailable, VLLMEngine
from tests.fakes.registry import default_registry, router_profile
from tests.fakes.route_caller import Failure, FakeRouteCaller, Reply
from tests.fakes.vllm_server import FakeVLLM, Script, ScriptedTurn

QWEN = "Qwen2.5-7B-Instruct"
LLAMA70 = "LLaMA-3.1-70B-Instruct"
QUESTION = "what is the capital of france"


def route(model: str, query: str) -> str:
    return f"<think>I should ask about {query}.</think>\n<search> {model}: {query} </search>"


def answer(text: str) -> str:
    return f"<think>Now I know.</think>\n<answer> {text} </answer>"


@dataclass
class Harness:
    fake: FakeVLLM
    caller: FakeRouteCaller
    runner: EpisodeRunner
    registry: Registry
    profile: RouterProfile

    def tok(self, text: str) -> list[int]:
        return self.fake.tokenizer.encode(text)

    def chat_ids(self, question: str = QUESTION) -> list[int]:
        template = self.registry.policy_template(self.profile)
        return self.fake.chat_ids(fill_policy_prompt(template, question))

    async def events(
        self, question: str = QUESTION, overrides: PolicyOverrides | None = None
    ) -> list[EpisodeEvent]:
        return [event async for event in self.runner.run(question, overrides)]


Make = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def registry() -> Registry:
    return default_registry()


@pytest.fixture
def make(stack: AsyncExitStack, registry: Registry) -> Make:
    async def build(
        script: Script,
        replies: dict[str, Reply] | None = None,
        *,
        caller_delay: float = 0.0,
        policy_pricing: dict[str, float] | None = None,
        **limits: Any,
    ) -> Harness:
        fake = FakeVLLM(script)
        client = await stack.enter_async_context(fake.client())
        engine = VLLMEngine(client, base_url=fake.base_url, model=fake.model)
        caller = FakeRouteCaller(replies or {}, delay_s=caller_delay)
        profile = router_profile(registry, **limits)
        if policy_pricing is not None:
            policy = profile.policy.model_copy(
                update={"pricing": profile.policy.pricing.model_copy(update=policy_pricing)}
            )
            profile = profile.model_copy(update={"policy": policy})
        runner = EpisodeRunner(engine, caller, registry, profile)
        return Harness(fake, caller, runner, registry, profile)

    return build


def _result(events: Sequence[EpisodeEvent]) -> EpisodeResult:
    assert isinstance(events[-1], EpisodeFinished)
    assert sum(isinstance(e, EpisodeFinished) for e in events) == 1
    return events[-1].result


def _text(events: Sequence[EpisodeEvent], kind: type[ReasoningDelta | AnswerDelta]) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


async def test_single_route_then_answer(make: Make) -> None:
    t1, t2 = route(QWEN, "capital of France"), answer("Paris")
    h = await make([t1, t2], {QWEN: "The capital of France is Paris."})
    events = await h.events()
    result = _result(events)

    assert (result.answer_text, result.outcome, result.finish_reason) == ("Paris", "answer", "stop")
    assert [
        type(e).__name__ for e in events if not isinstance(e, ReasoningDelta | AnswerDelta)
    ] == [
        "RouteStarted",
        "RouteFinished",
        "EpisodeFinished",
    ]
    started = next(e for e in events if isinstance(e, RouteStarted))
    assert (started.index, started.written_model, started.model) == (0, QWEN, QWEN)
    # reasoning is every character the policy wrote (the answer block too); content the answer
    assert _text(events, ReasoningDelta) == t1 + answer("Paris")
    assert _text(events, AnswerDelta) == "Paris"

    (call,) = h.caller.calls
    assert call.model == QWEN
    assert call.prompt == render_upstream_prompt(" capital of France")
    assert call.max_tokens == 512

    first, last = result.trace.steps
    assert (first.action, first.model, first.written_model, first.query) == (
        "route",
        QWEN,
        QWEN,
        " capital of France",
    )
    assert first.think == "I should ask about capital of France."
    assert (first.upstream_status, first.reply_excerpt) == ("ok", "The capital of France is Paris.")
    assert (last.action, last.think, last.model) == ("answer", "Now I know.", None)
    assert result.trace.totals.routes == 1
    assert result.trace.totals.models == [QWEN]
    assert result.trace.profile == "router-r1"
    assert result.trace.policy_model == h.profile.policy.model
    finished = next(e for e in events if isinstance(e, RouteFinished))
    assert finished.step == first


async def test_token_fidelity_across_turns(make: Make) -> None:
    """The engine receives chat ids + ids(T1) + ids(obs1) + ..., each piece tokenized alone."""
    turns = [route(QWEN, "capital of France"), route(LLAMA70, "river in Paris"), answer("Seine")]
    replies = {QWEN: "Paris.", LLAMA70: "  The Seine flows through Paris.  "}
    h = await make(turns, replies)
    result = await h.runner.run_to_end(QUESTION)

    assert result.answer_text == "Seine"
    assert [c.model for c in h.caller.calls] == [QWEN, LLAMA70]
    assert len(h.fake.completions) == 3
    observations = [format_observation("Paris."), format_observation(replies[LLAMA70])]
    assert observations[1] == "\n\n<information>The Seine flows through Paris.</information>\n\n"
    expected = h.chat_ids()
    for k, record in enumerate(h.fake.completions):
        assert record.prompt_ids == expected, f"turn {k + 1}"
        if k < 2:
            expected = expected + h.tok(turns[k]) + h.tok(observations[k])
    # separate tokenization is not the same as re-tokenizing the joined text
    last = h.fake.completions[2]
    assert last.prompt_ids != h.tok(last.prompt_text)

    context = result.context
    assert context.prompt_ids == h.chat_ids()
    assert context.response_ids == expected[len(h.chat_ids()) :] + h.tok(turns[2])
    assert (
        context.response_text == turns[0] + observations[0] + turns[1] + observations[1] + turns[2]
    )
    mask = context.response_mask
    n1, o1 = len(h.tok(turns[0])), len(h.tok(observations[0]))
    assert mask[:n1] == [1] * n1
    assert mask[n1 : n1 + o1] == [0] * o1
    assert sum(1 - m for m in mask) == o1 + len(h.tok(observations[1]))


async def test_turns_are_cut_at_the_first_action(make: Make) -> None:
    """Text after the closing tag (a model ignoring stop strings) never enters the context."""
    cut = route(QWEN, "x")
    turn = ScriptedTurn(cut + " <answer> no </answer> more", ignore_stop=True)
    h = await make([turn, answer("y")], {QWEN: "r"})
    events = await h.events()
    result = _result(events)
    assert result.context.turn_texts[0] == cut
    assert _text(events, ReasoningDelta).startswith(cut + "<think>")
    assert result.answer_text == _text(events, AnswerDelta) == "y"
    assert h.fake.completions[1].prompt_ids == h.chat_ids() + h.tok(cut) + h.tok(
        format_observation("r")
    )


async def test_unknown_model_gets_none_without_a_call(make: Make) -> None:
    h = await make([route("GPT-9", "anything"), answer("z")])
    events = await h.events()
    result = _result(events)
    assert h.caller.calls == []
    step = result.trace.steps[0]
    assert (step.action, step.written_model, step.model, step.upstream_status) == (
        "route",
        "GPT-9",
        None,
        "unknown_model",
    )
    started = next(e for e in events if isinstance(e, RouteStarted))
    assert started.model is None
    none_obs = "\n\n<information>None</information>\n\n"
    assert result.context.pieces[1].text == none_obs
    assert h.fake.completions[1].prompt_ids[-len(h.tok(none_obs)) :] == h.tok(none_obs)
    assert result.trace.totals.routes == 1
    assert result.trace.totals.models == []


async def test_loose_names_resolve_through_the_registry(make: Make) -> None:
    h = await make([route("qwen 7b", "q"), answer("a")], {QWEN: "r"})
    result = await h.runner.run_to_end(QUESTION)
    assert [c.model for c in h.caller.calls] == [QWEN]
    assert result.trace.steps[0].written_model == "qwen 7b"


async def test_upstream_failure_gets_none(make: Make) -> None:
    h = await make([route(QWEN, "q"), answer("a")], {QWEN: Failure("timeout", "read timeout")})
    result = await h.runner.run_to_end(QUESTION)
    step = result.trace.steps[0]
    assert (step.upstream_status, step.upstream_error, step.reply_excerpt) == (
        "timeout",
        "read timeout",
        None,
    )
    assert result.context.pieces[1].text == format_observation(None)
    assert result.answer_text == "a"


async def test_invalid_and_missing_actions_use_up_turns(make: Make) -> None:
    invalid = "<think>hmm</think>\n<search> no colon here </search>"
    missing = "<think>I will just think.</think>"
    h = await make([invalid, missing, answer("x")])
    result = await h.runner.run_to_end(QUESTION)
    assert [s.action for s in result.trace.steps] == ["invalid", "none", "answer"]
    assert h.caller.calls == []
    chat = h.chat_ids()
    prompts = [c.prompt_ids for c in h.fake.completions]
    assert prompts[1] == chat + h.tok(invalid)
    assert prompts[2] == chat + h.tok(invalid) + h.tok(missing)
    assert [p.kind for p in result.context.pieces] == ["turn", "turn", "turn"]
    # the missing-action turn ended with EOS: special tokens never enter the context
    assert h.fake.completions[1].body["skip_special_tokens"] is True
    assert not set(result.context.response_ids) & h.fake.tokenizer.special_ids
    assert result.trace.totals.routes == 0


async def test_answer_without_routes(make: Make) -> None:
    h = await make([answer("42")])
    events = await h.events()
    result = _result(events)
    assert result.answer_text == "42"
    assert len(h.fake.completions) == 1
    assert not any(isinstance(e, RouteStarted) for e in events)
    assert result.trace.totals.routes == 0
    assert [s.action for s in result.trace.steps] == ["answer"]


async def test_max_routes_then_a_final_turn_whose_route_is_not_executed(make: Make) -> None:
    turns = [route(QWEN, f"q{i}") for i in range(5)]
    h = await make(turns, {QWEN: "r"})
    events = await h.events()
    result = _result(events)
    assert len(h.fake.completions) == 5
    assert len(h.caller.calls) == 4
    assert sum(isinstance(e, RouteStarted) for e in events) == 4
    assert (result.outcome, result.answer_text, result.finish_reason) == ("no_answer", "", "length")
    final = result.trace.steps[4]
    assert (final.action, final.model, final.upstream_status) == ("route", QWEN, "not_executed")
    assert result.trace.totals.routes == 4
    assert [p.kind for p in result.context.pieces][-2:] == ["observation", "turn"]


async def test_max_routes_zero_is_one_final_turn(make: Make) -> None:
    h = await make([route(QWEN, "q")], max_routes=0)
    result = await h.runner.run_to_end(QUESTION)
    assert h.caller.calls == []
    assert result.trace.steps[0].upstream_status == "not_executed"


async def test_answer_inside_an_upstream_reply_is_not_the_answer(make: Make) -> None:
    h = await make(
        [route(QWEN, "q"), "<think>The information answers it.</think>"],
        {QWEN: "<answer>Berlin</answer>"},
        max_routes=1,
    )
    events = await h.events()
    result = _result(events)
    assert (result.outcome, result.answer_text) == ("no_answer", "")
    assert _text(events, AnswerDelta) == ""
    observation = result.context.pieces[1].text
    assert "<answer>" not in observation
    assert "Berlin" in observation
    assert result.trace.steps[0].reply_excerpt == "<answer>Berlin</answer>"


async def test_observation_is_cut_to_its_token_cap(make: Make) -> None:
    reply = " ".join(f"w{i}" for i in range(50))
    h = await make([route(QWEN, "q"), answer("a")], {QWEN: reply}, max_observation_tokens=8)
    result = await h.runner.run_to_end(QUESTION)
    piece = result.context.pieces[1]
    full = h.tok(format_observation(reply))
    assert piece.truncated
    assert list(piece.ids) == full[:8]
    assert piece.text == h.fake.tokenizer.decode(full[:8])
    assert h.fake.completions[1].prompt_ids[-8:] == full[:8]


async def test_context_is_left_truncated(make: Make) -> None:
    h = await make([route(QWEN, "q"), answer("a")], {QWEN: "r"}, max_context_tokens=40)
    result = await h.runner.run_to_end(QUESTION)
    full = h.chat_ids() + h.tok(route(QWEN, "q")) + h.tok(format_observation("r"))
    assert h.fake.completions[0].prompt_ids == h.chat_ids()[-40:]
    assert h.fake.completions[1].prompt_ids == full[-40:]
    assert result.context.prompt_ids == h.chat_ids()


async def test_deadline_during_generation(make: Make) -> None:
    h = await make([route(QWEN, "q"), ScriptedTurn(answer("late"), delay_s=30)], {QWEN: "r"})
    overrides = PolicyOverrides(timeout_s=0.5)
    start = time.perf_counter()
    events = await h.events(overrides=overrides)
    assert time.perf_counter() - start < 5
    result = _result(events)
    assert (result.outcome, result.answer_text, result.finish_reason) == (
        "deadline_exceeded",
        "",
        "length",
    )
    # the cut-off second turn is recorded: its prompt was sent (estimated, nothing arrived)
    route_step, cut = result.trace.steps
    assert (route_step.action, cut.action, cut.usage_estimated) == ("route", "none", True)
    assert cut.policy_prompt_tokens == len(h.fake.completions[1].prompt_ids)
    assert cut.policy_completion_tokens == 0
    assert result.trace.totals.total_ms >= 400


async def test_deadline_during_a_route(make: Make) -> None:
    h = await make([route(QWEN, "q"), answer("a")], {QWEN: "r"}, caller_delay=30, deadline_s=0.3)
    events = await h.events()
    result = _result(events)
    assert result.outcome == "deadline_exceeded"
    step = result.trace.steps[0]
    assert (step.action, step.model, step.upstream_status) == ("route", QWEN, "deadline_exceeded")
    # the request was sent: its prompt is counted (an estimate: no usage came back)
    assert step.usage_estimated
    assert step.upstream_prompt_tokens > 0
    assert step.upstream_cost_usd > 0
    finished = [e for e in events if isinstance(e, RouteFinished)]
    assert [e.step for e in finished] == [step]
    assert result.trace.totals.upstream_time_ms >= 250


async def test_client_overrides_are_clamped(make: Make) -> None:
    h = await make([answer("a")])
    overrides = PolicyOverrides(temperature=9.0, top_p=0.0, max_tokens=99_999, seed=3)
    await h.runner.run_to_end(QUESTION, overrides)
    body = h.fake.completions[0].body
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        2.0,
        0.001,
        1024,
        3,
    )
    defaults = resolve_settings(h.profile, PolicyOverrides())
    assert (defaults.params.temperature, defaults.params.top_p) == (1.0, 0.95)
    assert defaults.params.max_tokens == 1024
    assert defaults.deadline_s == h.profile.limits.deadline_s
    longer = resolve_settings(h.profile, PolicyOverrides(timeout_s=10_000, max_tokens=0))
    assert longer.deadline_s == h.profile.limits.deadline_s
    assert longer.params.max_tokens == 1
    stops = resolve_settings(h.profile, PolicyOverrides(stop=("a", "", "a", "b", "c", "d", "e")))
    assert stops.answer_stops == ("a", "b", "c", "d")


async def test_short_turn_budget_cuts_turns(make: Make) -> None:
    h = await make([answer("a long answer that will be cut")] * 5, max_routes=1)
    result = await h.runner.run_to_end(QUESTION, PolicyOverrides(max_tokens=4))
    assert h.fake.completions[0].body["max_tokens"] == 4
    assert [s.action for s in result.trace.steps] == ["none", "none"]
    assert all(s.policy_completion_tokens == 4 for s in result.trace.steps)
    assert result.outcome == "no_answer"


async def test_client_stop_cuts_the_answer_not_the_reasoning(make: Make) -> None:
    h = await make([answer("Paris, France")])
    events = await h.events(overrides=PolicyOverrides(stop=(",",)))
    result = _result(events)
    assert result.answer_text == _text(events, AnswerDelta) == "Paris"
    assert h.fake.completions[0].body["stop"] == ["</search>", "</answer>"]


async def test_costs_and_tokens_add_up(make: Make) -> None:
    turns = [route(QWEN, "capital of France"), route(LLAMA70, "river"), answer("Seine")]
    replies: dict[str, Reply] = {
        QWEN: "Paris is the capital.",
        LLAMA70: UpstreamReply(
            model=LLAMA70,
            status="cached",
            text="The Seine.",
            prompt_tokens=40,
            completion_tokens=3,
            cost_usd=0.0,
        ),
    }
    pricing = {"input_per_1m": 0.1, "output_per_1m": 0.4}
    h = await make(turns, replies, caller_delay=0.05, policy_pricing=pricing)
    result = await h.runner.run_to_end(QUESTION)
    steps, totals = result.trace.steps, result.trace.totals

    prompt_lens = [len(c.prompt_ids) for c in h.fake.completions]
    assert [s.policy_prompt_tokens for s in steps] == prompt_lens
    assert totals.policy_prompt_tokens == sum(prompt_lens)
    assert totals.policy_completion_tokens == sum(s.policy_completion_tokens for s in steps)
    for step, turn in zip(steps, turns, strict=True):
        assert step.policy_completion_tokens == len(h.tok(turn)) + (0 if turn.endswith(">") else 1)
    assert totals.upstream_prompt_tokens == sum(s.upstream_prompt_tokens for s in steps)
    assert totals.upstream_completion_tokens == 4 + 3
    assert steps[1].cached
    assert totals.models == [QWEN, LLAMA70]

    policy_cost = (totals.policy_prompt_tokens * 0.1 + totals.policy_completion_tokens * 0.4) / 1e6
    assert totals.policy_cost_usd == pytest.approx(policy_cost)
    qwen_price = h.registry.model(QWEN).pricing  # type: ignore[union-attr]
    upstream_cost = qwen_price.cost_usd(steps[0].upstream_prompt_tokens, 4)
    assert totals.upstream_cost_usd == pytest.approx(upstream_cost)
    assert totals.cost_usd == pytest.approx(policy_cost + upstream_cost)
    assert sum(s.cost_usd for s in steps) == pytest.approx(totals.cost_usd)
    assert totals.raw_cost == pytest.approx(4 * 0.3 + 3 * 0.88)

    assert result.usage.prompt_tokens == totals.policy_prompt_tokens + totals.upstream_prompt_tokens
    assert result.usage.completion_tokens == (
        totals.policy_completion_tokens + totals.upstream_completion_tokens
    )
    assert totals.upstream_time_ms >= 100
    assert sum(s.upstream_latency_ms for s in steps) == pytest.approx(totals.upstream_time_ms)
    assert totals.policy_time_ms > 0
    assert totals.overhead_ms == pytest.approx(
        totals.total_ms - totals.policy_time_ms - totals.upstream_time_ms
    )
    assert totals.overhead_ms >= 0


async def test_engine_failure_propagates(make: Make) -> None:
    h = await make([route(QWEN, "q"), ScriptedTurn(status=503)], {QWEN: "r"})
    with pytest.raises(EngineUnavailable):
        await h.runner.run_to_end(QUESTION)


async def test_cancellation_propagates_at_once(make: Make) -> None:
    h = await make([route(QWEN, "q"), answer("a")], {QWEN: "r"}, caller_delay=30)
    task = asyncio.create_task(h.runner.run_to_end(QUESTION))
    await asyncio.sleep(0.1)
    start = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - start < 1


async def test_consumer_may_stop_early(make: Make) -> None:
    h = await make([route(QWEN, "q"), answer("a")], {QWEN: "r"})
    events = h.runner.run(QUESTION)
    first = await anext(events)
    assert isinstance(first, ReasoningDelta)
    await events.aclose()
    assert h.caller.calls == []


async def test_runner_is_reusable_and_question_is_normalised(make: Make) -> None:
    h = await make([answer("a"), answer("b")])
    first = await h.runner.run_to_end("  capital of France ")
    second = await h.runner.run_to_end(QUESTION)
    assert (first.answer_text, second.answer_text) == ("a", "b")
    assert "capital of France?" in first.context.prompt_text
    assert first.trace.request_id != second.trace.request_id
    assert h.fake.completions[1].prompt_ids == h.chat_ids()


async def test_a_grammar_profiles_final_turn_may_only_answer(make: Make) -> None:
    """With a final-turn grammar (``grammar: true`` profiles get an answer-only one), the
    final turn is generated under it and every earlier turn under the profile's own."""
    h = await make([route(QWEN, "q0"), route(QWEN, "q1"), answer("Paris")], {QWEN: "r"})
    runner = EpisodeRunner(
        h.runner.engine,
        h.caller,
        h.registry,
        h.profile.model_copy(
            update={"limits": h.profile.limits.model_copy(update={"max_routes": 2})}
        ),
        grammar="root ::= every-turn",
        final_grammar="root ::= answer-only",
    )
    result = await runner.run_to_end(QUESTION)
    assert result.outcome == "answer"
    grammars = [c.body["structured_outputs"]["grammar"] for c in h.fake.completions]
    assert grammars == ["root ::= every-turn", "root ::= every-turn", "root ::= answer-only"]


async def test_an_episode_that_answers_early_never_uses_the_final_grammar(make: Make) -> None:
    h = await make([answer("Paris")], max_routes=2)
    runner = EpisodeRunner(
        h.runner.engine, h.caller, h.registry, h.profile, grammar="g", final_grammar="final"
    )
    await runner.run_to_end(QUESTION)
    assert [c.body["structured_outputs"]["grammar"] for c in h.fake.completions] == ["g"]
