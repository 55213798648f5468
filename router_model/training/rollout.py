"""The rollout core: one Router-R1 trajectory through the SAME episode loop the server runs.

:class:`RolloutCore` builds an ``EpisodeRunner`` per trajectory over a :class:`TokenEngine`
(the trainer's sampler) and a ``RouteCaller`` (the upstream pool, or a fake), so prompt
rendering, turn cutting, the splice, the observation cap, name resolution and the upstream
prompt are the serving code's. It returns what trainers need: prompt ids, response ids, the
mask (1 = policy token, 0 = inserted information), per-token sampler log-probs when they
line up, and per-call tokens and costs for the cost reward.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from router_model.episode.result import EpisodeResult
from router_model.episode.route import RouteCaller
from router_model.episode.runner import EpisodeRunner
from router_model.episode.settings import PolicyOverrides
from router_model.registry import Registry, RouterProfile
from router_model.rewards.cost import raw_cost
from router_model.training.engine import RolloutTokenizer, TokenEngine, TokenGenerator


@dataclass(frozen=True)
class RouteCall:
    """One executed upstream call of a trajectory."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    usd_per_1m_output: float
    cost_usd: float
    status: str

    @property
    def raw_cost(self) -> float:
        """The reference's cost of this call (completion tokens x output price, no 1e6)."""
        return self.completion_tokens * self.usd_per_1m_output


@dataclass(frozen=True)
class Trajectory:
    """One finished rollout, ready for a trainer."""

    question: str
    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_text: str
    answer: str
    outcome: str
    num_turns: int
    routes: int
    route_calls: tuple[RouteCall, ...] = ()
    response_logprobs: list[float] | None = None
    policy_cost_usd: float = 0.0
    upstream_cost_usd: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def raw_cost(self) -> float:
        """Reference raw cost: sum over calls of completion tokens x USD per 1M output."""
        return raw_cost((c.completion_tokens, c.usd_per_1m_output) for c in self.route_calls)

    @property
    def cost_usd(self) -> float:
        return self.policy_cost_usd + self.upstream_cost_usd

    def route_fields(self) -> dict[str, object]:
        """Flat, JSON-able route costs for reward functions and logs."""
        return {
            "route_raw_cost": self.raw_cost,
            "route_cost_usd": self.upstream_cost_usd,
            "route_count": self.routes,
            "route_models": [c.model for c in self.route_calls],
            "route_completion_tokens": [c.completion_tokens for c in self.route_calls],
            "route_prompt_tokens": [c.prompt_tokens for c in self.route_calls],
            "route_usd_per_1m_output": [c.usd_per_1m_output for c in self.route_calls],
            "outcome": self.outcome,
            "answer": self.answer,
        }

    def truncated(self, response_length: int) -> Trajectory:
        """The trajectory with its response side cut to ``response_length`` tokens."""
        if len(self.response_ids) <= response_length:
            return self
        logprobs = self.response_logprobs
        return replace(
            self,
            response_ids=self.response_ids[:response_length],
            response_mask=self.response_mask[:response_length],
            response_logprobs=None if logprobs is None else logprobs[:response_length],
            extra={**self.extra, "response_truncated": True},
        )


class RolloutCore:
    """Runs Router-R1 trajectories for one registry profile with a given route caller."""

    def __init__(
        self,
        registry: Registry,
        profile: RouterProfile,
        route_caller: RouteCaller,
        tokenizer: RolloutTokenizer,
    ) -> None:
        self.registry = registry
        self.profile = profile
        self.route_caller = route_caller
        self.tokenizer = tokenizer

    @classmethod
    def for_profile(
        cls,
        registry: Registry,
        profile_name: str,
        route_caller: RouteCaller,
        tokenizer: RolloutTokenizer,
    ) -> RolloutCore:
        profile = registry.profile(profile_name)
        if profile is None:
            names = ", ".join(p.name for p in registry.profiles) or "none"
            raise ValueError(
                f"registry {registry.source} has no profile {profile_name!r} ({names})"
            )
        return cls(registry, profile, route_caller, tokenizer)

    async def rollout(
        self,
        question: str,
        generator: TokenGenerator,
        *,
        request_id: str | None = None,
        overrides: PolicyOverrides | None = None,
    ) -> Trajectory:
        """One trajectory for ``question``, sampled by ``generator``."""
        engine = TokenEngine(generator, self.tokenizer)
        runner = EpisodeRunner(engine, self.route_caller, self.registry, self.profile)
        result = await runner.run_to_end(question, overrides, request_id=request_id)
        return self._trajectory(question, result, engine)

    async def rollout_many(
        self,
        questions: Sequence[str],
        generators: Sequence[TokenGenerator],
        *,
        concurrency: int = 8,
    ) -> list[Trajectory]:
        """Trajectories for ``questions`` (in order), at most ``concurrency`` at a time."""
        if len(questions) != len(generators):
            raise ValueError("need one generator per question")
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(question: str, generator: TokenGenerator) -> Trajectory:
            async with gate:
                return await self.rollout(question, generator)

        return list(await asyncio.gather(*map(one, questions, generators)))

    def _trajectory(self, question: str, result: EpisodeResult, engine: TokenEngine) -> Trajectory:
        context = result.context
        trace = result.trace
        calls: list[RouteCall] = []
        for step in trace.steps:
            if step.model is None or step.upstream_status in (None, "not_executed"):
                continue
            spec = self.registry.model(step.model)
            price = spec.pricing_of().output_per_1m if spec is not None else 0.0
            upstream_cost = (
                spec.pricing_of().cost_usd(
                    step.upstream_prompt_tokens, step.upstream_completion_tokens
                )
                if spec is not None and step.upstream_status != "cached"
                else 0.0
            )
            calls.append(
                RouteCall(
                    model=step.model,
                    prompt_tokens=step.upstream_prompt_tokens,
                    completion_tokens=step.upstream_completion_tokens,
                    usd_per_1m_output=price,
                    cost_usd=upstream_cost,
                    status=step.upstream_status or "",
                )
            )
        turn_ids = [list(p.ids) for p in context.pieces if p.kind == "turn"]
        per_turn = engine.turn_logprobs(turn_ids)
        logprobs: list[float] | None = None
        if per_turn is not None:
            turns = iter(per_turn)
            logprobs = []
            for piece in context.pieces:
                logprobs.extend(next(turns) if piece.kind == "turn" else [0.0] * len(piece.ids))
            if any(math.isnan(lp) for lp in logprobs):
                logprobs = None
        totals = trace.totals
        return Trajectory(
            question=question,
            prompt_ids=context.prompt_ids,
            response_ids=context.response_ids,
            response_mask=context.response_mask,
            response_text=context.response_text,
            answer=result.answer_text,
            outcome=result.outcome,
            num_turns=1 + len(context.pieces),
            routes=totals.routes,
            route_calls=tuple(calls),
            response_logprobs=logprobs,
            policy_cost_usd=totals.policy_cost_usd,
            upstream_cost_usd=totals.upstream_cost_usd,
        )
