"""TRL 1.16 integration: ``GRPOTrainer(rollout_func=...)`` over the rollout core.

torch, transformers and TRL are imported only when a trainer or sampler is used (they live
in the TRL venv, scripts/setup_trl.sh)."""

from router_model.training.trl.rewards import RouterR1RewardFunc
from router_model.training.trl.rollout_func import RouterR1RolloutFunc, question_of_prompt
from router_model.training.trl.sampler import TransformersSampler
from router_model.training.trl.trainer import SMOKE_DEFAULTS, build_grpo_trainer

__all__ = [
    "SMOKE_DEFAULTS",
    "RouterR1RewardFunc",
    "RouterR1RolloutFunc",
    "TransformersSampler",
    "build_grpo_trainer",
    "question_of_prompt",
]
