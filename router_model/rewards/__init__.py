"""Router-R1 rewards, TRL style: pure functions, one concern each."""

from router_model.rewards.combine import Metric, combined_reward
from router_model.rewards.cost import CostNormalizer, raw_cost
from router_model.rewards.format import format_reward, legacy_valid_model, valid_model_from_resolver
from router_model.rewards.outcome import exact_match, f1_score, normalize_answer
from router_model.rewards.routes import count_routes

__all__ = [
    "CostNormalizer",
    "Metric",
    "combined_reward",
    "count_routes",
    "exact_match",
    "f1_score",
    "format_reward",
    "legacy_valid_model",
    "normalize_answer",
    "raw_cost",
    "valid_model_from_resolver",
]
