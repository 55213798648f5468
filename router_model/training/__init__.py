"""Training Router-R1 policies: one rollout core (the server's episode loop), two RL engines.

- :mod:`router_model.training.rollout`: :class:`RolloutCore` runs ``router_model.episode``'s
  ``EpisodeRunner`` token-in/token-out over any :class:`TokenGenerator` and returns
  :class:`Trajectory` objects (prompt ids, response ids, mask, log-probs, route costs).
- :mod:`router_model.training.reward`: the Router-R1 reward from ``router_model.rewards``,
  with a cost window shared by reward workers (:mod:`router_model.training.cost_window`).
- :mod:`router_model.training.verl`: veRL 0.9.1 agent loop and reward function (GPU runs).
- :mod:`router_model.training.trl`: TRL ``GRPOTrainer`` rollout function (CPU smoke runs).
- :mod:`router_model.training.launch` / ``cli``: ``router-r1 train CONFIG``.
"""

from router_model.training.config import RouterSettings, TrainConfig
from router_model.training.cost_window import (
    CostWindow,
    LocalCostWindow,
    RedisCostWindow,
    cost_window,
)
from router_model.training.engine import (
    HFTokenizer,
    RolloutTokenizer,
    SampledTokens,
    TokenEngine,
    TokenGenerator,
)
from router_model.training.reward import RewardBreakdown, RouterR1Reward, valid_model_for
from router_model.training.rollout import RolloutCore, RouteCall, Trajectory

__all__ = [
    "CostWindow",
    "HFTokenizer",
    "LocalCostWindow",
    "RedisCostWindow",
    "RewardBreakdown",
    "RolloutCore",
    "RolloutTokenizer",
    "RouteCall",
    "RouterR1Reward",
    "RouterSettings",
    "SampledTokens",
    "TokenEngine",
    "TokenGenerator",
    "TrainConfig",
    "Trajectory",
    "cost_window",
    "valid_model_for",
]
