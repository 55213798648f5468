"""TRL reward functions over the rollout function's extra fields."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from router_model.training.reward import RouterR1Reward


class RouterR1RewardFunc:
    """The Router-R1 reward for TRL: reads ``response_text``, ``golden_answers`` (a dataset
    column) and ``route_raw_cost`` (from the rollout function), batch by batch in one
    process, as the reference did; logs the parts with TRL's ``log_metric``."""

    __name__ = "router_r1"

    def __init__(self, scorer: RouterR1Reward) -> None:
        self.scorer = scorer

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Any] | None = None,
        *,
        response_text: Sequence[str],
        golden_answers: Sequence[Sequence[str]],
        route_raw_cost: Sequence[float],
        log_metric: Any = None,
        **_: Any,
    ) -> list[float]:
        parts = [
            self.scorer.score(text, [str(g) for g in golds], float(raw))
            for text, golds, raw in zip(response_text, golden_answers, route_raw_cost, strict=True)
        ]
        if callable(log_metric) and parts:
            n = len(parts)
            log_metric("router_r1/em", sum(p.em for p in parts) / n)
            log_metric("router_r1/format_ok", sum(p.format == 0 for p in parts) / n)
            log_metric("router_r1/routes", sum(p.routes for p in parts) / n)
            log_metric("router_r1/raw_cost", sum(p.raw_cost for p in parts) / n)
        return [p.score for p in parts]
