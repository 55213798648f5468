"""TRL ``GRPOTrainer(rollout_func=...)``: Router-R1 trajectories from the rollout core.

TRL hands over the prompts of the current step (each already repeated ``num_generations``
times by its sampler) and expects one completion per prompt: ``prompt_ids``,
``completion_ids`` (turns and information blocks), ``logprobs`` and ``env_mask`` (1 = policy
token, 0 = inserted information: TRL multiplies it into the loss mask). Every other key is
passed to the reward functions as a keyword argument: the decoded response side, the
answer, and the route costs.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from router_model.episode.route import RouteCaller
from router_model.registry import Registry, RouterProfile
from router_model.training.engine import HFTokenizer, TokenGenerator
from router_model.training.rollout import RolloutCore, Trajectory

RouteCallerFactory = Callable[[], AbstractAsyncContextManager[RouteCaller]]
SamplerFactory = Callable[[Any], TokenGenerator]


def question_of_prompt(prompt: Any) -> str:
    """The question of a TRL prompt: a plain string, or the last user message's content."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        for message in reversed(prompt):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return str(message.get("content", ""))
    raise ValueError(f"cannot read a question from prompt {prompt!r}")


class RouterR1RolloutFunc:
    """Callable ``(prompts, trainer) -> dict`` for ``GRPOTrainer(rollout_func=...)``."""

    def __init__(
        self,
        *,
        registry: Registry,
        profile: RouterProfile,
        tokenizer: Any,
        route_callers: RouteCallerFactory,
        sampler: SamplerFactory,
        concurrency: int = 4,
    ) -> None:
        self._registry = registry
        self._profile = profile
        self._hf_tokenizer = tokenizer
        self._tokenizer = HFTokenizer(tokenizer)
        self._route_callers = route_callers
        self._sampler = sampler
        self._concurrency = concurrency
        self.last_trajectories: list[Trajectory] = []

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        # TRL calls this synchronously from its training step (no running event loop)
        trajectories = asyncio.run(self._rollouts(prompts, trainer))
        self.last_trajectories = trajectories
        return self.to_trl(trajectories)

    async def _rollouts(self, prompts: list[Any], trainer: Any) -> list[Trajectory]:
        questions = [question_of_prompt(p) for p in prompts]
        sampler = self._sampler(trainer)
        async with self._route_callers() as caller:
            core = RolloutCore(self._registry, self._profile, caller, self._tokenizer)
            return await core.rollout_many(
                questions, [sampler] * len(questions), concurrency=self._concurrency
            )

    def to_trl(self, trajectories: Sequence[Trajectory]) -> dict[str, list[Any]]:
        eos = self._hf_tokenizer.eos_token_id
        out: dict[str, list[Any]] = {
            key: []
            for key in (
                "prompt_ids",
                "completion_ids",
                "logprobs",
                "env_mask",
                "response_text",
                "answer",
                "outcome",
                "routes",
                "route_raw_cost",
                "route_cost_usd",
            )
        }
        for t in trajectories:
            ids, mask = list(t.response_ids), list(t.response_mask)
            logprobs = list(t.response_logprobs) if t.response_logprobs is not None else None
            if not ids:  # TRL needs a token; an empty response gets EOS, kept out of the loss
                ids, mask, logprobs = [int(eos)], [0], [0.0]
            out["prompt_ids"].append(list(t.prompt_ids))
            out["completion_ids"].append(ids)
            # NaN = unknown: TRL gives such tokens no importance-sampling correction
            out["logprobs"].append(logprobs if logprobs is not None else [math.nan] * len(ids))
            out["env_mask"].append(mask)
            out["response_text"].append(t.response_text)
            out["answer"].append(t.answer)
            out["outcome"].append(t.outcome)
            out["routes"].append(t.routes)
            out["route_raw_cost"].append(t.raw_cost)
            out["route_cost_usd"].append(t.upstream_cost_usd)
        return out
