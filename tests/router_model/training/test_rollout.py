"""The rollout core: the server's episode loop driven token-in/token-out."""

from __future__ import annotations

import pytest

from router_model.protocol.observation import format_observation
from router_model.protocol.prompt import fill_policy_prompt, render_upstream_prompt
from router_model.registry import Registry
from router_model.training.rollout import RolloutCore
from tests.fakes.registry import default_registry
from tests.fakes.route_caller import FakeRouteCaller
from tests.fakes.toy_tokenizer import EOS_ID
from tests.router_model.training.helpers import (
    LLAMA70,
    QWEN,
    ScriptedSampler,
    ToyRolloutTokenizer,
    answer,
    fake_logprob,
    route,
)

QUESTION = "what is the capital of france"
REPLY = "The capital of France is Paris."


@pytest.fixture
def registry() -> Registry:
    return default_registry()


def _core(registry: Registry, tok: ToyRolloutTokenizer, caller: FakeRouteCaller) -> RolloutCore:
    return RolloutCore.for_profile(registry, "router-r1", caller, tok)


async def test_trajectory_ids_mask_and_costs(registry: Registry) -> None:
    tok = ToyRolloutTokenizer()
    caller = FakeRouteCaller({QWEN: REPLY})
    t1, t2 = route(QWEN, "capital of France"), answer("Paris")
    sampler = ScriptedSampler(tok, [t1, t2])

    traj = await _core(registry, tok, caller).rollout(QUESTION, sampler)

    profile = registry.profile("router-r1")
    assert profile is not None
    template = registry.policy_template(profile)
    assert traj.prompt_ids == tok.chat_prompt_ids(fill_policy_prompt(template, QUESTION))
    observation = format_observation(REPLY)
    # each piece tokenized on its own and concatenated (never the joined string re-tokenized)
    pieces = [tok.encode(t1), tok.encode(observation), tok.encode(t2)]
    assert traj.response_ids == [i for p in pieces for i in p]
    assert traj.response_mask == [1] * len(pieces[0]) + [0] * len(pieces[1]) + [1] * len(pieces[2])
    assert traj.response_text == t1 + observation + t2
    # every inserted-information token is masked, and only those
    masked = [i for i, m in zip(traj.response_ids, traj.response_mask, strict=True) if m == 0]
    assert tok.decode(masked) == observation
    assert (traj.answer, traj.outcome, traj.routes, traj.num_turns) == ("Paris", "answer", 1, 4)
    # the second turn saw the first turn and the observation, after the prompt
    assert sampler.calls[1][0] == traj.prompt_ids + pieces[0] + pieces[1]
    assert [c.prompt for c in caller.calls] == [render_upstream_prompt("capital of France")]

    (call,) = traj.route_calls
    words = len(REPLY.split())
    assert (call.model, call.completion_tokens, call.usd_per_1m_output) == (QWEN, words, 0.3)
    assert traj.raw_cost == pytest.approx(words * 0.3)
    assert traj.upstream_cost_usd == pytest.approx(call.cost_usd)
    assert call.cost_usd > 0
    fields = traj.route_fields()
    assert fields["route_raw_cost"] == pytest.approx(words * 0.3)
    assert fields["route_models"] == [QWEN]


async def test_logprobs_line_up_with_the_sampled_turns(registry: Registry) -> None:
    tok = ToyRolloutTokenizer()
    t1, t2 = route(LLAMA70, "who"), answer("x")
    traj = await _core(registry, tok, FakeRouteCaller({LLAMA70: "someone"})).rollout(
        QUESTION, ScriptedSampler(tok, [t1, t2])
    )
    assert traj.response_logprobs is not None
    assert len(traj.response_logprobs) == len(traj.response_ids)
    n1, n2 = len(tok.encode(t1)), len(tok.encode(t2))
    expected_turn1 = [fake_logprob(i) for i in range(n1)]
    expected_turn2 = [fake_logprob(i) for i in range(n2)]
    obs = len(traj.response_ids) - n1 - n2
    assert traj.response_logprobs == expected_turn1 + [0.0] * obs + expected_turn2


async def test_eos_is_dropped_between_turns_and_logprobs_still_align(registry: Registry) -> None:
    tok = ToyRolloutTokenizer()
    wandering = "<think>hmm, no action this time</think>"  # ends with EOS, no action
    sampler = ScriptedSampler(tok, [wandering, answer("x")])
    traj = await _core(registry, tok, FakeRouteCaller()).rollout(QUESTION, sampler)
    assert EOS_ID not in traj.response_ids
    assert traj.response_mask == [1] * len(traj.response_ids)  # no route: no observation
    assert traj.response_logprobs is not None
    assert traj.answer == "x"
    assert traj.routes == 0
    assert traj.raw_cost == 0.0


async def test_turn_limit_and_unknown_model(registry: Registry) -> None:
    tok = ToyRolloutTokenizer()
    caller = FakeRouteCaller({QWEN: "r"})
    bad = route("GPT-9", "x")
    traj = await _core(registry, tok, caller).rollout(QUESTION, ScriptedSampler(tok, [bad]))
    # 4 executed routes (unknown name: None observation, no call), then one final turn
    assert traj.outcome == "no_answer"
    assert traj.routes == 4
    assert traj.route_calls == ()
    assert caller.calls == []
    assert traj.response_text.count(format_observation(None)) == 4
    assert traj.num_turns == 1 + 5 + 4


async def test_truncated_cuts_the_response_side(registry: Registry) -> None:
    tok = ToyRolloutTokenizer()
    traj = await _core(registry, tok, FakeRouteCaller({QWEN: REPLY})).rollout(
        QUESTION, ScriptedSampler(tok, [route(QWEN, "q"), answer("Paris")])
    )
    cut = traj.truncated(5)
    assert cut.response_ids == traj.response_ids[:5]
    assert cut.response_mask == traj.response_mask[:5]
    assert cut.response_logprobs is not None
    assert len(cut.response_logprobs) == 5
    assert cut.extra["response_truncated"] is True
    assert traj.truncated(10_000) is traj


async def test_rollout_many_keeps_order(registry: Registry) -> None:
    tok = ToyRolloutTokenizer()
    core = _core(registry, tok, FakeRouteCaller())
    questions = [f"question {i}" for i in range(5)]
    samplers = [ScriptedSampler(tok, [answer(str(i))]) for i in range(5)]
    trajs = await core.rollout_many(questions, samplers, concurrency=2)
    assert [t.answer for t in trajs] == [str(i) for i in range(5)]
    assert [t.question for t in trajs] == questions
    with pytest.raises(ValueError, match="one generator per question"):
        await core.rollout_many(questions, samplers[:1])


def test_unknown_profile_is_a_clear_error(registry: Registry) -> None:
    with pytest.raises(ValueError, match="no profile 'nope'"):
        RolloutCore.for_profile(registry, "nope", FakeRouteCaller(), ToyRolloutTokenizer())
