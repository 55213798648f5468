"""Combining format, outcome and cost into the training reward."""

from __future__ import annotations

from typing import Literal

Metric = Literal["em", "f1"]


def combined_reward(
    format_score: float,
    outcome_score: float,
    cost_score: float,
    alpha: float,
    metric: Metric,
) -> float:
    """The reference reward; ``alpha`` is the cost coefficient.

    Bad format -> -1. A wrong answer -> 0 (EM) or F1 + format (F1, when F1 = 0).
    Otherwise (outcome + format)(1 - alpha) + alpha * cost.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if metric not in ("em", "f1"):
        raise ValueError(f"metric must be 'em' or 'f1', got {metric!r}")
    if format_score < 0:
        return -1.0
    if outcome_score == 0:
        return 0.0 if metric == "em" else outcome_score + format_score
    return (outcome_score + format_score) * (1.0 - alpha) + alpha * cost_score
