"""The veRL agent loop's logic with a fake server manager (as veRL's own *_on_cpu tests do)."""

from __future__ import annotations

from typing import Any

import pytest

from router_model.protocol.observation import format_observation
from router_model.training.rollout import RolloutCore
from router_model.training.verl.episode import question_of, run_episode
from tests.fakes.registry import default_registry
from tests.fakes.route_caller import FakeRouteCaller
from tests.router_model.training.helpers import (
    QWEN,
    FakeServerManager,
    ToyRolloutTokenizer,
    answer,
    route,
)

VERL_SAMPLING = {"temperature": 1.0, "top_p": 0.95, "top_k": -1, "repetition_penalty": 1.0}


def _row(**extra: Any) -> dict[str, Any]:
    return {
        "data_source": "nq",
        "question": "who wrote war and peace",
        "raw_prompt": [{"role": "user", "content": "(the rendered policy prompt)"}],
        "reward_model": {"style": "rule", "ground_truth": {"target": ["Leo Tolstoy"]}},
        "extra_info": {"split": "train", "index": 3},
        **extra,
    }


async def test_run_episode_fields_and_server_calls() -> None:
    tok = ToyRolloutTokenizer()
    reply = "Leo Tolstoy wrote it."
    core = RolloutCore.for_profile(
        default_registry(), "router-r1", FakeRouteCaller({QWEN: reply}), tok
    )
    t1, t2 = route(QWEN, "author of War and Peace"), answer("Leo Tolstoy")
    server = FakeServerManager(tok, [t1, t2])

    fields = await run_episode(
        core,
        server,
        {**VERL_SAMPLING, "logprobs": True, "max_tokens": 7, "stop": ["x"]},
        _row(),
        prompt_length=4096,
        response_length=4096,
    )

    # per turn: the loop's token limit and stop strings; veRL's sampling settings kept
    assert len(server.calls) == 2
    for call in server.calls:
        params = call["sampling_params"]
        assert params["stop"] == ["</search>", "</answer>"]
        assert params["include_stop_str_in_output"] is True
        assert params["max_tokens"] == 1024
        assert (params["temperature"], params["top_p"], params["logprobs"]) == (1.0, 0.95, True)
    # one sticky request id for all turns of the trajectory
    assert server.calls[0]["request_id"] == server.calls[1]["request_id"]
    # the second turn continues the first turn plus the observation, token for token
    observation = format_observation(reply)
    turn1 = tok.encode(t1)
    assert server.calls[1]["prompt_ids"] == fields.prompt_ids + turn1 + tok.encode(observation)

    assert fields.response_ids == turn1 + tok.encode(observation) + tok.encode(t2)
    assert fields.response_mask == (
        [1] * len(turn1) + [0] * len(tok.encode(observation)) + [1] * len(tok.encode(t2))
    )
    assert fields.response_logprobs is not None
    assert len(fields.response_logprobs) == len(fields.response_ids)
    assert fields.num_turns == 4
    extra = fields.extra_fields
    assert extra["route_raw_cost"] == pytest.approx(len(reply.split()) * 0.3)
    assert extra["route_count"] == 1
    assert extra["route_models"] == [QWEN]
    assert extra["answer"] == "Leo Tolstoy"
    assert extra["response_truncated"] is False
    assert (extra["turn_scores"], extra["tool_rewards"]) == ([], [])


async def test_run_episode_cuts_to_veRL_widths() -> None:
    tok = ToyRolloutTokenizer()
    core = RolloutCore.for_profile(
        default_registry(), "router-r1", FakeRouteCaller({QWEN: "r"}), tok
    )
    server = FakeServerManager(tok, [route(QWEN, "q"), answer("a")])
    fields = await run_episode(
        core, server, VERL_SAMPLING, _row(), prompt_length=16, response_length=10
    )
    assert len(fields.prompt_ids) == 16
    assert len(fields.response_ids) == len(fields.response_mask) == 10
    assert fields.response_logprobs is None  # veRL did not ask for log-probs
    assert fields.extra_fields["response_truncated"] is True


def test_question_of_rows() -> None:
    assert question_of(_row()) == "who wrote war and peace"
    row = _row(question=None, extra_info={"question": "from extra info"})
    assert question_of(row) == "from extra info"
    with pytest.raises(ValueError, match="router-r1 data prepare"):
        question_of({"prompt": [], "extra_info": {"index": 1}})
