"""The token-fidelity check (:mod:`tests.integration.fidelity`) on recordings made by hand
and by the real episode loop against fakes: no real model needed.

The toy tokenizer is GPT-2-like, so a string tokenized on its own and the same string
tokenized inside a longer one can give other ids, as with SmolLM2 (`` \\n`` is one piece
at the end of a text, two before a word): a layout bug is visible in the ids."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AsyncExitStack

import httpx
import pytest

from router_model.episode import EpisodeRunner
from router_model.protocol.observation import format_observation
from router_model.protocol.prompt import fill_policy_prompt, render_upstream_prompt
from server.engines import VLLMEngine
from tests.fakes.registry import default_registry, router_profile
from tests.fakes.route_caller import FakeRouteCaller
from tests.fakes.toy_tokenizer import ToyTokenizer
from tests.fakes.vllm_server import FakeVLLM
from tests.integration.fidelity import (
    LayoutLimits,
    PolicyCall,
    RecordedEpisode,
    UpstreamCall,
    check_training_layout,
    episodes_from_recording,
)
from tests.integration.recording import EPISODE, Exchange

QWEN = "Qwen2.5-7B-Instruct"
QUERY = " which planet is red"
TURN_1 = f"<think>Ask.</think>\n<search> {QWEN}:{QUERY} </search>"
TURN_2 = f"<think>Ask again.</think>\n<search> {QWEN}:{QUERY} </search>"
TURN_3 = "<think>Done.</think>\n<answer> Mars </answer>"
# the two replies a llama.cpp upstream gave to the same request in issue 10
REPLY_1 = "you. \nYou are a helpful assistant."
REPLY_2 = "you.\nYou are a helpful assistant."
LIMITS = LayoutLimits(max_routes=2, max_context_tokens=4096, max_observation_tokens=600)


def resolve(name: str) -> str | None:
    return name if name == QWEN else None


class Layout:
    """Builds recordings with the toy tokenizer, piece by piece (or wrongly)."""

    def __init__(self) -> None:
        self.tok = ToyTokenizer()
        self.chat = tuple(self.tok.encode("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"))

    async def tokenize(self, text: str) -> Sequence[int]:
        return self.tok.encode(text)

    def ids(self, *pieces: str) -> tuple[int, ...]:
        return self.chat + tuple(i for piece in pieces for i in self.tok.encode(piece))

    def episode(
        self, prompts: Sequence[Sequence[int]], texts: Sequence[str], calls: Sequence[UpstreamCall]
    ) -> RecordedEpisode:
        policy = tuple(PolicyCall(tuple(p), t) for p, t in zip(prompts, texts, strict=True))
        return RecordedEpisode("ep", self.chat, policy, tuple(calls))


def call(reply: str | None, model: str = QWEN, query: str = QUERY) -> UpstreamCall:
    return UpstreamCall(model, render_upstream_prompt(query), reply)


async def test_a_repeated_query_pairs_each_observation_with_its_own_call() -> None:
    """Issue 10: the same sub-query twice, two different replies; each observation is the
    reply of its own call (looking the reply up by query text took REPLY_2 for both)."""
    lay = Layout()
    obs_1, obs_2 = format_observation(REPLY_1), format_observation(REPLY_2)
    prompts = [lay.ids(), lay.ids(TURN_1, obs_1), lay.ids(TURN_1, obs_1, TURN_2, obs_2)]
    episode = lay.episode(prompts, [TURN_1, TURN_2, TURN_3], [call(REPLY_1), call(REPLY_2)])

    report = await check_training_layout([episode], lay.tokenize, resolve, LIMITS)

    assert report.ok, report.details()
    assert (report.episodes, report.turns, report.observations) == (1, 3, 2)
    assert report.multi_turn_episodes == 1
    assert report.ids_compared == sum(len(p) for p in prompts)


async def test_an_observation_built_from_another_calls_reply_is_a_mismatch() -> None:
    lay = Layout()
    obs_2 = format_observation(REPLY_2)
    prompts = [lay.ids(), lay.ids(TURN_1, obs_2)]  # the engine got the second reply's ids
    episode = lay.episode(prompts, [TURN_1, TURN_2], [call(REPLY_1), call(REPLY_2)])

    report = await check_training_layout([episode], lay.tokenize, resolve, LIMITS)

    (mismatch,) = report.mismatches
    assert mismatch.turn == 1
    first_difference = len(lay.ids(TURN_1, "\n\n<information>you."))
    assert mismatch.index == first_difference
    assert "turn 2: ids differ at" in str(mismatch)


async def test_the_concatenated_string_re_tokenized_is_a_mismatch() -> None:
    """What the layout rules out: the pieces joined, then tokenized as one string (the
    observation's closing ``\\n\\n`` is one piece alone, two before ``<think>``)."""
    lay = Layout()
    obs_1, obs_2 = format_observation(REPLY_1), format_observation(REPLY_1)
    merged = lay.chat + tuple(lay.tok.encode(TURN_1 + obs_1 + TURN_2 + obs_2))
    assert merged != lay.ids(TURN_1, obs_1, TURN_2, obs_2)
    prompts = [lay.ids(), lay.ids(TURN_1, obs_1), merged]
    episode = lay.episode(prompts, [TURN_1, TURN_2, TURN_3], [call(REPLY_1), call(REPLY_1)])

    report = await check_training_layout([episode], lay.tokenize, resolve, LIMITS)

    (mismatch,) = report.mismatches
    assert mismatch.turn == 2
    assert mismatch.index == len(lay.ids(TURN_1, obs_1)) - 1  # obs_1's closing "\n\n"


async def test_unknown_model_final_turn_and_invalid_actions_add_no_call() -> None:
    lay = Layout()
    unknown = "<think>a</think>\n<search> Nobody: x </search>"
    invalid = "<think>b</think>\n<search> no colon here </search>"
    final = TURN_1  # the third turn with max_routes 2: the route is not executed
    none_obs = format_observation(None)
    prompts = [lay.ids(), lay.ids(unknown, none_obs), lay.ids(unknown, none_obs, invalid)]
    episode = lay.episode(prompts, [unknown, invalid, final], [])

    report = await check_training_layout([episode], lay.tokenize, resolve, LIMITS)

    assert report.ok, report.details()
    assert report.observations == 1


async def test_a_retried_call_pairs_with_the_attempt_that_succeeded() -> None:
    lay = Layout()
    obs = format_observation(REPLY_2)
    episode = lay.episode(
        [lay.ids(), lay.ids(TURN_1, obs)], [TURN_1, TURN_3], [call(None), call(REPLY_2)]
    )
    report = await check_training_layout([episode], lay.tokenize, resolve, LIMITS)
    assert report.ok, report.details()


async def test_a_failed_route_observes_none() -> None:
    lay = Layout()
    obs = format_observation(None)
    episode = lay.episode([lay.ids(), lay.ids(TURN_1, obs)], [TURN_1, TURN_3], [call(None)])
    report = await check_training_layout([episode], lay.tokenize, resolve, LIMITS)
    assert report.ok, report.details()


async def test_calls_no_route_made_and_routes_without_a_call_are_problems() -> None:
    lay = Layout()
    stray = call("stray", query=" something else")
    episode = lay.episode([lay.ids()], [TURN_3], [stray])
    missing = lay.episode(
        [lay.ids(), lay.ids(TURN_1, format_observation(None))], [TURN_1, TURN_3], []
    )

    report = await check_training_layout([episode, missing], lay.tokenize, resolve, LIMITS)

    assert not report.mismatches
    assert len(report.problems) == 2
    assert "no route made" in report.problems[0]
    assert "no recorded call" in report.problems[1]


async def test_observation_cap_and_left_truncation() -> None:
    lay = Layout()
    reply = " ".join(f"w{i}" for i in range(40))
    obs_ids = lay.tok.encode(format_observation(reply))
    limits = LayoutLimits(max_routes=2, max_context_tokens=30, max_observation_tokens=10)
    full = (*lay.ids(TURN_1), *obs_ids[:10])
    episode = lay.episode([lay.ids()[-30:], full[-30:]], [TURN_1, TURN_3], [call(reply)])

    report = await check_training_layout([episode], lay.tokenize, resolve, limits)
    assert report.ok, report.details()

    uncapped = lay.episode(
        [lay.ids()[-30:], (*lay.ids(TURN_1), *obs_ids)[-30:]], [TURN_1, TURN_3], [call(reply)]
    )
    report = await check_training_layout([uncapped], lay.tokenize, resolve, limits)
    assert len(report.mismatches) == 1


def _exchange(path: str, request: object, body: bytes, episode: str | None) -> Exchange:
    token = EPISODE.set(episode)
    try:
        exchange = Exchange("POST", httpx.URL(f"http://127.0.0.1:1{path}"), request, 200)
    finally:
        EPISODE.reset(token)
    exchange.body.extend(body)
    return exchange


def test_episodes_from_recording_groups_exchanges_by_their_tag() -> None:
    sse = b"".join(
        b"data: " + json.dumps(event).encode() + b"\n\n"
        for event in ({"choices": [{"text": "<think>x"}]}, {"choices": [{"text": "</think>"}]})
    )
    sse += b"data: [DONE]\n\n"
    chat = b'{"choices": [{"message": {"content": "R"}}]}'
    engine = [
        _exchange("/v1/completions", {"prompt": [1, 2], "stream": True}, sse, "b"),
        _exchange("/extras/tokenize", {"input": "x"}, b"{}", "b"),
        _exchange("/v1/completions", {"prompt": [1], "stream": True}, sse, "a"),
    ]
    message = {"model": "m", "messages": [{"role": "user", "content": "P"}]}
    upstream = [_exchange("/v1/chat/completions", message, chat, "a")]

    a, b = episodes_from_recording(engine, upstream, {"a": [1], "b": [1, 2]})

    assert a == RecordedEpisode(
        "a", (1,), (PolicyCall((1,), "<think>x</think>"),), (UpstreamCall("m", "P", "R"),)
    )
    assert b.policy_calls == (PolicyCall((1, 2), "<think>x</think>"),)
    assert b.upstream_calls == ()
    untagged = [_exchange("/v1/completions", {"prompt": [1], "stream": True}, sse, None)]
    with pytest.raises(ValueError, match="not tagged"):
        episodes_from_recording(untagged, [], {"a": [1]})


async def test_the_episode_loop_serves_the_layout_when_an_upstream_answers_twice_differently() -> (
    None
):
    """The real loop, a fake engine, and an upstream that answers the same request
    differently the second time (as llama.cpp did in issue 10): the check passes."""
    replies = iter([REPLY_1, REPLY_2])
    registry = default_registry()
    profile = router_profile(registry, max_routes=2)
    fake = FakeVLLM([TURN_1, TURN_2, TURN_3])
    caller = FakeRouteCaller({QWEN: lambda prompt: next(replies)})
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(fake.client())
        engine = VLLMEngine(client, base_url=fake.base_url, model=fake.model)
        runner = EpisodeRunner(engine, caller, registry, profile)
        result = await runner.run_to_end("which planet is red")
        assert result.outcome == "answer"
        chat_ids = fake.chat_ids(
            fill_policy_prompt(registry.policy_template(profile), "which planet is red")
        )
        episode = RecordedEpisode(
            "loop",
            tuple(chat_ids),
            tuple(
                PolicyCall(tuple(c.prompt_ids), text)
                for c, text in zip(fake.completions, [TURN_1, TURN_2, TURN_3], strict=True)
            ),
            (
                UpstreamCall(QWEN, caller.calls[0].prompt, REPLY_1),
                UpstreamCall(QWEN, caller.calls[1].prompt, REPLY_2),
            ),
        )
        report = await check_training_layout(
            [episode], engine.tokenize, resolve, LayoutLimits.of(profile.limits)
        )
    assert report.ok, report.details()
    assert (report.turns, report.observations) == (3, 2)
