"""veRL reward function: ``compute_score(data_source, solution_str, ground_truth, extra_info)``.

Configured as ``reward.custom_reward_function.path=pkg://router_model.training.verl.reward``
with ``reward_kwargs`` (``router-r1 train`` writes them): ``metric`` (em|f1),
``cost_coefficient`` (alpha), ``cost_window_url`` (``redis://...`` to share the window across
reward workers, see :mod:`router_model.training.cost_window`), ``registry`` and ``profile``
(the format reward's model-name test; without them the reference's name rules).

``solution_str`` is the decoded response side (policy turns and information blocks; veRL
decodes with special tokens skipped); the route cost comes from the agent loop's extra
fields (``route_raw_cost``), which veRL merges into ``extra_info``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from router_model.registry import Registry
from router_model.rewards import Metric
from router_model.training.cost_window import cost_window
from router_model.training.reward import RouterR1Reward, valid_model_for


@functools.cache
def _scorer(
    metric: Metric,
    alpha: float,
    cost_window_url: str | None,
    registry: str | None,
    profile: str | None,
) -> RouterR1Reward:
    # veRL calls a plain function many times per worker process: the scorer (its window
    # and Redis connection) is kept for the process, one per configuration.
    loaded = Registry.from_file(registry) if registry else None
    return RouterR1Reward(
        valid_model_for(loaded, profile if loaded is not None else None),
        metric=metric,
        alpha=alpha,
        window=cost_window(cost_window_url),
    )


def golds_of(ground_truth: Any) -> list[str]:
    """``{"target": [...]}`` (lists may arrive as numpy arrays from parquet) or a bare list."""
    target = ground_truth.get("target") if isinstance(ground_truth, Mapping) else ground_truth
    if isinstance(target, str):
        return [target]
    if isinstance(target, Iterable):
        return [str(g) for g in target]
    raise ValueError(f"ground_truth has no target answers: {ground_truth!r}")


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    metric: Metric = "em",
    cost_coefficient: float = 0.0,
    cost_window_url: str | None = None,
    registry: str | None = None,
    profile: str | None = None,
    **_: Any,
) -> dict[str, float]:
    """The Router-R1 reward of one trajectory, with its parts for veRL's metrics."""
    info = extra_info or {}
    raw = float(info.get("route_raw_cost", 0.0) or 0.0)
    scorer = _scorer(metric, float(cost_coefficient), cost_window_url or None, registry, profile)
    breakdown = scorer.score(solution_str, golds_of(ground_truth), raw)
    return {
        "score": breakdown.score,
        "acc": float(breakdown.em if metric == "em" else breakdown.f1),
        "format": breakdown.format,
        "em": float(breakdown.em),
        "f1": breakdown.f1,
        "cost_reward": breakdown.cost,
        "raw_cost": breakdown.raw_cost,
        "routes": float(breakdown.routes),
    }
