"""The Router-R1 training reward of one trajectory, from the protocol core's reward functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from router_model.protocol.answer import extract_answer
from router_model.registry import Registry
from router_model.rewards import (
    Metric,
    combined_reward,
    count_routes,
    exact_match,
    f1_score,
    format_reward,
    legacy_valid_model,
    valid_model_from_resolver,
)
from router_model.rewards.format import ValidModel
from router_model.training.cost_window import CostWindow, LocalCostWindow


@dataclass(frozen=True)
class RewardBreakdown:
    """The combined reward and its parts (logged by the trainers)."""

    score: float
    format: float
    em: int
    f1: float
    cost: float
    raw_cost: float
    routes: int
    answer: str

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def valid_model_for(registry: Registry | None, profile_name: str | None) -> ValidModel:
    """The format reward's model-name test: the profile's resolver, or the reference rules."""
    if registry is None or profile_name is None:
        return legacy_valid_model()
    profile = registry.profile(profile_name)
    if profile is None:
        raise ValueError(f"registry {registry.source} has no profile {profile_name!r}")
    return valid_model_from_resolver(registry.resolver(profile))


class RouterR1Reward:
    """format, outcome (EM or F1) and cost, combined with cost coefficient ``alpha``.

    Reads the decoded response side (policy turns and information blocks, no prompt), as
    the reference ``compute_score`` did; the answer is the last ``<answer>`` block.
    """

    def __init__(
        self,
        valid_model: ValidModel,
        *,
        metric: Metric = "em",
        alpha: float = 0.0,
        window: CostWindow | None = None,
    ) -> None:
        if metric not in ("em", "f1"):
            raise ValueError(f"metric must be 'em' or 'f1', got {metric!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.valid_model = valid_model
        self.metric: Metric = metric
        self.alpha = alpha
        self.window = window if window is not None else LocalCostWindow()

    def score(self, response_text: str, golds: Sequence[str], raw_cost: float) -> RewardBreakdown:
        fmt = format_reward(response_text, self.valid_model)
        answer = extract_answer(response_text)
        em = exact_match(answer, golds) if answer is not None else 0
        f1 = f1_score(answer, golds) if answer is not None else 0.0
        # every trajectory enters the window, as in the reference
        cost = self.window.score(raw_cost)
        outcome = float(em) if self.metric == "em" else f1
        total = combined_reward(fmt, outcome, cost, self.alpha, self.metric)
        return RewardBreakdown(
            score=total,
            format=fmt,
            em=em,
            f1=f1,
            cost=cost,
            raw_cost=raw_cost,
            routes=count_routes(response_text, self.valid_model),
            answer=answer or "",
        )
