"""Building a TRL ``GRPOTrainer`` whose rollouts are Router-R1 episodes (imports TRL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from router_model.registry import Registry, RouterProfile
from router_model.training.cost_window import cost_window
from router_model.training.reward import RouterR1Reward, valid_model_for
from router_model.training.trl.rewards import RouterR1RewardFunc
from router_model.training.trl.rollout_func import (
    RouteCallerFactory,
    RouterR1RolloutFunc,
    SamplerFactory,
)
from router_model.training.trl.sampler import TransformersSampler

SMOKE_DEFAULTS: dict[str, Any] = {
    "per_device_train_batch_size": 2,
    "num_generations": 2,
    "max_steps": 2,
    "learning_rate": 1e-5,
    "beta": 0.0,
    "logging_steps": 1,
    "save_strategy": "no",
    "report_to": "none",
    "use_cpu": True,
    "bf16": False,
    "dataloader_num_workers": 0,
    "seed": 42,
}


def build_grpo_trainer(
    *,
    model_dir: str | Path,
    rows: Sequence[dict[str, Any]],
    registry: Registry,
    profile: RouterProfile,
    route_callers: RouteCallerFactory,
    output_dir: str | Path,
    grpo: dict[str, Any] | None = None,
    metric: str = "em",
    cost_coefficient: float = 0.0,
    cost_window_url: str | None = None,
    extra_reward_funcs: Sequence[Callable[..., list[float]]] = (),
    sampler: SamplerFactory | None = None,
) -> tuple[Any, RouterR1RolloutFunc]:
    """The trainer and its rollout function. ``rows`` need ``question`` and ``golden_answers``."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    decoding = profile.decoding

    def default_sampler(trainer: Any) -> TransformersSampler:
        unwrapped = trainer.accelerator.unwrap_model(trainer.model)
        return TransformersSampler(
            unwrapped, tokenizer, temperature=decoding.temperature, top_p=decoding.top_p
        )

    rollout = RouterR1RolloutFunc(
        registry=registry,
        profile=profile,
        tokenizer=tokenizer,
        route_callers=route_callers,
        sampler=sampler or default_sampler,
    )
    scorer = RouterR1Reward(
        valid_model_for(registry, profile.name),
        metric="f1" if metric == "f1" else "em",
        alpha=cost_coefficient,
        window=cost_window(cost_window_url),
    )
    dataset = Dataset.from_list(
        [{"prompt": r["question"], "golden_answers": list(r["golden_answers"])} for r in rows]
    )
    args = GRPOConfig(output_dir=str(output_dir), **{**SMOKE_DEFAULTS, **(grpo or {})})
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[RouterR1RewardFunc(scorer), *extra_reward_funcs],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        rollout_func=rollout,
    )
    return trainer, rollout
