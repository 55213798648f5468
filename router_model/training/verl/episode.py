"""The Router-R1 agent loop's logic, free of veRL imports (unit-tested on CPU with fakes).

:mod:`router_model.training.verl.agent_loop` is the thin veRL subclass around it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router_model.training.rollout import RolloutCore, Trajectory
from router_model.training.verl.generator import ServerManager, VerlServerGenerator


@dataclass(frozen=True)
class AgentLoopFields:
    """The fields of veRL's ``AgentLoopOutput`` (plus timings for its metrics)."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_logprobs: list[float] | None
    num_turns: int
    generate_s: float
    extra_fields: dict[str, Any] = field(default_factory=dict)


def question_of(sample: Mapping[str, Any]) -> str:
    """The raw question of a dataset row as veRL passes it (columns as keyword arguments).

    Rows written by ``router-r1 data prepare`` carry it in ``question`` (the reference's
    parquet kept that column too) and in ``extra_info.question``.
    """
    question = sample.get("question")
    if isinstance(question, str) and question.strip():
        return question
    extra = sample.get("extra_info")
    if isinstance(extra, Mapping):
        question = extra.get("question")
        if isinstance(question, str) and question.strip():
            return question
    raise ValueError(
        "dataset row has no 'question' column nor extra_info.question: build the parquet "
        "with `router-r1 data prepare` (the agent loop renders the policy prompt itself)"
    )


async def run_episode(
    core: RolloutCore,
    server_manager: ServerManager,
    sampling_params: Mapping[str, Any],
    sample: Mapping[str, Any],
    *,
    prompt_length: int,
    response_length: int,
    request_id: str | None = None,
) -> AgentLoopFields:
    """One trajectory for a veRL dataset row.

    The response side is cut to ``response_length`` tokens and the prompt left-truncated to
    ``prompt_length`` (veRL pads both to these widths; its own loops cut the same way).
    """
    question = question_of(sample)
    rid = request_id or uuid.uuid4().hex
    generator = VerlServerGenerator(server_manager, sampling_params, rid)
    started = time.perf_counter()
    trajectory: Trajectory = await core.rollout(question, generator, request_id=rid)
    elapsed = time.perf_counter() - started
    cut = trajectory.truncated(response_length)
    extra: dict[str, Any] = {
        **cut.route_fields(),
        "response_truncated": bool(cut.extra.get("response_truncated", False)),
        # the keys veRL's other agent loops always set (a stable non-tensor batch schema)
        "turn_scores": [],
        "tool_rewards": [],
    }
    return AgentLoopFields(
        prompt_ids=cut.prompt_ids[-prompt_length:],
        response_ids=cut.response_ids,
        response_mask=cut.response_mask,
        response_logprobs=cut.response_logprobs,
        num_turns=cut.num_turns,
        generate_s=elapsed,
        extra_fields=extra,
    )
